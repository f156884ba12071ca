"""set_write_buffer_limits / get_write_buffer_limits on every transport kind
that has them (TCP stream, write pipe, datagram, TLS), with asyncio's edge
values: None, 0, floats, huge integers, negative values, high < low.

The expected values are asyncio's (the same on 3.11, 3.12 and 3.13; each
case runs on stock asyncio too), read back as asyncio keeps them: floats as
floats, integers past 2**63 whole (libtapio compares sizes with them floored
and saturated, which pauses and resumes alike: the buffer size is an integer
and never gets near 2**63).
"""

import asyncio
import os
import socket

from . import tls_certs
from .loops import loop_tests
from .support import EchoProtocol

LOOPS = ("asyncio", "tapio")

STREAM_DEFAULT = (16384, 65536)
TLS_DEFAULT = (131072, 524288)  # asyncio's sslproto: 512 KiB high

# (arguments, expected (low, high) or None for the kind's default)
ACCEPTED = [
    ((), None),
    ((None, None), None),
    ((0,), (0, 0)),
    ((None, 0), (0, 0)),
    ((0, 0), (0, 0)),
    ((1000,), (250, 1000)),
    ((None, 100), (100, 400)),
    ((100, 100), (100, 100)),
    ((3,), (0, 3)),
    ((2**61,), (2**59, 2**61)),
    ((None, 2**61), (2**61, 2**63)),  # issue: 4 * low overflowed a ssize_t
]
# Floats are accepted and kept.
FLOATS = [
    ((1.5,), (0.0, 1.5)),
    ((None, 1.5), (1.5, 6.0)),
    ((10.7, 2.2), (2.2, 10.7)),
    ((2.5, 2.5), (2.5, 2.5)),
    ((float("inf"), 3), (3, float("inf"))),
]
# Integers past what a C size holds, kept whole.
HUGE = [
    ((2**64,), (2**62, 2**64)),
    ((2**64 + 1,), ((2**64 + 1) // 4, 2**64 + 1)),
    ((None, 2**64), (2**64, 2**66)),
    ((2**100, 2**64), (2**64, 2**100)),
    ((2**63,), (2**61, 2**63)),
]
# (arguments, exception type, message or None)
REFUSED = [
    ((-1,), ValueError, "high (-1) must be >= low (-1) must be >= 0"),
    ((-5,), ValueError, "high (-5) must be >= low (-2) must be >= 0"),
    ((None, -1), ValueError, "high (-4) must be >= low (-1) must be >= 0"),
    ((1, 2), ValueError, "high (1) must be >= low (2) must be >= 0"),
    ((0, 5), ValueError, "high (0) must be >= low (5) must be >= 0"),
    ((10, -1), ValueError, "high (10) must be >= low (-1) must be >= 0"),
    ((-2**70,), ValueError, None),
    ((2.2, 2.5), ValueError, "high (2.2) must be >= low (2.5) must be >= 0"),
    ((float("nan"),), ValueError, "high (nan) must be >= low (nan) must be >= 0"),
    ((float("inf"),), ValueError, "high (inf) must be >= low (nan) must be >= 0"),
    ((None, float("nan")), ValueError, "high (nan) must be >= low (nan) must be >= 0"),
    (("a",), TypeError, None),
    ((None, "a"), TypeError, None),
]


@loop_tests(LOOPS)
class WriteLimitsTests:

    def check_limits(self, transport, default):
        set_limits = transport.set_write_buffer_limits
        self.assertEqual(transport.get_write_buffer_limits(), default)
        for args, want in ACCEPTED:
            with self.subTest(args=args):
                set_limits(*args)
                self.assertEqual(transport.get_write_buffer_limits(),
                                 default if want is None else want)
        set_limits(high=1000, low=10)  # keywords too
        self.assertEqual(transport.get_write_buffer_limits(), (10, 1000))
        for args, want in FLOATS + HUGE:
            with self.subTest(args=args):
                set_limits(*args)
                got = transport.get_write_buffer_limits()
                self.assertEqual(got, want)
                self.assertEqual([type(v) for v in got], [type(v) for v in want])
        set_limits(high=1000, low=10)
        for args, exc_type, message in REFUSED:
            with self.subTest(args=args):
                with self.assertRaises(exc_type) as caught:
                    set_limits(*args)
                if message is not None:
                    self.assertEqual(str(caught.exception), message)
                # A refused call changes nothing.
                self.assertEqual(transport.get_write_buffer_limits(), (10, 1000))
        set_limits()
        self.assertEqual(transport.get_write_buffer_limits(), default)

    def test_stream_transport(self):
        async def main():
            a, b = socket.socketpair()
            self.addCleanup(b.close)
            transport, _ = await self.loop.create_connection(asyncio.Protocol, sock=a)
            try:
                self.check_limits(transport, STREAM_DEFAULT)
            finally:
                transport.close()
                await asyncio.sleep(0)
        self.run_coro(main())

    def test_write_pipe_transport(self):
        async def main():
            rfd, wfd = os.pipe()
            self.addCleanup(os.close, rfd)
            pipe = open(wfd, "wb", buffering=0)
            transport, _ = await self.loop.connect_write_pipe(asyncio.BaseProtocol, pipe)
            try:
                self.check_limits(transport, STREAM_DEFAULT)
            finally:
                transport.close()
                await asyncio.sleep(0)
        self.run_coro(main())

    def test_datagram_transport(self):
        async def main():
            transport, _ = await self.loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            try:
                self.check_limits(transport, STREAM_DEFAULT)
            finally:
                transport.close()
                await asyncio.sleep(0)
        self.run_coro(main())

    def test_tls_transport_default_limits(self):
        async def main():
            server = await self.loop.create_server(
                EchoProtocol, "127.0.0.1", 0, ssl=tls_certs.server_context())
            port = server.sockets[0].getsockname()[1]
            transport, _ = await self.loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=tls_certs.client_context(),
                server_hostname="localhost")
            try:
                self.assertIsNotNone(transport.get_extra_info("ssl_object"))
                self.check_limits(transport, TLS_DEFAULT)
            finally:
                transport.close()
                server.close()
                await server.wait_closed()
        self.run_coro(main())
