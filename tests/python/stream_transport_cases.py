"""Tests every stream transport passes, TCP and Unix alike.

StreamTransportCases is a mixin for test modules: combined with TcpEndpoints
or UnixEndpoints (support.py), which say how to listen and connect, and with
raw_socket_pair() (two connected blocking sockets of that kind), it becomes
the shared half of test_tcp.py and test_unix.py.
"""

import asyncio
import errno
import gc
import os
import socket
import sys
import tempfile
import warnings
import weakref

from .support import (EchoProtocol, RecordingBufferedProtocol, RecordingProtocol,
                      pair_on_fd_number, wait_until)

BIG = 16 << 20  # more than any socket buffer holds, so some stays in the transport


class NonReadingProtocol(RecordingProtocol):
    """Pauses reading, so that the peer's writes back up. Its made future
    resolves only once reading is paused."""

    def connection_made(self, transport):
        self.events.append("connection_made")
        self.transport = transport
        # Paused from the next iteration on: Python 3.11.2's transport starts
        # reading only after connection_made and so would undo a pause here.
        asyncio.get_running_loop().call_soon(self._pause)

    def _pause(self):
        self.transport.pause_reading()
        self.made.set_result(None)


class GreetingProtocol(RecordingProtocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"hello from connection_made")


class KeepOpenOnEofProtocol(RecordingProtocol):
    """Answers 'bye' to the peer's EOF, then closes."""
    keep_open_on_eof = True

    def eof_received(self):
        super().eof_received()
        self.transport.write(b"bye")
        self.transport.close()
        return True


class BufferSizeAtResumeProtocol(RecordingProtocol):
    def resume_writing(self):
        super().resume_writing()
        self.size_at_resume = self.transport.get_write_buffer_size()


