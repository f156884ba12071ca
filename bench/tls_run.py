#!/usr/bin/env python3
"""Runs the TLS echo servers side by side and reports ratios to the TLS floor.

Usage: python3 bench/tls_run.py --build-dir BUILD [--seconds S] [--rounds N]
                                [--quick] [--out FILE] [--python PY]
                                [--py-loops L,...] [--py-modes M,...]
                                [--server NAME=COMMAND ...]

The TLS counterpart of bench/run.py, whose server handling, load runs, table
and options it reuses. A CA and a server certificate for 127.0.0.1 are made
for the run with the openssl command (EC P-256, TLS 1.3 is negotiated). Every
server is started once on a free port of 127.0.0.1:

  tls-floor            BUILD/bench/tls_floor: OpenSSL over epoll, nothing else
  tls-tapio            BUILD/bench/tls_echo_server: libtapio's TLS server,
                       a Protocol echoing from data_received
  tls-tapio-buffered   the same with a buffered protocol
  py-LOOP-MODE         bench/py_echo_server.py PORT LOOP MODE
                       --tls CERT KEY (tapio, uvloop, asyncio; a server that
                       prints 'unavailable' is skipped)
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
rows with py-uvloop in the same mode, extra servers with tls-floor.
Python rows run with Debian's python3 unless --python says otherwise
(--python none leaves them out).

With two or more CPUs the servers run pinned to one and the load client to
another (as bench/udp_run.py does): the load client does as much TLS work as
the server, and unpinned runs swing with where the scheduler puts the two.

Exits 1 on a harness failure; a missing binary is only reported and skipped.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import run
import udp_run

C_SERVERS = [  # (name, binary in BUILD/bench, arguments after PORT CERT KEY)
    ("tls-floor", "tls_floor", []),
    ("tls-tapio", "tls_echo_server", ["protocol"]),
    ("tls-tapio-buffered", "tls_echo_server", ["buffered"]),
]
PY_LOOPS = ["tapio", "uvloop", "asyncio"]
PY_MODES = ["protocol"]
PY_SERVER = os.path.join(run.REPO, "bench", "py_echo_server.py")


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
    specs = []
    for name, binary, extra in C_SERVERS:
        path = os.path.join(bench_dir, binary)
        if os.access(path, os.X_OK):
            specs.append((name, lambda n=name, p=path, e=extra:
                          run.Server(n, [p], [cert, key, *e])))
        else:
            print(f"{name}: {path} missing, skipped", file=sys.stderr)
    if args.python != "none":
        for mode in args.py_modes:
            for loop in args.py_loops:
                specs.append((f"py-{loop}-{mode}", lambda l=loop, m=mode:
                              run.Server(f"py-{l}-{m}", [args.python, PY_SERVER],
                                         [l, m, "--tls", cert, key])))
    for item in args.server:
        name, _, command = item.partition("=")
        if not name or not command:
            raise run.HarnessError(f"--server {item!r}: expected NAME=COMMAND")
        specs.append((name, lambda n=name, c=command: CommandServer(n, c, cert, key)))
    return specs


def reference_for(name):
    if name.startswith("py-"):
        return "py-uvloop-" + name.rsplit("-", 1)[1]
    return "tls-floor"


def benchmark(client, servers, names, args, cpus):
    server_cpu, client_cpu = cpus
    placement = (f"servers on CPU {server_cpu}, load client on CPU {client_cpu}"
                 if server_cpu is not None else "unpinned")
    report = [f"TLS echo benchmark (TLS 1.3, EC P-256 certificate): {args.seconds:g} s "
              f"per run, {args.rounds} round(s), median per server, "
              f"{os.cpu_count()} CPUs ({placement}).\n"]
    print(report[0], flush=True)
    for size in run.MESSAGE_SIZES:
        for connections in run.CONNECTION_COUNTS:
            title = f"TLS, {run.size_label(size)} messages, {connections} connections"
            print(f"running: {title}", file=sys.stderr, flush=True)
            results = run.run_configuration(client, servers, connections, size, args)
            report.append(run.table(title, names, results, reference_for))
            print(report[-1], flush=True)
    return "\n".join(report)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True,
                        help="CMake build directory; binaries are taken from its bench/")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2)")
    parser.add_argument("--rounds", type=int, help="runs per server and configuration, "
                        "median kept (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="1 s per run, 1 round, unless given otherwise")
    parser.add_argument("--out", help="also write the tables to this file")
    parser.add_argument("--python", default=run.default_python(),
                        help="interpreter for Python rows (bench/py_echo_server.py "
                        "with --tls; default Debian's python3, which has uvloop); "
                        "'none' for C rows only")
    parser.add_argument("--py-loops", default=",".join(PY_LOOPS),
                        help="Python loops to run (default tapio,uvloop,asyncio)")
    parser.add_argument("--py-modes", default=",".join(PY_MODES),
                        help="Python server modes to run (default protocol)")
    parser.add_argument("--server", action="append", default=[],
                        metavar="NAME=COMMAND",
                        help="another server command ({port}, {cert}, {key} replaced)")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 2.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds and --rounds must be positive")
    args.py_loops = [x for x in args.py_loops.split(",") if x]
    args.py_modes = [x for x in args.py_modes.split(",") if x]
    return args


def main():
    args = parse_args()
    bench_dir = os.path.join(args.build_dir, "bench")
    client = os.path.join(bench_dir, "tls_load")
    servers = []
    with tempfile.TemporaryDirectory(prefix="tapio-tls-bench-") as tmp:
        try:
            if not os.access(client, os.X_OK):
                raise run.HarnessError(f"{client}: not found")
            cert, key = make_certs(tmp)
            specs = server_list(bench_dir, args, cert, key)
            cpus = udp_run.pick_cpus()
            udp_run.pin_self(cpus[0])
            for name, make in specs:
                server = make()
                if server.start():
                    servers.append(server)
                else:
                    print(f"{name}: not available, skipped", file=sys.stderr)
            udp_run.pin_self(cpus[1])
            report = benchmark(client, servers, [name for name, _ in specs], args,
                               cpus)
            while servers:
                servers.pop(0).stop()
        except run.HarnessError as e:
            print(f"bench: error: {e}", file=sys.stderr)
            for server in servers:
                if server.proc:
                    server.kill()
            return 1
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
