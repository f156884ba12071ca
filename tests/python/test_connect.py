"""create_connection's attempts: the order addresses are tried in (interleave,
happy eyeballs), local addresses, the exceptions asyncio words for each
failure, all_errors, cancellation, and hosts asyncio refuses."""

import asyncio
import errno
import os
import socket
import sys
import time

from .loops import loop_tests, open_fds
from .support import RecordingProtocol, closed_tcp_port

LOOPS = ("asyncio", "tapio")


def _info(family, address):
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)


def _v4(port):
    return _info(socket.AF_INET, ("127.0.0.1", port))


def _v6(port):
    return _info(socket.AF_INET6, ("::1", port, 0, 0))


def _closed_v6_port():
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


def _refused(err=errno.ECONNREFUSED):
    return f"[Errno {err}] Connect call failed"


def _bind_reason(err):
    exc = OSError(err, os.strerror(err))
    return (str(exc) if sys.version_info >= (3, 13) else exc.strerror).lower()


@loop_tests(LOOPS)
class ConnectAttemptTests:
    def listener(self, family=socket.AF_INET, backlog=16):
        sock = socket.socket(family)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        sock.listen(backlog)
        return sock

    def blackhole(self, family=socket.AF_INET):
        """An address whose SYNs go unanswered: a listener with a backlog of
        0 that one connection already fills."""
        sock = self.listener(family, backlog=0)
        filler = socket.socket(family)
        self.addCleanup(filler.close)
        filler.connect(sock.getsockname())
        return sock.getsockname()

    def resolve_to(self, answers):
        """loop.getaddrinfo answers from `answers` (host -> infos)."""
        async def getaddrinfo(host, port, **kwargs):
            return list(answers[host])
        self.loop.getaddrinfo = getaddrinfo

    async def connect(self, host="peer.invalid", port=80, **kwargs):
        transport, protocol = await self.loop.create_connection(
            RecordingProtocol, host, port, **kwargs)
        self.addCleanup(transport.abort)
        return transport

    # ---- order ----------------------------------------------------------

    def test_errors_name_the_addresses_in_the_order_tried(self):
        ports = [closed_tcp_port() for _ in range(2)] + [_closed_v6_port() for _ in range(2)]
        infos = [_v4(ports[0]), _v4(ports[1]), _v6(ports[2]), _v6(ports[3])]
        self.resolve_to({"peer.invalid": infos})
        cases = [
            (dict(), [0, 1, 2, 3]),
            (dict(interleave=0), [0, 1, 2, 3]),
            (dict(interleave=1), [0, 2, 1, 3]),
            (dict(interleave=2), [0, 1, 2, 3]),
            (dict(happy_eyeballs_delay=5), [0, 2, 1, 3]),
            (dict(happy_eyeballs_delay=5, interleave=0), [0, 1, 2, 3]),
        ]
        for kwargs, order in cases:
            with self.subTest(**kwargs):
                with self.assertRaises(OSError) as caught:
                    self.run_coro(self.connect(**kwargs))
                want = ", ".join(f"{_refused()} {infos[i][4]}" for i in order)
                self.assertEqual(str(caught.exception), f"Multiple exceptions: {want}")
                self.assertIsNone(caught.exception.errno)

    def test_interleave_decides_which_family_is_tried_second(self):
        hole = self.blackhole()
        good4 = self.listener().getsockname()
        good6 = self.listener(socket.AF_INET6).getsockname()
        self.resolve_to({"peer.invalid": [_v4(hole[1]), _v4(good4[1]), _v6(good6[1])]})
        for interleave, family in ((1, socket.AF_INET6), (0, socket.AF_INET)):
            with self.subTest(interleave=interleave):
                transport = self.run_coro(self.connect(happy_eyeballs_delay=0.05,
                                                       interleave=interleave))
                self.assertEqual(transport.get_extra_info("socket").family, family)

    # ---- happy eyeballs -----------------------------------------------------

    def test_happy_eyeballs_tries_the_next_address_after_the_delay(self):
        hole = self.blackhole()
        good = self.listener().getsockname()
        self.resolve_to({"peer.invalid": [_v4(hole[1]), _v4(good[1])]})
        delay = 0.2
        start = time.monotonic()
        transport = self.run_coro(self.connect(happy_eyeballs_delay=delay))
        elapsed = time.monotonic() - start
        self.assertEqual(transport.get_extra_info("peername"), good)
        self.assertGreaterEqual(elapsed, delay * 0.9)
        self.assertLess(elapsed, delay + 5)

    def test_without_happy_eyeballs_a_silent_address_holds_the_rest_back(self):
        hole = self.blackhole()
        good = self.listener().getsockname()
        self.resolve_to({"peer.invalid": [_v4(hole[1]), _v4(good[1])]})
        with self.assertRaises(asyncio.TimeoutError):
            self.run_coro(asyncio.wait_for(self.connect(), 0.3))

    def test_a_failure_starts_the_next_attempt_before_the_delay(self):
        good = self.listener().getsockname()
        self.resolve_to({"peer.invalid": [_v4(closed_tcp_port()), _v4(good[1])]})
        start = time.monotonic()
        transport = self.run_coro(self.connect(happy_eyeballs_delay=30))
        self.assertEqual(transport.get_extra_info("peername"), good)
        self.assertLess(time.monotonic() - start, 10)

    # ---- local addresses ----------------------------------------------------

    def test_local_address_failures_are_reported_per_address(self):
        taken = self.listener().getsockname()
        port = closed_tcp_port()
        self.resolve_to({"local.invalid": [_v4(taken[1]), _v4(0)]})
        with self.assertRaises(OSError) as caught:
            self.run_coro(self.connect("127.0.0.1", port, local_addr=("local.invalid", 0)))
        bind = (f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
                f"{taken!r}: {_bind_reason(errno.EADDRINUSE)}")
        self.assertEqual(str(caught.exception),
                         f"Multiple exceptions: {bind}, {_refused()} ('127.0.0.1', {port})")
        if sys.version_info >= (3, 12):
            with self.assertRaises(ExceptionGroup) as group:
                self.run_coro(self.connect("127.0.0.1", port, local_addr=("local.invalid", 0),
                                           all_errors=True))
            self.assertEqual(group.exception.message, "create_connection failed")
            first, second = group.exception.exceptions
            self.assertEqual((type(first), first.errno), (OSError, errno.EADDRINUSE))
            self.assertEqual(str(first), bind)
            self.assertIsInstance(second, ConnectionRefusedError)

    def test_a_local_address_that_binds_is_used(self):
        good = self.listener().getsockname()
        taken = self.listener().getsockname()
        free = closed_tcp_port()
        self.resolve_to({"local.invalid": [_v4(taken[1]), _v4(free)]})
        transport = self.run_coro(self.connect("127.0.0.1", good[1],
                                               local_addr=("local.invalid", 0)))
        self.assertEqual(transport.get_extra_info("sockname"), ("127.0.0.1", free))

    def test_only_a_taken_local_address(self):
        taken = self.listener().getsockname()
        with self.assertRaises(OSError) as caught:
            self.run_coro(self.connect("127.0.0.1", closed_tcp_port(), local_addr=taken))
        self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.assertEqual(str(caught.exception),
                         f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
                         f"{taken!r}: {_bind_reason(errno.EADDRINUSE)}")

    def test_no_local_address_of_the_family(self):
        with self.assertRaises(OSError) as caught:
            self.run_coro(self.connect("127.0.0.1", closed_tcp_port(), local_addr=("::1", 0)))
        self.assertIsNone(caught.exception.errno)
        self.assertEqual(str(caught.exception),
                         f"no matching local address with family={socket.AF_INET!r} found")

    def test_empty_answers(self):
        self.resolve_to({"peer.invalid": [], "local.invalid": []})
        for kwargs in (dict(), dict(host="127.0.0.1", local_addr=("local.invalid", 0))):
            with self.subTest(**kwargs), self.assertRaises(OSError) as caught:
                self.run_coro(self.connect(**kwargs))
            self.assertEqual(str(caught.exception), "getaddrinfo() returned empty list")

    # ---- cancellation ---------------------------------------------------------

    def test_cancelling_leaves_no_socket_open(self):
        hole = self.blackhole()
        self.resolve_to({"peer.invalid": [_v4(hole[1])] * 3})

        async def test():
            before = open_fds()
            for kwargs in (dict(), dict(happy_eyeballs_delay=0.02)):
                task = asyncio.ensure_future(self.connect(**kwargs))
                await asyncio.sleep(0.2)
                self.assertFalse(task.done())
                self.assertGreater(len(open_fds()), len(before))
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                await asyncio.sleep(0.05)
                self.assertEqual(open_fds(), before)
        self.run_coro(test())

    def test_cancel_as_the_connection_completes(self):
        good = self.listener().getsockname()

        async def test():
            before = open_fds()
            for spins in range(6):
                task = asyncio.ensure_future(self.loop.create_connection(
                    RecordingProtocol, *good))
                for _ in range(spins):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    transport, _ = await task
                    transport.close()
                except asyncio.CancelledError:
                    pass
            await asyncio.sleep(0.05)
            self.assertEqual(open_fds(), before)
        self.run_coro(test())

    # ---- hosts asyncio refuses ------------------------------------------------

    def test_a_host_with_a_nul_is_refused_not_truncated(self):
        good = self.listener().getsockname()
        for kwargs in (dict(host="127.0.0.1\0.example", port=good[1]),
                       dict(host="localhost\0.example", port=good[1]),
                       dict(host="127.0.0.1", port=good[1], local_addr=("127.0.0.1\0x", 0))):
            with self.subTest(**kwargs):
                with self.assertRaises(ValueError) as caught:
                    self.run_coro(self.loop.create_connection(RecordingProtocol, **kwargs))
                self.assertEqual(str(caught.exception), "embedded null character")
        with self.assertRaises(ValueError):
            self.run_coro(asyncio.open_connection("localhost\0.example", good[1]))
