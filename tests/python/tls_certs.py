"""Test certificates, made at test time with the `openssl` command, and the
ssl.SSLContexts the TLS tests use.

Nothing is committed: on first use, a throw-away directory (removed when the
process exits) receives a test CA and, signed by it,

    server     CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
    wrong_host CN=wrong.example, SAN DNS:wrong.example
    client     CN=tapio test client (extendedKeyUsage clientAuth)

All keys are EC P-256; every certificate is valid from yesterday (so a clock
slightly behind does not matter) for about ten years.
"""

import atexit
import datetime
import functools
import os
import shutil
import ssl
import subprocess
import tempfile
import types

CLIENT_COMMON_NAME = "tapio test client"
DAYS = 3650

CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none

[anything]
commonName = supplied

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::TAPIO_TEST_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args, cwd, env=None):
    result = subprocess.run(["openssl", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _issue(directory, name, subject, extensions, san=None, self_signed=False):
    """Make name.key and name.pem in directory, signed by the CA (or by
    itself); return the two paths."""
    key, csr, pem = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "pem"))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", key, cwd=directory)
    _openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr, cwd=directory)
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    env = dict(os.environ, TAPIO_TEST_SAN=san or "DNS:unused")
    signer = ["-selfsign", "-keyfile", key] if self_signed else [
        "-cert", os.path.join(directory, "ca.pem"), "-keyfile", os.path.join(directory, "ca.key")]
    _openssl("ca", "-batch", "-notext", "-config", "ca.cnf", *signer,
             "-startdate", yesterday.strftime("%Y%m%d%H%M%SZ"), "-days", str(DAYS),
             "-extensions", extensions, "-in", csr, "-out", pem, cwd=directory, env=env)
    return pem, key


@functools.cache
def certs():
    """The paths, as attributes: directory, ca_file, server_cert/server_key,
    wrong_host_cert/wrong_host_key, client_cert/client_key. Generated on the
    first call of the process."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests need the openssl command (Debian package openssl)")
    directory = tempfile.mkdtemp(prefix="tapio-tls-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.mkdir(os.path.join(directory, "issued"))
    open(os.path.join(directory, "index.txt"), "w").close()
    with open(os.path.join(directory, "serial"), "w") as serial:
        serial.write("1000\n")
    with open(os.path.join(directory, "ca.cnf"), "w") as config:
        config.write(CONFIG.format(dir=directory))

    ca_file, _ = _issue(directory, "ca", "/CN=tapio test CA", "ca_ext", self_signed=True)
    server_cert, server_key = _issue(directory, "server", "/CN=localhost", "server_ext",
                                     san="DNS:localhost,IP:127.0.0.1,IP:::1")
    wrong_cert, wrong_key = _issue(directory, "wrong_host", "/CN=wrong.example", "server_ext",
                                   san="DNS:wrong.example")
    client_cert, client_key = _issue(directory, "client", f"/CN={CLIENT_COMMON_NAME}",
                                     "client_ext")
    return types.SimpleNamespace(
        directory=directory, ca_file=ca_file,
        server_cert=server_cert, server_key=server_key,
        wrong_host_cert=wrong_cert, wrong_host_key=wrong_key,
        client_cert=client_cert, client_key=client_key)


def ca_file():
    return certs().ca_file


def server_context(cert="server", require_client_cert=False, alpn=None):
    """A server context presenting the "server" (localhost) or "wrong_host"
    certificate; require_client_cert makes it demand one signed by the CA."""
    paths = certs()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(getattr(paths, f"{cert}_cert"), getattr(paths, f"{cert}_key"))
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(paths.ca_file)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def client_context(verify=True, with_client_cert=False, alpn=None, trust_test_ca=True):
    """A client context that trusts the test CA (and nothing else; with
    trust_test_ca=False, nothing at all) and checks the host name, unless
    verify is false."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if trust_test_ca:
        context.load_verify_locations(certs().ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if with_client_cert:
        context.load_cert_chain(certs().client_cert, certs().client_key)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context
