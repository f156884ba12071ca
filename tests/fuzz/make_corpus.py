#!/usr/bin/env python3
"""Write the fuzzers' seed corpus (tests/fuzz/corpus/<fuzzer>/).

TLS seeds are real records made with Python's ssl module over memory BIOs:
ClientHellos (TLS 1.3 and 1.2) for fuzz_tls_server, and the server's first
flight answering them for fuzz_tls_client. Address seeds are sockaddrs of
each family, their last byte being the length passed. Run again to
regenerate; the committed files are what the fuzz runs start from.
"""
import os
import socket
import ssl
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def save(fuzzer, name, data):
    d = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tls_seeds(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=localhost", "-days", "2", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        cctx.maximum_version = version
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)
        cin, cout = ssl.MemoryBIO(), ssl.MemoryBIO()
        sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = cctx.wrap_bio(cin, cout, server_hostname="localhost")
        server = sctx.wrap_bio(sin, sout, server_side=True)
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = cout.read()
        sin.write(hello)
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        flight = sout.read()
        tag = "tls13" if version == ssl.TLSVersion.TLSv1_3 else "tls12"
        save("fuzz_tls_server", "client_hello_" + tag, hello)
        save("fuzz_tls_client", "server_flight_" + tag, flight)
        # The rest of the client's side after the server's flight.
        cin.write(flight)
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        save("fuzz_tls_server", "client_hello_finished_" + tag,
             hello + cout.read())


def address_seeds():
    inet = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 9) + \
        socket.inet_aton("127.0.0.1") + bytes(8)
    save("fuzz_address", "inet", inet + bytes([16]))
    inet6 = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", 9) + \
        bytes(4) + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4)
    save("fuzz_address", "inet6", inet6 + bytes([28]))
    path = struct.pack("<H", socket.AF_UNIX) + b"/tmp/tapio.sock\0"
    save("fuzz_address", "unix_path", path + bytes([len(path)]))
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0tapio\0name"
    save("fuzz_address", "unix_abstract", abstract + bytes([len(abstract)]))
    save("fuzz_address", "unspec", struct.pack("<H", 0) + bytes([2]))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        tls_seeds(tmp)
    address_seeds()
