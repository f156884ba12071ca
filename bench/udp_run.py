#!/usr/bin/env python3
"""Runs the UDP echo servers side by side and reports ratios.

Usage: python3 bench/udp_run.py --build-dir BUILD [--seconds S] [--rounds N]
                                [--quick] [--out FILE] [--json FILE] [--python PY]

The UDP counterpart of bench/run.py, whose server handling, load runs and
options it reuses. Every server is started once on a free UDP port of
127.0.0.1: udp-floor (a bare blocking recvfrom/sendto loop), udp-tapio
(libtapio's datagram endpoint), and the Python DatagramProtocol echo on
tapio, uvloop and asyncio; udp-tapio-uring and py-tapio-uring are udp-tapio
and py-tapio with TAPIO_BACKEND=io_uring (libtapio's io_uring backend). For
512-byte datagrams with 1 and 10 clients, the servers take turns under
BUILD/bench/udp_load, each client keeping one datagram in flight; with
several rounds each server's median is kept. C rows are compared with
udp-floor, Python rows with py-uvloop; a second table sets each -uring row
beside its epoll twin.

With two or more CPUs the servers run pinned to one and the load client to
another: with one datagram in flight, a round trip costs about 3x less when
the scheduler happens to put both on one CPU (no cross-CPU wake-up), and
unpinned runs flip between the two cases at random.

Exits 1 on a harness failure; a missing binary or a loop that cannot run
here is only reported and skipped.
"""
import functools
import os
import socket
import sys

import run

C_SERVERS = [  # (name, binary in BUILD/bench, arguments after PORT, environment)
    ("udp-floor", "udp_floor", [], {}),
    ("udp-tapio", "udp_echo", [], {}),
    ("udp-tapio-uring", "udp_echo", [], run.URING),
]
PY_LOOPS = ["tapio", "tapio-uring", "uvloop", "asyncio"]
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


def start_pinned(makers, started):
    """run.start_servers with the servers pinned to one CPU and this process
    (so the load clients) then to another; returns (server CPU, client CPU)."""
    cpus = pick_cpus()
    pin_self(cpus[0])
    run.start_servers(makers, started)
    pin_self(cpus[1])
    return cpus


def placement(cpus):
    """Where start_pinned put the servers and the load client, for a heading."""
    server_cpu, client_cpu = cpus
    return (f"servers on CPU {server_cpu}, load client on CPU {client_cpu}"
            if server_cpu is not None else "unpinned")


def reference_for(name):
    return "py-uvloop" if name.startswith("py-") else "udp-floor"


def server_specs(bench_dir, python):
    """(name, argv before PORT, arguments after PORT) of every server to run."""
    specs = run.c_server_specs(bench_dir, C_SERVERS)
    if python != "none":
        for loop in PY_LOOPS:
            argument, env = run.LOOP_VARIANTS.get(loop, (loop, {}))
            specs.append((f"py-{loop}", [python, PY_SERVER], [argument], env))
    return specs


def benchmark(client, servers, args, cpus):
    # every name the table shows, so that a skipped server reads "missing"
    names = [name for name, _, _, _ in C_SERVERS]
    names += [f"py-{loop}" for loop in PY_LOOPS] if args.python != "none" else []
    report = [f"UDP echo benchmark: {args.seconds:g} s per run, {args.rounds} round(s), "
              f"median per server, {os.cpu_count()} CPUs ({placement(cpus)}).\n"]
    print(report[0], flush=True)
    for clients in CLIENT_COUNTS:
        title = (f"{run.size_label(DATAGRAM_SIZE)} datagrams, {clients} "
                 f"client{'s' if clients > 1 else ''}")
        report.append(run.measure(client, servers, names, args, title, clients,
                                  DATAGRAM_SIZE, reference_for, "round trip"))
    return "\n".join(report)


def main():
    args = run.parse_args()
    bench_dir = os.path.join(args.build_dir, "bench")
    client = os.path.join(bench_dir, "udp_load")

    def body(servers):
        run.check_client(client)
        cpus = start_pinned([functools.partial(run.Server, *spec, kind=socket.SOCK_DGRAM)
                             for spec in server_specs(bench_dir, args.python)], servers)
        return benchmark(client, servers, args, cpus)

    return run.harness(args, body)


if __name__ == "__main__":
    sys.exit(main())
