#!/usr/bin/env python3
"""Runs the TLS echo servers side by side and reports ratios to the TLS floor.

Usage: python3 bench/tls_run.py --build-dir BUILD [--seconds S] [--rounds N]
                                [--quick] [--out FILE] [--json FILE] [--python PY]
                                [--py-loops L,...] [--py-modes M,...]
                                [--server NAME=COMMAND ...]

The TLS counterpart of bench/run.py, whose server handling, load runs, table
and options it reuses. A CA and a server certificate for 127.0.0.1 are made
for the run with the openssl command (EC P-256, TLS 1.3 is negotiated). Every
server is started once on a free port of 127.0.0.1:

  tls-floor            BUILD/bench/tls_floor: OpenSSL over epoll, nothing else
  tls-tapio            BUILD/bench/echo_server --tls: libtapio's TLS server,
                       a Protocol echoing from data_received
  tls-tapio-buffered   the same with a buffered protocol
  tls-tapio-uring      tls-tapio with TAPIO_BACKEND=io_uring
  py-LOOP-MODE         bench/py_echo_server.py PORT LOOP MODE
                       --tls CERT KEY (tapio, tapio-uring: tapio with
                       TAPIO_BACKEND=io_uring, uvloop, asyncio; a server
                       that prints 'unavailable' is skipped)
  NAME                 with --server NAME=COMMAND: any server command; {port},
                       {cert} and {key} in it are replaced, and it must print
                       'ready' once listening and exit 0 on SIGTERM

For 1 KiB and 64 KiB messages with 10 and 100 connections the servers take
turns under BUILD/bench/tls_load (a TLS load client on OpenSSL and epoll:
closed loop, one message in flight per connection, handshakes inside the
warm-up), so that a noisy machine slows them all alike; with several rounds
each server's median is kept. The server's CPU time (utime + stime from /proc)
is read around each run, giving CPU time per request (the handshakes are in
it, the same for every server). C rows are compared with tls-floor, Python
rows with py-uvloop in the same mode, extra servers with tls-floor; a
second table per configuration sets each -uring row beside its epoll twin
(as bench/run.py does).
Python rows run with Debian's python3 unless --python says otherwise
(--python none leaves them out).

With two or more CPUs the servers run pinned to one and the load client to
another (as bench/udp_run.py does): the load client does as much TLS work as
the server, and unpinned runs swing with where the scheduler puts the two.

Exits 1 on a harness failure; a missing binary is only reported and skipped.
"""
import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import run
import udp_run

C_SERVERS = [  # (name, binary in BUILD/bench, arguments after PORT: {cert}, {key},
               #  environment)
    ("tls-floor", "tls_floor", ["{cert}", "{key}"], {}),
    ("tls-tapio", "echo_server", ["protocol", "--tls", "{cert}", "{key}"], {}),
    ("tls-tapio-uring", "echo_server", ["protocol", "--tls", "{cert}", "{key}"],
     run.URING),
    ("tls-tapio-buffered", "echo_server", ["buffered", "--tls", "{cert}", "{key}"], {}),
]
PY_LOOPS = ["tapio", "tapio-uring", "uvloop", "asyncio"]
PY_MODES = ["protocol"]


def make_certs(directory):
    """A CA and a server certificate for localhost and 127.0.0.1 in
    `directory`; returns (cert, key)."""
    if not shutil.which("openssl"):
        raise run.HarnessError("the openssl command is needed to make certificates")
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr = os.path.join(directory, "server.key"), os.path.join(directory, "server.csr")
    cert, ext = os.path.join(directory, "server.pem"), os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for argv in (
            ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca,
             "-days", "2", "-subj", "/CN=tapio bench CA"],
            ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert]):
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise run.HarnessError(f"{' '.join(argv[:3])} failed: "
                                   f"{done.stderr.decode(errors='replace')}")
    return cert, key


class CommandServer(run.Server):
    """A server given as a command line with {port}, {cert} and {key}."""

    def __init__(self, name, command, cert, key):
        super().__init__(name, [], [])
        self.argv = [word.format(port=self.port, cert=cert, key=key)
                     for word in shlex.split(command)]


def server_list(bench_dir, args, cert, key):
    """(name, a function making the run.Server) of every server to run."""
    specs = [(name, argv, [word.format(cert=cert, key=key) for word in extra], env)
             for name, argv, extra, env in run.c_server_specs(bench_dir, C_SERVERS)]
    specs += run.py_server_specs(args.python, args.py_loops, args.py_modes,
                                 ["--tls", cert, key])
    makers = [(spec[0], functools.partial(run.Server, *spec)) for spec in specs]
    for item in args.server:
        name, _, command = item.partition("=")
        if not name or not command:
            raise run.HarnessError(f"--server {item!r}: expected NAME=COMMAND")
        makers.append((name, functools.partial(CommandServer, name, command, cert, key)))
    return makers


def benchmark(client, servers, names, args, cpus):
    heading = (f"TLS echo benchmark (TLS 1.3, EC P-256 certificate): {args.seconds:g} s "
               f"per run, {args.rounds} round(s), median per server, "
               f"{os.cpu_count()} CPUs ({udp_run.placement(cpus)}).\n")
    return run.echo_tables(client, servers, names, args, heading, "TLS, ",
                           functools.partial(run.reference_for, floor="tls-floor"))


def add_arguments(parser):
    parser.add_argument("--py-loops", default=",".join(PY_LOOPS),
                        help="Python loops to run (default tapio,tapio-uring,"
                             "uvloop,asyncio; tapio-uring and tapio-poll are "
                             "tapio on io_uring and on poll)")
    parser.add_argument("--py-modes", default=",".join(PY_MODES),
                        help="Python server modes to run (default protocol)")
    parser.add_argument("--server", action="append", default=[],
                        metavar="NAME=COMMAND",
                        help="another server command ({port}, {cert}, {key} replaced)")


def parse_args():
    args = run.parse_args(__doc__, add_arguments,
                          "interpreter for Python rows (bench/py_echo_server.py "
                          "with --tls; default Debian's python3, which has uvloop); "
                          "'none' for C rows only")
    args.py_loops = [x for x in args.py_loops.split(",") if x]
    args.py_modes = [x for x in args.py_modes.split(",") if x]
    return args


def main():
    args = parse_args()
    bench_dir = os.path.join(args.build_dir, "bench")
    client = os.path.join(bench_dir, "tls_load")
    with tempfile.TemporaryDirectory(prefix="tapio-tls-bench-") as tmp:
        def body(servers):
            run.check_client(client)
            cert, key = make_certs(tmp)
            specs = server_list(bench_dir, args, cert, key)
            cpus = udp_run.start_pinned([make for _, make in specs], servers)
            return benchmark(client, servers, [name for name, _ in specs], args, cpus)

        return run.harness(args, body)


if __name__ == "__main__":
    sys.exit(main())
