#!/usr/bin/env python3
"""Runs the UDP echo servers side by side and reports ratios.

Usage: python3 bench/udp_run.py --build-dir BUILD [--seconds S] [--rounds N]
                                [--quick] [--out FILE] [--python PY]

The UDP counterpart of bench/run.py, whose server handling, load runs and
options it reuses. Every server is started once on a free UDP port of
127.0.0.1: udp-floor (a bare blocking recvfrom/sendto loop), udp-tapio
(libtapio's datagram endpoint), and the Python DatagramProtocol echo on
tapio, uvloop and asyncio. For 512-byte datagrams with 1 and 10 clients, the
servers take turns under BUILD/bench/udp_load, each client keeping one
datagram in flight; with several rounds each server's median is kept. C rows
are compared with udp-floor, Python rows with py-uvloop.

With two or more CPUs the servers run pinned to one and the load client to
another: with one datagram in flight, a round trip costs about 3x less when
the scheduler happens to put both on one CPU (no cross-CPU wake-up), and
unpinned runs flip between the two cases at random.

Exits 1 on a harness failure; a missing binary or a loop that cannot run
here is only reported and skipped.
"""
import os
import socket
import sys

import run

C_SERVERS = [  # (name, binary in BUILD/bench)
    ("udp-floor", "udp_floor"),
    ("udp-tapio", "udp_echo"),
]
PY_LOOPS = ["tapio", "uvloop", "asyncio"]
PY_SERVER = os.path.join(run.REPO, "bench", "py_udp_echo.py")
DATAGRAM_SIZE = 512
CLIENT_COUNTS = [1, 10]


def pick_cpus():
    """(server CPU, client CPU), or (None, None) with fewer than two to pin to."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def pin_self(cpu):
    """Pins this process; the servers and load clients it starts inherit it."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def reference_for(name):
    return "py-uvloop" if name.startswith("py-") else "udp-floor"


def server_specs(bench_dir, python):
    """(name, argv before PORT, arguments after PORT) of every server to run."""
    specs = []
    for name, binary in C_SERVERS:
        path = os.path.join(bench_dir, binary)
        if os.access(path, os.X_OK):
            specs.append((name, [path], []))
        else:
            print(f"{name}: {path} missing, skipped", file=sys.stderr)
    if python != "none":
        specs += [(f"py-{loop}", [python, PY_SERVER], [loop]) for loop in PY_LOOPS]
    return specs


def start_servers(bench_dir, python, started):
    """Starts every server, appending it to `started` (so that a failure
    part-way still leaves the caller the ones to kill)."""
    for name, argv, extra in server_specs(bench_dir, python):
        server = run.Server(name, argv, extra, socket.SOCK_DGRAM)
        if server.start():
            started.append(server)
        else:
            print(f"{name}: not available under {argv[0]}, skipped", file=sys.stderr)


def benchmark(client, servers, args, cpus):
    # every name the table shows, so that a skipped server reads "missing"
    names = [name for name, _ in C_SERVERS]
    names += [f"py-{loop}" for loop in PY_LOOPS] if args.python != "none" else []
    server_cpu, client_cpu = cpus
    placement = (f"servers on CPU {server_cpu}, load client on CPU {client_cpu}"
                 if server_cpu is not None else "unpinned")
    report = [f"UDP echo benchmark: {args.seconds:g} s per run, {args.rounds} round(s), "
              f"median per server, {os.cpu_count()} CPUs ({placement}).\n"]
    print(report[0], flush=True)
    for clients in CLIENT_COUNTS:
        title = (f"{run.size_label(DATAGRAM_SIZE)} datagrams, {clients} "
                 f"client{'s' if clients > 1 else ''}")
        print(f"running: {title}", file=sys.stderr, flush=True)
        results = run.run_configuration(client, servers, clients, DATAGRAM_SIZE, args)
        report.append(run.table(title, names, results, reference_for, "round trip"))
        print(report[-1], flush=True)
    return "\n".join(report)


def main():
    args = run.parse_args()
    bench_dir = os.path.join(args.build_dir, "bench")
    client = os.path.join(bench_dir, "udp_load")
    cpus = pick_cpus()
    servers = []
    try:
        if not os.access(client, os.X_OK):
            raise run.HarnessError(f"{client}: not found")
        pin_self(cpus[0])
        start_servers(bench_dir, args.python, servers)
        pin_self(cpus[1])
        report = benchmark(client, servers, args, cpus)
        while servers:
            servers.pop(0).stop()
    except run.HarnessError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        for server in servers:
            server.kill()
        return 1
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
