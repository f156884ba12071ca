"""Unix stream sockets: create_unix_server/create_unix_connection. The
transport tests shared with TCP are in stream_transport_cases.py; the
Unix-only ones (paths, socket files, errors) are here."""

import asyncio
import os
import pathlib
import socket
import uuid

from .loops import loop_tests
from .stream_transport_cases import StreamTransportCases
from .support import EchoProtocol, RecordingProtocol, UnixEndpoints

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class UnixTransportTests(StreamTransportCases, UnixEndpoints):
    pass


@loop_tests(LOOPS)
class UnixTests(UnixEndpoints):
    def socket_path(self):
        return os.path.join(self.temp_dir(), "test.sock")

    def echo_through(self, path):
        """Connect to path, send a line, return the echo."""
        async def test():
            transport, protocol = await self.loop.create_unix_connection(RecordingProtocol, path)
            self.addCleanup(self._abort, [protocol])
            transport.write(b"unix")
            return await protocol.received(4)
        return self.run_coro(test())

    def test_eof_comes_after_the_callbacks_its_bytes_scheduled(self):
        """Bytes and the EOF behind them, both there before the loop reads:
        what data_received scheduled runs before eof_received (asyncio's
        next read finds the EOF), so a request handler starts before the
        connection is lost."""
        events = []
        ours, peer = socket.socketpair()
        self.addCleanup(peer.close)
        peer.sendall(b"req")
        peer.shutdown(socket.SHUT_WR)

        class Protocol(RecordingProtocol):
            def data_received(self, data):
                super().data_received(data)
                events.append("data")
                asyncio.get_running_loop().call_soon(events.append, "soon")

            def eof_received(self):
                events.append("eof")
                return super().eof_received()

        async def test():
            _, protocol = await self.loop.create_connection(Protocol, sock=ours)
            self.assertIsNone(await protocol.lost)
        self.run_coro(test())
        self.assertEqual(events, ["data", "soon", "eof"])

    def test_addresses(self):
        path = self.socket_path()

        async def test():
            server, accepted = await self.start_server(path=path)
            self.assertEqual(server.sockets[0].getsockname(), path)
            transport, _ = await self.connect(server)
            self.assertEqual(transport.get_extra_info("peername"), path)
            self.assertEqual(transport.get_extra_info("sockname"), "")
        self.run_coro(test())

    def test_path_like_path(self):
        path = pathlib.Path(self.socket_path())

        async def test():
            await self.start_server(EchoProtocol, path=path)
        self.run_coro(test())
        self.assertEqual(self.echo_through(path), b"unix")

    def test_stale_socket_file_is_replaced(self):
        path = self.socket_path()
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(path)  # leaves the file behind, nobody listening

        async def test():
            await self.start_server(EchoProtocol, path=path)
        self.run_coro(test())
        self.assertEqual(self.echo_through(path), b"unix")

    def test_abstract_namespace(self):
        name = "\0tapio-test-" + uuid.uuid4().hex

        async def test():
            await self.start_server(EchoProtocol, path=name)
        self.run_coro(test())
        self.assertEqual(self.echo_through(name), b"unix")

    def test_server_from_a_bound_socket(self):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(self.socket_path())

        async def test():
            server, _ = await self.start_server(EchoProtocol, sock=sock)
            self.assertEqual(server.sockets[0].fileno(), sock.fileno())
        self.run_coro(test())
        self.assertEqual(self.echo_through(sock.getsockname()), b"unix")

    def test_connection_from_a_connected_socket(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX)
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        theirs.sendall(b"pair")

        async def test():
            transport, protocol = await self.loop.create_unix_connection(RecordingProtocol, sock=ours)
            self.addCleanup(self._abort, [protocol])
            self.assertEqual(await protocol.received(4), b"pair")
        self.run_coro(test())

    def test_missing_path(self):
        with self.assertRaises(FileNotFoundError):
            self.run_coro(self.loop.create_unix_connection(RecordingProtocol, self.socket_path()))

    def test_server_bind_failure_raises_and_closes_the_socket(self):
        # The descriptor check at the end of the test sees the socket closed.
        path = os.path.join(self.temp_dir(), "missing-directory", "server.sock")
        with self.assertRaises(FileNotFoundError):
            self.run_coro(self.loop.create_unix_server(RecordingProtocol, path))
        self.assertFalse(os.path.exists(path))

    def test_nobody_listening(self):
        path = self.socket_path()
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(path)
        with self.assertRaises(ConnectionRefusedError):
            self.run_coro(self.loop.create_unix_connection(RecordingProtocol, path))

    def test_argument_errors(self):
        path = self.socket_path()
        with socket.socket(socket.AF_UNIX) as unix, socket.socket() as inet:
            cases = {
                "server: path and sock": self.loop.create_unix_server(RecordingProtocol, path, sock=unix),
                "server: no path nor sock": self.loop.create_unix_server(RecordingProtocol),
                "connection: path and sock": self.loop.create_unix_connection(RecordingProtocol, path, sock=unix),
                "connection: inet sock": self.loop.create_unix_connection(RecordingProtocol, sock=inet),
            }
            for name, coro in cases.items():
                with self.subTest(name):
                    with self.assertRaises(ValueError):
                        self.run_coro(coro)
