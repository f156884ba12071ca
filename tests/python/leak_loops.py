"""Leak checks under load: the failure paths users hit by the thousand
(TLS handshakes that fail verification, connections refused, connections
reset by the peer, subprocesses that cannot start, sendfiles cancelled
mid-way) repeated --cycles times on
one tapio loop must leave RSS, live Python objects and open fds flat.

Usage: PYTHONPATH=python python3 tests/python/leak_loops.py [--cycles N] [--loop tapio|asyncio]
Prints each scenario's growth after a warm-up and ends with 'N passed, N
failed'; a scenario fails if RSS grows by more than --max-rss-kib, live
objects by more than --max-objects, or any fd is left open. --loop asyncio
measures stock asyncio for comparison (its figures are printed, not judged).
"""
import argparse
import asyncio
import ctypes
import gc
import os
import socket
import ssl
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import tapio  # noqa: E402
from tests.python import tls_certs  # noqa: E402

WARMUP = 500


_libc = ctypes.CDLL(None)


def rss_kib():
    """Resident memory once glibc has returned its free pages (malloc_trim),
    so that allocator caching does not pass for a leak."""
    _libc.malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Resetter(asyncio.Protocol):
    """Aborts each accepted connection with an RST (SO_LINGER 0)."""

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        transport.abort()


class Lost(asyncio.Protocol):
    def __init__(self, done):
        self.done = done

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


async def failed_handshake(loop, server_port, client_ctx):
    try:
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", server_port, ssl=client_ctx,
            server_hostname="localhost")
    except (ssl.SSLError, ConnectionError):
        return
    transport.abort()
    raise AssertionError("the handshake was expected to fail verification")


async def refused(loop, port):
    try:
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    except ConnectionRefusedError:
        return
    transport.close()
    raise AssertionError("the connection was expected to be refused")


async def reset(loop, port):
    done = loop.create_future()
    await loop.create_connection(lambda: Lost(done), "127.0.0.1", port)
    exc = await done
    if exc is not None and not isinstance(exc, ConnectionResetError):
        raise AssertionError(f"connection_lost({exc!r})")


class Discard(asyncio.Protocol):
    def data_received(self, data):
        pass


async def cancelled_sendfile(loop, transport, file):
    task = loop.create_task(loop.sendfile(transport, file))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    file.seek(0)


async def failed_spawn(loop):
    try:
        await asyncio.create_subprocess_exec("/nonexistent/tapio-test-program")
    except FileNotFoundError:
        return
    raise AssertionError("the program was expected not to exist")


async def measure(name, step, cycles, limits, verdicts):
    for _ in range(WARMUP):
        await step()
    gc.collect()
    rss, objects, fds = rss_kib(), len(gc.get_objects()), open_fds()
    for _ in range(cycles):
        await step()
    await asyncio.sleep(0)
    gc.collect()
    grew = (rss_kib() - rss, len(gc.get_objects()) - objects, open_fds() - fds)
    ok = grew[0] <= limits[0] and grew[1] <= limits[1] and grew[2] <= 0
    verdicts.append(ok)
    print(f"{name}: {cycles} cycles, RSS {grew[0]:+d} KiB, live objects {grew[1]:+d}, "
          f"fds {grew[2]:+d} -> {'ok' if ok else 'LEAK'}", flush=True)


async def main(args, verdicts):
    loop = asyncio.get_running_loop()
    server_ctx = tls_certs.server_context()
    untrusting = tls_certs.client_context(trust_test_ca=False)
    tls_server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=server_ctx)
    reset_server = await loop.create_server(Resetter, "127.0.0.1", 0)
    tls_port = tls_server.sockets[0].getsockname()[1]
    reset_port = reset_server.sockets[0].getsockname()[1]
    refused_port = closed_port()
    sink = await loop.create_server(Discard, "127.0.0.1", 0)
    sender, _ = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", sink.sockets[0].getsockname()[1])
    big_file = tempfile.TemporaryFile()
    big_file.write(os.urandom(1 << 20))
    big_file.seek(0)
    limits = (args.max_rss_kib, args.max_objects)
    scenarios = [
        ("failed TLS handshakes", lambda: failed_handshake(loop, tls_port, untrusting)),
        ("refused connections", lambda: refused(loop, refused_port)),
        ("reset connections", lambda: reset(loop, reset_port)),
        ("subprocesses that fail to start", lambda: failed_spawn(loop)),
        ("cancelled sendfiles", lambda: cancelled_sendfile(loop, sender, big_file)),
    ]
    for name, step in scenarios:
        await measure(name, step, args.cycles, limits, verdicts)
    tls_server.close()
    reset_server.close()
    sender.close()
    sink.close()
    big_file.close()


def run():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--loop", choices=("tapio", "asyncio"), default="tapio")
    parser.add_argument("--max-rss-kib", type=int, default=2048)
    parser.add_argument("--max-objects", type=int, default=200)
    args = parser.parse_args()
    loop = tapio.new_event_loop() if args.loop == "tapio" else asyncio.new_event_loop()
    verdicts = []
    try:
        loop.run_until_complete(main(args, verdicts))
    finally:
        loop.close()
    if args.loop == "asyncio":
        print("(stock asyncio: figures for comparison only)")
        verdicts = [True] * len(verdicts)
    passed = sum(verdicts)
    print(f"{passed} passed, {len(verdicts) - passed} failed")
    return 0 if passed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(run())