class StreamTransportCases:
    def run_connected(self, test, **pair_kwargs):
        """Run coroutine function test(transport, protocol, server_protocol)."""
        async def connected():
            return await test(*await self.connected_pair(**pair_kwargs))
        return self.run_coro(connected())

    def data_file(self, content):
        file = tempfile.TemporaryFile()
        self.addCleanup(file.close)
        file.write(content)
        file.seek(0)
        return file

    # -- extra info

    def test_accepted_socket_and_addresses(self):
        # The server side's socket object has the listening socket's family,
        # SOCK_STREAM and the protocol the kernel reports; its sockname and
        # peername are the client's addresses the other way round.
        async def test(transport, protocol, server_protocol):
            server_side = server_protocol.transport
            sock = server_side.get_extra_info("socket")
            client = transport.get_extra_info("socket")
            self.assertEqual((sock.family, sock.type), (client.family, socket.SOCK_STREAM))
            self.assertEqual(sock.proto, sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
            self.assertEqual(server_side.get_extra_info("sockname"),
                             transport.get_extra_info("peername"))
            self.assertEqual(server_side.get_extra_info("peername"),
                             transport.get_extra_info("sockname"))
            self.assertEqual(server_side.get_extra_info("sockname"), sock.getsockname())
        self.run_connected(test)

    # -- data both ways

    def test_echo_round_trip(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"ping")
            self.assertEqual(await protocol.received(4), b"ping")
            self.assertEqual(server_protocol.data, b"ping")
        self.run_connected(test, server_protocol=EchoProtocol)

    def test_data_received_gets_bytes(self):
        async def test(transport, protocol, server_protocol):
            transport.write(bytearray(b"abc"))
            transport.write(memoryview(b"def"))
            await server_protocol.received(6)
            self.assertEqual(server_protocol.chunk_types, {bytes})
        self.run_connected(test)

    def test_write_accepts_bytes_like_objects(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"by")
            transport.write(bytearray(b"te"))
            transport.write(memoryview(b"-s-")[1:2])
            transport.writelines([b"li", bytearray(b"nes"), memoryview(b"!")])
            self.assertEqual(await server_protocol.received(11), b"byteslines!")
        self.run_connected(test)

    def test_write_refuses_str(self):
        async def test(transport, protocol, server_protocol):
            with self.assertRaises(TypeError):
                transport.write("text")
        self.run_connected(test)

    def test_empty_write_does_nothing(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"")
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.write(b"!")
            self.assertEqual(await server_protocol.received(1), b"!")
        self.run_connected(test)

    def test_write_in_connection_made(self):
        async def test(transport, protocol, server_protocol):
            self.assertEqual(await protocol.received(26), b"hello from connection_made")
        self.run_connected(test, server_protocol=GreetingProtocol)

    def test_callbacks_come_in_order(self):
        async def test(transport, protocol, server_protocol):
            server_protocol.transport.write(b"data")
            await protocol.received(4)
            server_protocol.transport.close()
            await protocol.lost
            self.assertEqual(protocol.events[0], "connection_made")
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
            self.assertEqual(set(protocol.events[1:-2]), {"data_received"})
        self.run_connected(test)

    def test_large_transfer_arrives_whole(self):
        payload = os.urandom(8 << 20)

        async def test(transport, protocol, server_protocol):
            transport.write(payload)
            self.assertEqual(await server_protocol.received(len(payload), timeout=30), payload)
        self.run_connected(test)

    def test_many_concurrent_connections(self):
        async def exchange(server, i):
            transport, protocol = await self.connect(server)
            message = f"client {i}".encode()
            transport.write(message)
            reply = await protocol.received(len(message))
            transport.close()
            await protocol.lost
            return reply

        async def test():
            server, accepted = await self.start_server(EchoProtocol)
            replies = await asyncio.gather(*(exchange(server, i) for i in range(30)))
            self.assertEqual(replies, [f"client {i}".encode() for i in range(30)])
            self.assertEqual(len(accepted), 30)
        self.run_coro(test())

    # -- what a transport is

    def test_transports_are_asyncio_transports(self):
        async def test(transport, protocol, server_protocol):
            for t in (transport, server_protocol.transport):
                self.assertIsInstance(t, asyncio.Transport)
                self.assertIsInstance(t, asyncio.ReadTransport)
                self.assertIsInstance(t, asyncio.WriteTransport)
                self.assertIsInstance(t, asyncio.BaseTransport)
            self.assertIs(protocol.transport, transport)
        self.run_connected(test)

    def test_extra_info_socket(self):
        async def test(transport, protocol, server_protocol):
            sock = transport.get_extra_info("socket")
            self.assertEqual(sock.family, self.family)
            self.assertEqual(sock.type, socket.SOCK_STREAM)
            self.assertIsInstance(sock.fileno(), int)
            self.assertEqual(transport.get_extra_info("sockname"), sock.getsockname())
            self.assertEqual(transport.get_extra_info("peername"), sock.getpeername())
        self.run_connected(test)

    def test_extra_info_addresses_match_across_the_connection(self):
        async def test(transport, protocol, server_protocol):
            server_transport = server_protocol.transport
            self.assertEqual(transport.get_extra_info("peername"),
                             server_transport.get_extra_info("sockname"))
            self.assertEqual(transport.get_extra_info("sockname"),
                             server_transport.get_extra_info("peername"))
        self.run_connected(test)

    def test_extra_info_default(self):
        async def test(transport, protocol, server_protocol):
            self.assertIsNone(transport.get_extra_info("no such key"))
            self.assertEqual(transport.get_extra_info("no such key", "fallback"), "fallback")
        self.run_connected(test)

    def test_get_and_set_protocol(self):
        async def test(transport, protocol, server_protocol):
            self.assertIs(transport.get_protocol(), protocol)
            replacement = RecordingProtocol()
            transport.set_protocol(replacement)
            self.assertIs(transport.get_protocol(), replacement)
            server_protocol.transport.write(b"to the new one")
            self.assertEqual(await replacement.received(14), b"to the new one")
            self.assertEqual(protocol.data, b"")
        self.run_connected(test)

    # -- EOF, close, abort

    def test_can_write_eof(self):
        async def test(transport, protocol, server_protocol):
            self.assertTrue(transport.can_write_eof())
        self.run_connected(test)

    def test_write_eof_half_closes(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"request")
            transport.write_eof()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.data, b"bye")
            self.assertEqual(server_protocol.data, b"request")
        self.run_connected(test, server_protocol=KeepOpenOnEofProtocol)

    def test_write_after_write_eof_raises(self):
        async def test(transport, protocol, server_protocol):
            transport.write_eof()
            with self.assertRaises(RuntimeError):
                transport.write(b"too late")
        self.run_connected(test, server_protocol=KeepOpenOnEofProtocol)

    def test_eof_received_returning_false_closes(self):
        async def test(transport, protocol, server_protocol):
            transport.write_eof()
            self.assertIsNone(await server_protocol.lost)
            self.assertEqual(server_protocol.events[-2:], ["eof_received", "connection_lost"])
            self.assertIsNone(await protocol.lost)
        self.run_connected(test)

    def test_peer_close_gives_eof_then_connection_lost(self):
        async def test(transport, protocol, server_protocol):
            server_protocol.transport.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "eof_received", "connection_lost"])
        self.run_connected(test)

    def test_close_calls_connection_lost_once_later(self):
        async def test(transport, protocol, server_protocol):
            transport.close()
            self.assertTrue(transport.is_closing())
            self.assertNotIn("connection_lost", protocol.events)  # not inside close()
            transport.close()
            self.assertIsNone(await protocol.lost)
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_connected(test)

    def test_close_flushes_the_write_buffer(self):
        payload = os.urandom(BIG)

        async def test(transport, protocol, server_protocol):
            transport.write(payload)
            transport.close()
            server_protocol.transport.resume_reading()
            self.assertEqual(await server_protocol.received(BIG, timeout=30), payload)
            await server_protocol.eof
            self.assertIsNone(await protocol.lost)
        self.run_connected(test, server_protocol=NonReadingProtocol)

    def test_abort_drops_the_write_buffer(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"x" * BIG)
            self.assertGreater(transport.get_write_buffer_size(), 0)
            transport.abort()
            self.assertTrue(transport.is_closing())
            self.assertNotIn("connection_lost", protocol.events)  # not inside abort()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            server_protocol.transport.resume_reading()
            await server_protocol.lost
            self.assertLess(len(server_protocol.data), BIG)
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_connected(test, server_protocol=NonReadingProtocol)

    def test_writes_of_one_callback_arrive_in_order_before_close_eof_or_abort(self):
        # Several writes in one callback, then close / write_eof / abort:
        # the peer gets every byte in order, then the end (tapio sends the
        # callback's writes together; asyncio sends each at once).
        for end in ("close", "write_eof", "abort"):
            async def test(transport, protocol, server_protocol, end=end):
                for piece in (b"one ", b"two ", b"three"):
                    transport.write(piece)
                getattr(transport, end)()
                await asyncio.wait_for(server_protocol.eof if end != "abort"
                                       else server_protocol.lost, 5)
                self.assertEqual(bytes(server_protocol.data), b"one two three")
                if end == "write_eof":
                    transport.close()
                self.assertIsNone(await protocol.lost)
            with self.subTest(end):
                self.run_connected(test)

    def test_close_then_abort_calls_connection_lost_once(self):
        async def test(transport, protocol, server_protocol):
            transport.close()
            transport.abort()
            await protocol.lost
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_connected(test)

    # -- reading flow control

    def test_pause_and_resume_reading(self):
        async def test(transport, protocol, server_protocol):
            self.assertTrue(transport.is_reading())
            transport.pause_reading()
            transport.pause_reading()  # idempotent
            self.assertFalse(transport.is_reading())
            server_protocol.transport.write(b"held back")
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.data, b"")
            transport.resume_reading()
            transport.resume_reading()
            self.assertTrue(transport.is_reading())
            self.assertEqual(await protocol.received(9), b"held back")
        self.run_connected(test)

    def test_is_reading_false_after_close(self):
        async def test(transport, protocol, server_protocol):
            transport.close()
            self.assertFalse(transport.is_reading())
            await protocol.lost
            self.assertFalse(transport.is_reading())
        self.run_connected(test)

    def test_closing_a_paused_transport(self):
        async def test(transport, protocol, server_protocol):
            transport.pause_reading()
            transport.close()
            self.assertIsNone(await protocol.lost)
        self.run_connected(test)

    # -- writing flow control

    def test_write_buffer_limits(self):
        async def test(transport, protocol, server_protocol):
            self.assertEqual(transport.get_write_buffer_limits(), (16384, 65536))
            transport.set_write_buffer_limits(high=100)
            self.assertEqual(transport.get_write_buffer_limits(), (25, 100))
            transport.set_write_buffer_limits(low=1000)
            self.assertEqual(transport.get_write_buffer_limits(), (1000, 4000))
            transport.set_write_buffer_limits(high=0)
            self.assertEqual(transport.get_write_buffer_limits(), (0, 0))
            transport.set_write_buffer_limits(high=10, low=5)
            self.assertEqual(transport.get_write_buffer_limits(), (5, 10))
            with self.assertRaises(ValueError):
                transport.set_write_buffer_limits(high=10, low=20)
            with self.assertRaises(ValueError):
                transport.set_write_buffer_limits(high=-1)
        self.run_connected(test)

    def test_write_buffer_size_starts_at_zero(self):
        async def test(transport, protocol, server_protocol):
            self.assertEqual(transport.get_write_buffer_size(), 0)
        self.run_connected(test)

    def test_pause_writing_only_when_strictly_over_high(self):
        async def test(transport, protocol, server_protocol):
            transport.set_write_buffer_limits(high=BIG * 2)
            transport.write(b"x" * BIG)
            await asyncio.sleep(0.05)  # the kernel takes what it will
            size = transport.get_write_buffer_size()
            self.assertGreater(size, 0)
            transport.set_write_buffer_limits(high=size)
            self.assertNotIn("pause_writing", protocol.events)
            transport.set_write_buffer_limits(high=size - 1)
            self.assertEqual(protocol.events.count("pause_writing"), 1)
        self.run_connected(test, server_protocol=NonReadingProtocol)

    def test_pause_writing_inside_write_then_resume_at_low(self):
        async def test(transport, protocol, server_protocol):
            transport.write(b"x" * BIG)  # default limits: 16 KiB / 64 KiB
            self.assertEqual(protocol.events[-1], "pause_writing")
            transport.write(b"more")
            self.assertEqual(protocol.events.count("pause_writing"), 1)
            server_protocol.transport.resume_reading()
            await wait_until(lambda: "resume_writing" in protocol.events, 30, "resume_writing")
            self.assertLessEqual(protocol.size_at_resume, 16384)
            await server_protocol.received(BIG + 4, timeout=30)
            self.assertEqual(protocol.events.count("resume_writing"), 1)
            self.assertEqual(transport.get_write_buffer_size(), 0)
        self.run_connected(test, server_protocol=NonReadingProtocol,
                           client_protocol=BufferSizeAtResumeProtocol)

    def test_high_water_zero_pauses_on_any_backlog(self):
        async def test(transport, protocol, server_protocol):
            transport.set_write_buffer_limits(high=0)
            transport.write(b"x" * BIG)
            self.assertIn("pause_writing", protocol.events)
            server_protocol.transport.resume_reading()
            await wait_until(lambda: "resume_writing" in protocol.events, 30, "resume_writing")
            self.assertEqual(protocol.size_at_resume, 0)
        self.run_connected(test, server_protocol=NonReadingProtocol,
                           client_protocol=BufferSizeAtResumeProtocol)

    # -- BufferedProtocol

    def run_buffered(self, make_buffer, payload):
        async def test():
            server, _ = await self.start_server(EchoProtocol)
            transport, protocol = await self.connect(
                server, lambda: RecordingBufferedProtocol(make_buffer))
            transport.write(payload)
            self.assertEqual(await protocol.received(len(payload)), payload)
            return protocol
        return self.run_coro(test())

    def test_buffered_protocol_with_bytearray(self):
        protocol = self.run_buffered(lambda hint: bytearray(max(hint, 1)), b"buffered bytes")
        self.assertTrue(all(isinstance(hint, int) for hint in protocol.hints))

    def test_buffered_protocol_with_memoryview_slice(self):
        backing = bytearray(b"#" * 64)
        self.run_buffered(lambda hint: memoryview(backing)[8:24], b"filled in place")
        self.assertEqual(bytes(backing[8:23]), b"filled in place")  # written into the slice
        self.assertEqual(bytes(backing[:8]), b"#" * 8)

    def test_buffered_protocol_with_tiny_buffer(self):
        payload = bytes(range(256)) * 4
        protocol = self.run_buffered(lambda hint: bytearray(3), payload)
        self.assertGreaterEqual(len(protocol.hints), len(payload) // 3)

    def test_buffered_protocol_eof(self):
        async def test():
            server, accepted = await self.start_server(GreetingProtocol)
            transport, protocol = await self.connect(server, RecordingBufferedProtocol)
            await protocol.received(26)
            await wait_until(lambda: accepted)
            accepted[0].transport.close()
            await protocol.eof
            self.assertIsNone(await protocol.lost)
        self.run_coro(test())

    def test_empty_buffer_is_a_fatal_error(self):
        async def test():
            server, _ = await self.start_server(GreetingProtocol)
            transport, protocol = await self.connect(
                server, lambda: RecordingBufferedProtocol(lambda hint: bytearray()))
            self.assertIsInstance(await protocol.lost, RuntimeError)
        self.run_coro(test())
        self.assertEqual(len(self.loop_errors), 1)
        self.loop_errors.clear()

    def test_exception_in_data_received_is_a_fatal_error(self):
        class Failing(RecordingProtocol):
            def data_received(self, data):
                raise ValueError("protocol bug")

        async def test(transport, protocol, server_protocol):
            error = await protocol.lost
            self.assertIsInstance(error, ValueError)
            self.assertTrue(transport.is_closing())
        self.run_connected(test, server_protocol=GreetingProtocol, client_protocol=Failing)
        [context] = self.loop_errors
        self.loop_errors.clear()
        self.assertIsInstance(context["exception"], ValueError)
        self.assertIn("message", context)

    def check_failing_protocol_factory(self, debug):
        """The connection is dropped, the server goes on; asyncio reports the
        error to the exception handler in debug mode only."""
        calls = []

        def factory():
            calls.append(None)
            if len(calls) == 1:
                raise ValueError("factory bug")
            return EchoProtocol()

        async def test():
            server = await self.create_server(factory)
            first, _ = await self.create_connection(RecordingProtocol, server)
            transport, protocol = await self.create_connection(RecordingProtocol, server)
            transport.write(b"ping")
            await wait_until(lambda: bytes(protocol.data) == b"ping", what="the echo")
            self.assertEqual(len(calls), 2)
            first.close()
            transport.close()
            server.close()
            await server.wait_closed()
        self.loop.set_debug(debug)
        self.run_coro(test())
        errors = [c for c in self.loop_errors if "incoming connection" in c["message"]]
        self.loop_errors.clear()
        return errors

    def test_failing_protocol_factory_drops_the_connection_quietly(self):
        self.assertEqual(self.check_failing_protocol_factory(debug=False), [])

    def test_failing_protocol_factory_is_reported_in_debug_mode(self):
        [context] = self.check_failing_protocol_factory(debug=True)
        self.assertEqual(context["message"],
                         "Error on transport creation for incoming connection")
        self.assertIsInstance(context["exception"], ValueError)

    # -- the Server object

    def test_server_api(self):
        async def test():
            server, _ = await self.start_server()
            self.assertIs(server.get_loop(), self.loop)
            self.assertTrue(server.is_serving())
            self.assertIsInstance(server.sockets, tuple)
            self.assertEqual(len(server.sockets), 1)
            self.assertEqual(server.sockets[0].family, self.family)
            server.close()
            self.assertFalse(server.is_serving())
            self.assertEqual(server.sockets, ())
            await server.wait_closed()
        self.run_coro(test())

    def test_start_serving_false_then_start_serving(self):
        async def test():
            server, accepted = await self.start_server(start_serving=False)
            self.assertFalse(server.is_serving())
            await server.start_serving()
            self.assertTrue(server.is_serving())
            await self.connect(server)
            await wait_until(lambda: accepted, what="the accept")
        self.run_coro(test())

    def test_serve_forever_until_cancelled(self):
        async def test():
            server, _ = await self.start_server(start_serving=False)
            serving = self.loop.create_task(server.serve_forever())
            await asyncio.sleep(0.01)
            self.assertTrue(server.is_serving())
            with self.assertRaises(RuntimeError):
                await server.serve_forever()  # already being served forever
            serving.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await serving
            self.assertFalse(server.is_serving())
        self.run_coro(test())

    def test_unreferenced_server_keeps_serving(self):
        # The tutorial's streams server drops the Server that start_server
        # returns; the loop must keep it listening.
        accepted = []

        def factory():
            accepted.append(EchoProtocol())
            return accepted[-1]

        async def test():
            server = await self.create_server(factory)
            address = self.server_address(server)
            server_ref = weakref.ref(server)
            del server
            gc.collect()
            client = await self.loop.run_in_executor(None, self.blocking_connect, address)
            client.close()
            await wait_until(lambda: accepted, what="the accept")
            return server_ref()

        server = self.run_coro(test())
        self.assertIsNotNone(server)
        self._close_server(server, accepted)

    def test_unclosed_transport_warns(self):
        async def test():
            server, accepted = await self.start_server()
            await self.create_connection(RecordingProtocol, server)  # never closed
            await wait_until(lambda: accepted, what="the accept")

        self.run_coro(test())
        self.loop.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        self.assertTrue(any("unclosed transport" in m for m in messages), messages)

    def test_async_with_closes_the_server(self):
        async def test():
            server, _ = await self.start_server()
            async with server as entered:
                self.assertIs(entered, server)
                self.assertTrue(server.is_serving())
            self.assertFalse(server.is_serving())
        self.run_coro(test())

    def test_closed_server_refuses_new_connections_keeps_old_ones(self):
        async def test():
            server, accepted = await self.start_server(EchoProtocol)
            transport, protocol = await self.connect(server)
            await wait_until(lambda: accepted, what="the accept")
            address = self.server_address(server)
            server.close()
            closed = asyncio.ensure_future(server.wait_closed())
            if sys.version_info >= (3, 12):
                # wait_closed() also waits for the server's connections.
                await asyncio.sleep(0.05)
                self.assertFalse(closed.done())
            else:
                await closed
            with self.assertRaises(OSError):
                await self.loop.run_in_executor(None, self.blocking_connect, address)
            transport.write(b"still open")
            self.assertEqual(await protocol.received(10), b"still open")
            transport.close()
            await asyncio.wait_for(closed, 10)
        self.run_coro(test())

    # -- sockets made elsewhere

    def test_connect_accepted_socket(self):
        client, accepted = self.raw_socket_pair()
        self.addCleanup(client.close)
        self.addCleanup(accepted.close)
        client.settimeout(5)
        client.sendall(b"over an accepted socket")  # fits in the socket buffer

        async def test():
            transport, protocol = await self.loop.connect_accepted_socket(EchoProtocol, accepted)
            self.addCleanup(self._abort, [protocol])
            self.assertIsInstance(transport, asyncio.Transport)
            self.assertEqual(await protocol.received(23), b"over an accepted socket")
        self.run_coro(test())
        self.assertEqual(client.recv(100), b"over an accepted socket")

    def _adopters(self):
        """The ways a transport is made over the user's own socket."""
        adopters = {"create_connection": lambda f, s: self.loop.create_connection(f, sock=s),
                    "connect_accepted_socket": self.loop.connect_accepted_socket}
        if self.family == socket.AF_UNIX:
            adopters["create_unix_connection"] = (
                lambda f, s: self.loop.create_unix_connection(f, sock=s))
        return adopters

    def _check_untouched(self, first, second):
        """The pair on a reused fd number got nothing and is still open."""
        for sock in (first, second):
            sock.setblocking(False)
            with self.assertRaises(BlockingIOError):
                sock.recv(100)
        first.sendall(b"still mine")
        second.settimeout(5)
        self.assertEqual(second.recv(100), b"still mine")

    async def _adopt_then_reuse(self, adopt):
        """A transport over the user's socket, which the user then closed;
        its fd number now belongs to the first of a new socket pair."""
        mine, peer = self.raw_socket_pair()
        self.addCleanup(peer.close)
        transport, protocol = await adopt(RecordingProtocol, mine)
        fd = mine.fileno()
        mine.close()
        first, second = pair_on_fd_number(fd)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        return transport, protocol, fd, first, second

    def test_write_after_the_user_closed_its_sock_spares_the_reused_fd(self):
        # asyncio sends through the user's socket object: once the user has
        # closed it, write() fails with EBADF (connection_lost gets it), and
        # nothing reaches whatever file got the fd number back.
        async def test(adopt):
            transport, protocol, fd, first, second = await self._adopt_then_reuse(adopt)
            transport.write(b"not for the new socket")
            exc = await asyncio.wait_for(protocol.lost, 5)
            self.assertIsInstance(exc, OSError)
            self.assertEqual(exc.errno, errno.EBADF)
            transport.close()
            await asyncio.sleep(0.01)
            self.assertEqual(first.fileno(), fd)
            self._check_untouched(first, second)

        for name, adopt in self._adopters().items():
            with self.subTest(name):
                self.run_coro(test(adopt))

    def test_close_after_the_user_closed_its_sock_spares_the_reused_fd(self):
        async def test(adopt):
            transport, protocol, fd, first, second = await self._adopt_then_reuse(adopt)
            transport.close()
            self.assertIsNone(await asyncio.wait_for(protocol.lost, 5))
            self.assertEqual(first.fileno(), fd)
            os.fstat(fd)  # not closed by the transport
            self._check_untouched(first, second)

        for name, adopt in self._adopters().items():
            with self.subTest(name):
                self.run_coro(test(adopt))

    def test_users_sock_is_closed_with_the_transport(self):
        # The transport owns the user's socket object: connection_lost
        # leaves it closed, as asyncio closes it.
        async def test(adopt):
            mine, peer = self.raw_socket_pair()
            self.addCleanup(peer.close)
            transport, protocol = await adopt(RecordingProtocol, mine)
            self.assertEqual(transport.get_extra_info("socket").fileno(), mine.fileno())
            with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                self.loop.add_reader(mine, print)
            transport.close()
            await asyncio.wait_for(protocol.lost, 5)
            self.assertEqual(mine.fileno(), -1)
            peer.settimeout(5)
            self.assertEqual(peer.recv(100), b"")

        for name, adopt in self._adopters().items():
            with self.subTest(name):
                self.run_coro(test(adopt))

    async def _server_on_users_sock(self):
        sock = socket.socket(self.family)
        if self.family == socket.AF_UNIX:
            sock.bind(os.path.join(self.temp_dir(), "users.sock"))
            server = await self.loop.create_unix_server(EchoProtocol, sock=sock)
        else:
            sock.bind((self.host, 0))
            server = await self.loop.create_server(EchoProtocol, sock=sock)
        return server, sock

    def test_server_on_users_sock_closes_it(self):
        async def test():
            server, sock = await self._server_on_users_sock()
            self.assertEqual(server.sockets[0].fileno(), sock.fileno())
            transport, protocol = await self.connect(server)
            transport.write(b"served")
            self.assertEqual(await protocol.received(6), b"served")
            transport.close()
            server.close()
            self.assertEqual(sock.fileno(), -1)
            await server.wait_closed()
        self.run_coro(test())

    def test_server_close_after_the_user_closed_its_sock_spares_the_reused_fd(self):
        async def test():
            server, sock = await self._server_on_users_sock()
            fd = sock.fileno()
            sock.close()
            first, second = pair_on_fd_number(fd)
            self.addCleanup(first.close)
            self.addCleanup(second.close)
            try:
                server.close()
            except (ValueError, OSError):  # asyncio's: remove_reader(-1), or
                # (3.13, Unix) getsockname() for its socket file, on the
                # closed socket
                self.assertEqual(self.loop_name, "asyncio")
            await asyncio.sleep(0.01)
            self.assertEqual(first.fileno(), fd)
            self._check_untouched(first, second)
        self.run_coro(test())

    def test_connect_accepted_socket_refuses_a_datagram_socket(self):
        with socket.socket(self.family, socket.SOCK_DGRAM) as sock:
            with self.assertRaises(ValueError):
                self.run_coro(self.loop.connect_accepted_socket(RecordingProtocol, sock))

    # -- sendfile

    def test_sendfile(self):
        content = os.urandom(1 << 20)
        file = self.data_file(content)

        async def test(transport, protocol, server_protocol):
            sent = await self.loop.sendfile(transport, file)
            self.assertEqual(sent, len(content))
            self.assertEqual(file.tell(), len(content))
            self.assertEqual(await server_protocol.received(len(content)), content)
            transport.write(b"!")  # the transport still writes afterwards
            await server_protocol.received(len(content) + 1)
        self.run_connected(test)

    def test_cancelled_sendfile_sends_no_more(self):
        # The peer does not read, so the sendfile stalls; it is cancelled,
        # its file closed and another file opened (likely on the same fd
        # number). Nothing of the other file may reach the peer, and the
        # transport writes again at once.
        size = 64 << 20

        async def test(transport, protocol, server_protocol):
            first = tempfile.TemporaryFile()
            first.write(b"A" * size)
            first.seek(0)
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(self.loop.sendfile(transport, first), 0.2)
            first.close()
            second = tempfile.TemporaryFile()
            self.addCleanup(second.close)
            second.write(b"B" * size)
            second.flush()
            transport.write(b"tail")  # no "sendfile is in progress"
            server_protocol.transport.resume_reading()
            await wait_until(lambda: server_protocol.data.endswith(b"tail"), 30,
                             "the tail after the cancelled sendfile")
            await asyncio.sleep(0.2)  # anything more would have arrived by now
            data = bytes(server_protocol.data)
            self.assertLess(len(data), size)
            self.assertEqual(data, b"A" * (len(data) - 4) + b"tail")
        self.run_connected(test, server_protocol=NonReadingProtocol)

    def test_sendfile_offset_and_count(self):
        file = self.data_file(b"0123456789")

        async def test(transport, protocol, server_protocol):
            self.assertEqual(await self.loop.sendfile(transport, file, 3, 4), 4)
            self.assertEqual(await server_protocol.received(4), b"3456")
            self.assertEqual(file.tell(), 7)
        self.run_connected(test)

    def test_sendfile_refuses_a_text_file(self):
        async def test(transport, protocol, server_protocol):
            with open(__file__) as text_file, self.assertRaises(ValueError):
                await self.loop.sendfile(transport, text_file)
        self.run_connected(test)
