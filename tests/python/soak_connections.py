"""Soak check: many connect / echo / close cycles on one tapio loop leave
memory (RSS) and the fd count flat; with --tls every connection is TLS
(handshake, echo, close_notify both ways).

Usage: PYTHONPATH=python python3 tests/python/soak_connections.py [--cycles N] [--tls]
Exits non-zero if RSS grows by more than --max-growth-mib after the warm-up
or if any fd is left open; prints the measurements either way.
"""
import argparse
import asyncio
import gc
import os
import sys

import tapio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.python import tls_certs  # noqa: E402

WORKERS = 8  # connections cycling at once


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class OneShot(asyncio.Protocol):
    """Sends a byte, waits for its echo, closes, resolves when lost."""

    def __init__(self, done):
        self.done = done

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"x")

    def data_received(self, data):
        self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def cycle(loop, port, tls):
    done = loop.create_future()
    await loop.create_connection(lambda: OneShot(done), "127.0.0.1", port, ssl=tls,
                                 server_hostname="localhost" if tls else None)
    exc = await done
    if exc is not None:
        raise exc


async def run_cycles(loop, port, n, tls):
    async def worker(count):
        for _ in range(count):
            await cycle(loop, port, tls)
    share, extra = divmod(n, WORKERS)
    await asyncio.gather(*[worker(share + (i < extra)) for i in range(WORKERS)])


async def soak(cycles, warmup, use_tls):
    loop = asyncio.get_running_loop()
    server_tls = tls_certs.server_context() if use_tls else None
    client_tls = tls_certs.client_context() if use_tls else None
    server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    await run_cycles(loop, port, warmup, client_tls)
    gc.collect()
    fds_before, rss_before = open_fds(), rss_kib()
    await run_cycles(loop, port, cycles, client_tls)
    await asyncio.sleep(0.05)  # let the server side's connection_lost run
    gc.collect()
    fds_after, rss_after = open_fds(), rss_kib()
    server.close()
    await server.wait_closed()
    return fds_before, fds_after, rss_before, rss_after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--max-growth-mib", type=float, default=8.0)
    parser.add_argument("--tls", action="store_true", help="TLS connections")
    args = parser.parse_args()
    fds_before, fds_after, rss_before, rss_after = tapio.run(
        soak(args.cycles, args.warmup, args.tls))
    growth = (rss_after - rss_before) / 1024
    kind = "TLS " if args.tls else ""
    print(f"{args.cycles} {kind}cycles: RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB "
          f"({growth:+.2f} MiB), fds {fds_before} -> {fds_after}")
    ok = growth <= args.max_growth_mib and fds_after == fds_before
    print(f"{int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
