#!/usr/bin/env python3
"""Runs the benchmark's echo servers side by side and reports ratios to the floor.

Usage: python3 bench/run.py --build-dir BUILD [--seconds S] [--rounds N] [--quick]
                            [--out FILE] [--json FILE]

--json FILE writes every table's numbers as JSON as well (bench/charts.py
draws them); udp_run.py, tls_run.py and http_run.py take it too.

Every server binary found in BUILD/bench/ is started once on a free port of
127.0.0.1. For each configuration (message size x connection count) the servers
take turns under bench/load_client, so that a noisy machine slows them all
alike; with several rounds each server's median is kept. The server's own CPU
time (utime + stime from /proc) is read around each run, giving CPU time per
request. Absolute numbers vary from machine to machine and run to run; the
ratios to `floor` (a bare epoll echo server) within one run are the result.

Rows ending in -poll run on poll(2), rows ending in -uring on io_uring:
`floor-poll` is a bare poll(2) echo server (bench/poll_floor_echo.c) and
`floor-uring` a bare liburing one (bench/uring_floor_echo.c), the floors of
those backends; `tapio-poll`, `tapio-uring` and `py-tapio-uring-protocol` are
the same programs as `tapio` and `py-tapio-protocol` with TAPIO_BACKEND=poll
or io_uring. Their ratios are to `floor` and uvloop as for every row; a second
table per configuration, "backends", sets each such row beside its epoll twin
(`floor-poll` / `floor`, `tapio-uring` / `tapio`, ...) and each tapio row
beside its backend's floor (`tapio-poll` / `floor-poll`, `tapio-uring` /
`floor-uring`). Every other libtapio row runs on epoll (TAPIO_BACKEND=epoll;
the default backend is io_uring), whatever the caller's environment says.

Exits 1 on a harness failure (a server that does not start or stop cleanly, a
load client error); a server whose binary is missing is only reported missing.
"""
import argparse
import functools
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"
URING = {"TAPIO_BACKEND": "io_uring"}  # libtapio's io_uring backend
POLL = {"TAPIO_BACKEND": "poll"}  # libtapio's poll(2) backend
C_SERVERS = [  # (name, binary in BUILD/bench, arguments after PORT, environment)
    ("floor", "floor_echo", [], {}),
    ("floor-poll", "poll_floor_echo", [], {}),
    ("floor-uring", "uring_floor_echo", [], {}),
    ("tapio", "echo_server", ["protocol"], {}),
    ("tapio-poll", "echo_server", ["protocol"], POLL),
    ("tapio-uring", "echo_server", ["protocol"], URING),
    ("tapio-buffered", "echo_server", ["buffered"], {}),
    ("tapio-streams", "streams_echo", ["read"], {}),
    # readexactly(1 KiB) records: one per request at 1 KiB, 64 at 64 KiB
    ("tapio-streams-exactly", "streams_echo", ["exactly", "1024"], {}),
    ("libuv", "uv_echo", [], {}),
]
# Rows measured at some message sizes only: readexactly(1 KiB) records are one
# per request at 1 KiB, but 64 (each its own write and drain) at 64 KiB.
ONLY_AT_SIZES = {"tapio-streams-exactly": [1024]}
PY_LOOPS = ["tapio", "tapio-uring", "uvloop", "asyncio"]
PY_MODES = ["protocol", "buffered", "streams"]
# A Python row's loop that is not one of py_echo_server.py's own: (its LOOP
# argument, the environment it runs with).
# tapio-poll is not in PY_LOOPS (the C rows show the poll backend), but the
# scripts that take a list of loops (tls_run.py --py-loops) know it.
LOOP_VARIANTS = {"tapio-uring": ("tapio", URING), "tapio-poll": ("tapio", POLL)}
# Loops run in some modes only: io_uring's goal is set for Protocol echo.
ONLY_IN_MODES = {"tapio-uring": ["protocol"], "tapio-poll": ["protocol"]}
# The name part of a row on a backend other than epoll.
BACKEND_SUFFIXES = ["-poll", "-uring"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_SERVER = os.path.join(REPO, "bench", "py_echo_server.py")
MESSAGE_SIZES = [1024, 64 * 1024]
CONNECTION_COUNTS = [10, 100]
WARMUP_SECONDS = 0.3  # load_client's uncounted warm-up
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CLIENT_SLACK = 30.0  # beyond warm-up + run time, before a load client is declared hung
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Every table this run made, as numbers: what --json writes.
TABLES = []


class HarnessError(Exception):
    pass


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, argv, args, env=None, kind=socket.SOCK_STREAM):
        """`env`: variables set for this server only (TAPIO_BACKEND, say)."""
        self.name = name
        self.port = free_port(kind)
        self.argv = argv + [str(self.port)] + args
        self.env = env or {}
        self.proc = None

    def start(self):
        """Start it; False if it reports that it cannot run here."""
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
        # a row names its backend (no suffix: epoll); the caller's choice
        # must not rename it
        env["TAPIO_BACKEND"] = "epoll"
        env.update(self.env)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, env=env)
        except OSError as e:
            raise HarnessError(f"{self.name}: cannot run {self.argv[0]}: {e}")
        line = self._read_line(time.monotonic() + START_TIMEOUT)
        if line == b"unavailable":
            self.proc.wait(STOP_TIMEOUT)
            self.proc.stdout.close()
            return False
        if line != b"ready":
            self.kill()
            raise HarnessError(f"{self.name}: did not start ({' '.join(self.argv)}: "
                               f"printed {line!r} instead of 'ready')")
        return True

    def _read_line(self, deadline):
        fd = self.proc.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
        return data.strip()

    def cpu_seconds(self):
        """(user, system) CPU seconds the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # the command name may hold spaces; fields after it start at 3 (state)
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS

    def check_alive(self):
        if self.proc.poll() is not None:
            raise HarnessError(f"{self.name}: exited with status {self.proc.returncode}")

    def stop(self):
        self.check_alive()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError(f"{self.name}: still running {STOP_TIMEOUT:g} s after SIGTERM")
        finally:
            self.proc.stdout.close()
        if status != 0:
            raise HarnessError(f"{self.name}: exited with status {status} on SIGTERM")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def load(client, server, connections, size, seconds):
    """One load run against `server`: (requests per second, server CPU µs per
    request, of which user-space µs per request)."""
    argv = [client, HOST, str(server.port), str(connections), str(size), str(seconds)]
    cpu_before = server.cpu_seconds()
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=WARMUP_SECONDS + seconds + CLIENT_SLACK)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{server.name}: load client did not finish")
    cpu_after = server.cpu_seconds()
    user = cpu_after[0] - cpu_before[0]
    cpu = user + cpu_after[1] - cpu_before[1]
    server.check_alive()
    if done.returncode != 0:
        raise HarnessError(f"{server.name}: load client failed: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    try:
        result = dict(item.split("=", 1) for item in done.stdout.decode().split())
        rps, total = float(result["rps"]), int(result["total_requests"])
    except (KeyError, ValueError):
        raise HarnessError(f"{server.name}: load client printed {done.stdout!r}")
    # the server's CPU time covers the warm-up too, so divide by every request
    return rps, cpu / total * 1e6, user / total * 1e6


def ratio(value, floor):
    return f"{value / floor:.2f}" if floor else "n/a"


def reference_for(name, floor="floor"):
    """What a row is compared with: `floor` for C servers, uvloop in the
    same mode for Python ones (py-tapio-protocol against py-uvloop-protocol)."""
    if name.startswith("py-"):
        return "py-uvloop-" + name.rsplit("-", 1)[1]
    return floor


def record_table(title, names, results, reference, unit):
    """Appends a table's rows to TABLES; a missing row has no numbers."""
    rows = []
    for name in names:
        row = {"name": name, "reference": reference(name)}
        if name in results:
            row.update(zip(("rps", "cpu_us", "user_us"), results[name]))
        rows.append(row)
    TABLES.append({"title": title, "unit": unit, "rows": rows})


