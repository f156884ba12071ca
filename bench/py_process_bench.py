"""Subprocess benchmarks, asyncio vs uvloop vs tapio in one process:
spawn rate of /bin/true children (1 and 16 at a time) and the throughput of
a child writing to its stdout pipe (SubprocessProtocol and streams), with
the parent's CPU time (user + sys) per spawn and per MiB.

Each measurement runs in a fresh loop; the loops take turns within every
round so that machine noise hits them alike, and the median round is kept.

Usage: python3 bench/py_process_bench.py [--rounds R] [--quick] [--loops L,...]
Prints a markdown table; exits 1 if a child fails or bytes go missing.
Loops: asyncio, uvloop, tapio (libtapio decides how a child's output pipes
are read: through its splice relay).
"""
import argparse
import asyncio
import functools
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, NamedTuple

MIB = 1024 * 1024
TRUE = "/bin/true"
STREAM_CHUNK = 65536


class BenchError(Exception):
    """A run whose counts are wrong: its numbers mean nothing."""


class Meter:
    """Wall and parent CPU time over a block. RUSAGE_SELF covers every
    thread of this process (asyncio's child-watcher threads included) and
    none of the children."""

    def __enter__(self):
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        self.cpu = _cpu_seconds() - self._cpu0


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- spawn rate --------------------------------------------------------------

async def _spawn_worker(remaining, codes):
    while remaining[0] > 0:
        remaining[0] -= 1
        proc = await asyncio.create_subprocess_exec(
            TRUE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        codes.append(await proc.wait())


async def spawn(count, concurrency):
    """`count` children of /bin/true, at most `concurrency` alive at once."""
    remaining, codes = [count], []
    with Meter() as meter:
        await asyncio.gather(*(_spawn_worker(remaining, codes)
                               for _ in range(concurrency)))
    failed = sum(code != 0 for code in codes)
    if len(codes) != count or failed:
        raise BenchError(f"spawn: {len(codes)} of {count} children waited, {failed} failed")
    return meter


# ---- pipe throughput ---------------------------------------------------------

def dd_writer(nbytes):
    """1 MiB writes: the child costs little, the parent's reading is measured."""
    return ("dd", "if=/dev/zero", f"bs={MIB}", f"count={nbytes // MIB}", "status=none")


def head_writer(nbytes):
    """4 KiB writes, as a stdio program makes: many small chunks to collect."""
    return ("head", "-c", str(nbytes), "/dev/zero")


class CountingProtocol(asyncio.SubprocessProtocol):
    """Counts stdout bytes; `done` resolves at connection_lost, which asyncio
    sends only once the child exited and every pipe closed."""

    def __init__(self, done):
        self.done = done
        self.received = 0

    def pipe_data_received(self, fd, data):
        self.received += len(data)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


async def pipe_protocol(writer, nbytes):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    with Meter() as meter:
        transport, protocol = await loop.subprocess_exec(
            lambda: CountingProtocol(done), *writer(nbytes),
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            exc = await done
        finally:
            transport.close()
    _check_pipe("protocol", protocol.received, nbytes, transport.get_returncode(), exc)
    return meter


async def pipe_streams(writer, nbytes):
    received = 0
    with Meter() as meter:
        proc = await asyncio.create_subprocess_exec(
            *writer(nbytes), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        while chunk := await proc.stdout.read(STREAM_CHUNK):
            received += len(chunk)
        code = await proc.wait()
    _check_pipe("streams", received, nbytes, code, None)
    return meter


def _check_pipe(name, received, nbytes, code, exc):
    if received != nbytes or code != 0 or exc is not None:
        raise BenchError(f"pipe {name}: {received} of {nbytes} bytes, "
                         f"exit code {code}, connection_lost({exc!r})")


# ---- the table ---------------------------------------------------------------

class Bench(NamedTuple):
    name: str
    run: Callable  # a fresh coroutine per call, returning its Meter
    units: int     # spawns or MiB
    rate_unit: str
    cpu_unit: str
    cpu_scale: float
    cpu_format: str


def benches(quick):
    spawns = 200 if quick else 500
    mib = 64 if quick else 256
    rows = [Bench(f"spawn {TRUE}, {n} at a time", functools.partial(spawn, spawns, n),
                  spawns, "spawns/s", "µs/spawn", 1e6, "{:,.1f}") for n in (1, 16)]
    for reader, read in (("SubprocessProtocol", pipe_protocol),
                         (f"streams read({STREAM_CHUNK})", pipe_streams)):
        for writes, writer in (("dd, 1 MiB writes", dd_writer),
                               ("head -c, 4 KiB writes", head_writer)):
            rows.append(Bench(f"pipe {mib} MiB, {writes}, {reader}",
                              functools.partial(read, writer, mib * MIB),
                              mib, "MiB/s", "ms/MiB", 1e3, "{:.3f}"))
    return rows


def factories(wanted):
    found = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
        found["uvloop"] = uvloop.new_event_loop
    except ImportError:
        print("uvloop not importable: its column is left out", file=sys.stderr)
    import tapio
    found["tapio"] = tapio.new_event_loop
    return {name: found[name] for name in wanted if name in found}


def run_once(factory, make_coro):
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(make_coro())


def measure(loops, bench_list, rounds):
    """{(bench name, loop name): [Meter per round]}, the loops interleaved."""
    results = {}
    for _ in range(rounds):
        for bench in bench_list:
            for loop_name, factory in loops.items():
                try:
                    meter = run_once(factory, bench.run)
                except BenchError as e:
                    raise BenchError(f"{loop_name}: {e}") from None
                results.setdefault((bench.name, loop_name), []).append(meter)
    return results


def table(loops, bench_list, results):
    names = list(loops)
    lines = ["| benchmark | " + " | ".join(names) + " | tapio / uvloop |",
             "|---|" + "---:|" * (len(names) + 1)]
    for b in bench_list:
        meters = {n: results[b.name, n] for n in names}
        rate = {n: statistics.median(b.units / m.wall for m in meters[n]) for n in names}
        cpu = {n: statistics.median(m.cpu / b.units * b.cpu_scale for m in meters[n])
               for n in names}
        lines.append(_row(f"{b.name} ({b.rate_unit})", rate, names, "{:,.0f}"))
        lines.append(_row(f"{b.name}, parent CPU ({b.cpu_unit}, lower is better)", cpu,
                          names, b.cpu_format))
    return "\n".join(lines)


def _row(label, values, names, fmt):
    cells = " | ".join(fmt.format(values[n]) for n in names)
    ratio = (f"{values['tapio'] / values['uvloop']:.2f}"
             if {"tapio", "uvloop"} <= values.keys() and values["uvloop"] else "n/a")
    return f"| {label} | {cells} | {ratio} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="fewer spawns and 64 MiB instead of 256")
    parser.add_argument("--loops", default="asyncio,uvloop,tapio",
                        help="comma-separated subset, e.g. tapio for profiling")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    loops = factories(args.loops.split(","))
    bench_list = benches(args.quick)
    try:
        results = measure(loops, bench_list, args.rounds)
    except BenchError as e:
        print(f"py_process_bench: {e}", file=sys.stderr)
        return 1
    print(table(loops, bench_list, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
