#!/usr/bin/env python3
"""HTTP servers side by side: aiohttp and uvicorn+httptools hello-world apps
on tapio, uvloop and asyncio, under wrk.

Usage: python3 bench/http_run.py --build-dir BUILD [--seconds S] [--rounds N]
                                 [--quick] [--out FILE] [--json FILE] [--python PY]

For each framework, rows: a 13-byte body over keep-alive connections, a
16 KiB body over keep-alive connections, and a 13-byte body with
`Connection: close` (a new connection per request). The servers take turns
under `wrk -t1 -c50`, pinned to one CPU with wrk on another; with several
rounds each server's median is kept. Reported: requests/s, the server's CPU
time per request (utime + stime from /proc), and ratios to uvloop. The
frameworks are Debian's packages, so --python defaults to Debian's python3.
"""
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys

import run
import udp_run

FRAMEWORKS = ["uvicorn", "aiohttp"]
LOOPS = ["tapio", "tapio-uring", "uvloop", "asyncio"]
SERVER = os.path.join(run.REPO, "bench", "py_http_server.py")
ROWS = [  # (title, body bytes, wrk extra arguments)
    ("13 B body, keep-alive", 13, []),
    ("16 KiB body, keep-alive", 16 * 1024, []),
    ("13 B body, Connection: close", 13, ["-H", "Connection: close"]),
]
CONNECTIONS = 50


def wrk_load(server, seconds, extra):
    """(requests/s, server CPU µs per request, of which user µs)."""
    url = f"http://{run.HOST}:{server.port}/"
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", *extra, url]
    before = server.cpu_seconds()
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=seconds + run.CLIENT_SLACK)
    except subprocess.TimeoutExpired:
        raise run.HarnessError(f"{server.name}: wrk did not finish")
    after = server.cpu_seconds()
    server.check_alive()
    out = done.stdout.decode()
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if done.returncode != 0 or not total or not rps or errors:
        raise run.HarnessError(f"{server.name}: wrk failed: {out} {done.stderr.decode()}")
    user = after[0] - before[0]
    cpu = user + after[1] - before[1]
    requests = int(total.group(1))
    return float(rps.group(1)), cpu / requests * 1e6, user / requests * 1e6


def reference_for(name):
    for loop in LOOPS:
        if name.endswith("-" + loop):
            return name[:-len(loop)] + "uvloop"
    return name


def server_name(framework, loop, size):
    return f"{framework}-{size}-{loop}"


def server_maker(python, framework, loop, size):
    """A server of `framework` on `loop` (tapio-uring: tapio on io_uring)."""
    argument, env = run.LOOP_VARIANTS.get(loop, (loop, {}))
    return functools.partial(run.Server, server_name(framework, loop, size),
                             [python, SERVER], [framework, argument, str(size)], env)


def measure(servers, framework, title, size, extra, args):
    names = [server_name(framework, loop, size) for loop in LOOPS]
    chosen = [s for s in servers if s.name in names]
    runs = {s.name: [] for s in chosen}
    print(f"running: {framework}, {title}", file=sys.stderr, flush=True)
    for _ in range(args.rounds):
        for server in chosen:
            runs[server.name].append(wrk_load(server, args.seconds, extra))
    results = {name: tuple(statistics.median(c) for c in zip(*r)) for name, r in runs.items()}
    section = run.table(f"{framework}: {title}", names, results,
                        lambda name: reference_for(name))
    print(section, flush=True)
    return section


def main():
    args = run.parse_args(__doc__)
    if not shutil.which("wrk"):
        print("http bench: wrk is not installed (make deps installs it)", file=sys.stderr)
        return 1
    sizes = sorted({size for _, size, _ in ROWS})

    def body(servers):
        makers = [server_maker(args.python, f, loop, size)
                  for f in FRAMEWORKS for size in sizes for loop in LOOPS]
        cpus = udp_run.start_pinned(makers, servers)
        report = [f"HTTP benchmark: wrk -t1 -c{CONNECTIONS}, {args.seconds:g} s per run, "
                  f"{args.rounds} round(s), median per server ({udp_run.placement(cpus)}).\n"]
        print(report[0], flush=True)
        for framework in FRAMEWORKS:
            for title, size, extra in ROWS:
                report.append(measure(servers, framework, title, size, extra, args))
        return "\n".join(report)

    return run.harness(args, body)


if __name__ == "__main__":
    sys.exit(main())