def write_json(path, heading):
    """The run's tables as JSON: {"heading", "tables": [{"title", "unit",
    "rows": [{"name", "reference", "rps", "cpu_us", "user_us"}]}]}."""
    with open(path, "w") as f:
        json.dump({"heading": heading, "tables": TABLES}, f, indent=1)
        f.write("\n")


def table(title, names, results, reference=reference_for, unit="request"):
    """Markdown table; `results` maps a name to (rps, cpu_us, user_us), or lacks
    it if missing; reference(name) names the row it is compared with. The
    numbers are kept in TABLES too."""
    record_table(title, names, results, reference, unit)
    lines = [f"### {title}", "",
             f"| server | {unit}s/s | CPU µs/{unit} | of which user | compared with | "
             "rps ratio | CPU ratio |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for name in names:
        if name not in results:
            sizes = ONLY_AT_SIZES.get(name)
            note = ("only at " + ", ".join(map(size_label, sizes))) if sizes else "missing"
            lines.append(f"| {name} | {note} | | | | | |")
            continue
        rps, cpu, user = results[name]
        ref = reference(name)
        ref_rps, ref_cpu, _ = results.get(ref, (0, 0, 0))
        lines.append(f"| {name} | {rps:,.0f} | {cpu:.2f} | {user:.2f} | {ref} "
                     f"| {ratio(rps, ref_rps)} | {ratio(cpu, ref_cpu)} |")
    return "\n".join(lines) + "\n"


def backend_pairs(names):
    """(row, compared with) for the backends table: each row on another
    backend beside the row named without the suffix (its epoll twin), then
    each tapio row on another backend beside the floor of that backend
    (tapio-poll beside floor-poll)."""
    twins, floors = [], []
    for name in names:
        for suffix in BACKEND_SUFFIXES:
            if suffix in name:
                twins.append((name, name.replace(suffix, "", 1)))
                if "tapio" in name:
                    floors.append((name, name.replace("tapio", "floor", 1)))
    return twins + floors


def twin_table(title, names, results):
    """Markdown table of backend_pairs(names), the rows side by side as
    ratios; None if there is no pair with both rows measured."""
    pairs = [(a, b) for a, b in backend_pairs(names) if a in results and b in results]
    if not pairs:
        return None
    lines = [f"### {title}: backends", "",
             "| row | compared with | rps ratio | CPU ratio |",
             "|---|---|---:|---:|"]
    for row, other in pairs:
        (rps, cpu, _), (ref_rps, ref_cpu, _) = results[row], results[other]
        lines.append(f"| {row} | {other} | {ratio(rps, ref_rps)} | {ratio(cpu, ref_cpu)} |")
    return "\n".join(lines) + "\n"


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def run_configuration(client, servers, connections, size, args):
    """Every server in turn, `args.rounds` times; the median of each server's runs."""
    servers = [s for s in servers if size in ONLY_AT_SIZES.get(s.name, [size])]
    runs = {s.name: [] for s in servers}
    for _ in range(args.rounds):
        for server in servers:
            runs[server.name].append(load(client, server, connections, size, args.seconds))
    return {name: tuple(statistics.median(column) for column in zip(*results))
            for name, results in runs.items()}


def measure(client, servers, names, args, title, connections, size,
            reference=reference_for, unit="request"):
    """One configuration run on every server: its table, printed as well."""
    print(f"running: {title}", file=sys.stderr, flush=True)
    results = run_configuration(client, servers, connections, size, args)
    section = table(title, names, results, reference, unit)
    twins = twin_table(title, names, results)
    if twins:
        section += "\n" + twins
    print(section, flush=True)
    return section


def echo_tables(client, servers, names, args, heading, prefix="",
                reference=reference_for):
    """`heading`, then a table per message size and connection count."""
    report = [heading]
    print(heading, flush=True)
    for size in MESSAGE_SIZES:
        for connections in CONNECTION_COUNTS:
            title = f"{prefix}{size_label(size)} messages, {connections} connections"
            report.append(measure(client, servers, names, args, title, connections,
                                  size, reference))
    return "\n".join(report)


def check_client(client):
    if not os.access(client, os.X_OK):
        raise HarnessError(f"{client}: not found")


def benchmark(bench_dir, servers, args):
    client = os.path.join(bench_dir, "load_client")
    check_client(client)
    heading = (f"Echo benchmark: {args.seconds:g} s per run, {args.rounds} round(s), "
               f"median per server, {os.cpu_count()} CPUs.\n")
    return echo_tables(client, servers, [s.name for s in servers], args, heading)


def parse_args(doc=__doc__, add_arguments=None,
               python_help="interpreter for the Python rows (tapio, uvloop, asyncio); "
                           "'none' leaves them out"):
    """The options every bench script takes; add_arguments(parser) adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--build-dir", required=True,
                        help="CMake build directory; binaries are taken from its bench/")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2)")
    parser.add_argument("--rounds", type=int, help="runs per server and configuration, "
                        "median kept (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="1 s per run, 1 round, unless given otherwise")
    parser.add_argument("--out", help="also write the tables to this file")
    parser.add_argument("--json", help="also write the tables' numbers to this "
                        "file as JSON (for bench/charts.py)")
    parser.add_argument("--python", default=default_python(), help=python_help)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 2.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds and --rounds must be positive")
    return args


def default_python():
    """Debian's python3 has uvloop as a package; otherwise this one."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def c_server_specs(bench_dir, c_servers):
    """(name, argv before PORT, arguments after PORT, environment) of each
    (name, binary in bench_dir, arguments after PORT, environment) whose
    binary is there."""
    specs = []
    for name, binary, extra, env in c_servers:
        path = os.path.join(bench_dir, binary)
        if os.access(path, os.X_OK):
            specs.append((name, [path], extra, env))
        else:
            print(f"{name}: {path} missing, skipped", file=sys.stderr)
    return specs


def py_server_specs(python, loops, modes, extra=()):
    """The same for bench/py_echo_server.py in every mode on every loop (a
    loop of LOOP_VARIANTS too), but a loop of ONLY_IN_MODES in those only."""
    if python == "none":
        return []
    specs = []
    for mode in modes:
        for loop in loops:
            if mode not in ONLY_IN_MODES.get(loop, [mode]):
                continue
            argument, env = LOOP_VARIANTS.get(loop, (loop, {}))
            specs.append((f"py-{loop}-{mode}", [python, PY_SERVER],
                          [argument, mode, *extra], env))
    return specs


def server_specs(bench_dir, python):
    """(name, argv before PORT, arguments after PORT, environment) of every
    server to run."""
    return c_server_specs(bench_dir, C_SERVERS) + py_server_specs(python, PY_LOOPS,
                                                                  PY_MODES)


def start_servers(makers, started):
    """Starts the Server each function of `makers` makes, appending it to
    `started` (so that a failure part-way still leaves the caller the ones to
    kill); one that cannot run here is skipped. Each is made (and takes its
    free port) only once the one before is listening, so no two get one."""
    for make in makers:
        server = make()
        if server.start():
            started.append(server)
        else:
            print(f"{server.name}: not available under {server.argv[0]}, skipped",
                  file=sys.stderr)


def harness(args, body):
    """Runs body(servers), which starts servers into the list `servers` and
    returns the report, then stops them. On a HarnessError: says so, kills
    the servers still running and returns 1. Else writes the report to
    --out and its numbers to --json, if given, and returns 0."""
    servers = []
    try:
        report = body(servers)
        while servers:
            servers.pop(0).stop()
    except HarnessError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        for server in servers:
            if server.proc:
                server.kill()
        return 1
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    if args.json:
        write_json(args.json, report.split("\n", 1)[0])
    return 0


def python_benchmark(python, script, title, args=()):
    """A Python benchmark script's table (it prints markdown), with a title."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    done = subprocess.run([python, os.path.join(REPO, "bench", script), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          timeout=600)
    if done.returncode != 0:
        raise HarnessError(f"{script} failed: {done.stderr.decode(errors='replace')}")
    return f"### {title}\n\n" + done.stdout.decode()


def main():
    args = parse_args()
    bench_dir = os.path.join(args.build_dir, "bench")

    def body(servers):
        start_servers([functools.partial(Server, *spec)
                       for spec in server_specs(bench_dir, args.python)], servers)
        report = benchmark(bench_dir, servers, args)
        if args.python != "none":
            quick = ["--quick"] if args.quick else []
            for script, title, extra in (
                    ("py_loop_bench.py", "Python loop operations", []),
                    ("py_process_bench.py", "Python subprocesses and pipes", quick)):
                section = python_benchmark(args.python, script, title, extra)
                print(section, flush=True)
                report += "\n" + section
        return report

    return harness(args, body)


if __name__ == "__main__":
    sys.exit(main())
