"""asyncio streams on the loop: open_connection/start_server and the Unix
variants, StreamReader's reads and errors, StreamWriter's drain and close.
Every test runs over TCP and over a Unix socket."""

import asyncio
import os
import socket

from .loops import loop_tests
from .support import Endpoints

LOOPS = ("asyncio", "tapio")


def send_and_close(payload):
    """A client_connected_cb that sends payload, then closes."""
    async def handler(reader, writer):
        writer.write(payload)
        await writer.drain()
        writer.close()
    return handler


async def echo_lines(reader, writer):
    async for line in reader:
        writer.write(line)
        await writer.drain()
    writer.close()


class StreamCases:
    """The tests; a subclass provides start_stream_server(cb, **kw) and
    open_stream(server, **kw)."""

    async def serve(self, handler, **kwargs):
        """Start a stream server; its handlers are cancelled and its
        connections aborted when the test ends."""
        handlers = []

        def tracked(reader, writer):
            handlers.append((asyncio.current_task(), writer))
            return handler(reader, writer)

        async def tracked_coro(reader, writer):
            handlers.append((asyncio.current_task(), writer))
            await handler(reader, writer)

        callback = tracked_coro if asyncio.iscoroutinefunction(handler) else tracked
        server = await self.start_stream_server(callback, **kwargs)
        self.addCleanup(self._close_stream_server, server, handlers)
        return server

    async def open(self, server, **kwargs):
        reader, writer = await self.open_stream(server, **kwargs)
        self.addCleanup(self._abort_writers, [writer])
        return reader, writer

    def _close_stream_server(self, server, handlers):
        server.close()
        self._abort_writers([writer for _, writer in handlers])
        # Aborted connections end the handlers; cancel only what still hangs
        # (cancelling a handler makes Python 3.11.7's stream callback report
        # a spurious CancelledError).
        tasks = {task for task, _ in handlers if task is not None and not task.done()}
        if tasks:
            self.loop.run_until_complete(asyncio.wait(tasks, timeout=1))
        for task in tasks:
            task.cancel()
        if tasks:
            self.run_briefly()

    def _abort_writers(self, writers):
        if self.loop.is_closed():
            return
        for writer in writers:
            writer.transport.abort()
        self.run_briefly()

    def run_with_server(self, handler, test, **open_kwargs):
        """Run coroutine function test(reader, writer) against handler."""
        async def main():
            server = await self.serve(handler)
            return await test(*await self.open(server, **open_kwargs))
        return self.run_coro(main())

    # -- reading

    def test_echo_with_readline(self):
        async def test(reader, writer):
            writer.write(b"first\nsecond\n")
            self.assertEqual(await reader.readline(), b"first\n")
            self.assertEqual(await reader.readline(), b"second\n")
        self.run_with_server(echo_lines, test)

    def test_readline_at_eof_returns_the_rest_then_empty(self):
        async def test(reader, writer):
            self.assertEqual(await reader.readline(), b"line\n")
            self.assertEqual(await reader.readline(), b"no newline")
            self.assertEqual(await reader.readline(), b"")
            self.assertTrue(reader.at_eof())
        self.run_with_server(send_and_close(b"line\nno newline"), test)

    def test_readuntil_includes_the_separator(self):
        async def test(reader, writer):
            self.assertEqual(await reader.readuntil(b"\r\n"), b"HTTP/1.0 200 OK\r\n")
            self.assertEqual(await reader.readuntil(b"\r\n\r\n"), b"A: b\r\n\r\n")
            self.assertEqual(await reader.read(), b"body")
        self.run_with_server(send_and_close(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nbody"), test)

    def test_readuntil_separator_split_across_writes(self):
        async def handler(reader, writer):
            for piece in (b"abc-", b"-", b"-def"):
                await asyncio.sleep(0.01)
                writer.write(piece)
                await writer.drain()
            writer.close()

        async def test(reader, writer):
            self.assertEqual(await reader.readuntil(b"---"), b"abc---")
        self.run_with_server(handler, test)

    def test_readuntil_at_eof_raises_incomplete_read(self):
        async def test(reader, writer):
            with self.assertRaises(asyncio.IncompleteReadError) as caught:
                await reader.readuntil(b"\n")
            self.assertEqual(caught.exception.partial, b"no separator")
            self.assertIsNone(caught.exception.expected)
        self.run_with_server(send_and_close(b"no separator"), test)

    def test_readuntil_over_the_limit_raises_limit_overrun(self):
        async def test(reader, writer):
            with self.assertRaises(asyncio.LimitOverrunError) as caught:
                await reader.readuntil(b"\n")
            self.assertGreater(caught.exception.consumed, 0)
            # The data stays in the buffer and can still be read.
            self.assertEqual(await reader.readexactly(20), b"x" * 20)
        self.run_with_server(send_and_close(b"x" * 20 + b"\n"), test, limit=8)

    def test_readline_over_the_limit_raises_value_error(self):
        async def test(reader, writer):
            with self.assertRaises(ValueError):
                await reader.readline()
            self.assertEqual(await reader.readline(), b"short\n")
        self.run_with_server(send_and_close(b"y" * 20 + b"\nshort\n"), test, limit=8)

    def test_readexactly(self):
        async def test(reader, writer):
            self.assertEqual(await reader.readexactly(0), b"")
            self.assertEqual(await reader.readexactly(3), b"012")
            self.assertEqual(await reader.readexactly(5), b"34567")
            with self.assertRaises(asyncio.IncompleteReadError) as caught:
                await reader.readexactly(5)
            self.assertEqual((caught.exception.partial, caught.exception.expected), (b"89", 5))
            with self.assertRaises(ValueError):
                await reader.readexactly(-1)
        self.run_with_server(send_and_close(b"0123456789"), test)

    def test_read_n_returns_at_most_n(self):
        async def test(reader, writer):
            self.assertEqual(await reader.read(0), b"")
            self.assertEqual(await reader.read(4), b"abcd")
            self.assertEqual(await reader.read(100), b"ef")
            self.assertEqual(await reader.read(100), b"")
        self.run_with_server(send_and_close(b"abcdef"), test)

    def test_read_all_until_eof(self):
        payload = os.urandom(1 << 20)

        async def test(reader, writer):
            self.assertFalse(reader.at_eof())
            self.assertEqual(await reader.read(), payload)
            self.assertTrue(reader.at_eof())
        self.run_with_server(send_and_close(payload), test)

    def test_async_iteration_yields_lines(self):
        async def test(reader, writer):
            self.assertEqual([line async for line in reader], [b"a\n", b"b\n", b"c"])
        self.run_with_server(send_and_close(b"a\nb\nc"), test)

    # -- writing

    def test_writer_api(self):
        async def test(reader, writer):
            self.assertIsInstance(writer.transport, asyncio.Transport)
            self.assertEqual(writer.get_extra_info("peername"),
                             writer.transport.get_extra_info("peername"))
            self.assertTrue(writer.can_write_eof())
            writer.writelines([b"one\n", bytearray(b"two\n")])
            await writer.drain()
            self.assertEqual(await reader.readexactly(8), b"one\ntwo\n")
        self.run_with_server(echo_lines, test)

    def test_write_eof_reaches_the_peer(self):
        async def test(reader, writer):
            writer.write(b"last words\n")
            writer.write_eof()
            self.assertEqual(await reader.read(), b"last words\n")  # echoed, then closed
        self.run_with_server(echo_lines, test)

    def test_drain_waits_for_the_peer_to_read(self):
        release = None

        async def slow_reader(reader, writer):
            await release
            while await reader.read(1 << 20):
                pass

        async def test(reader, writer):
            writer.write(b"x" * (16 << 20))
            draining = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0.05)
            self.assertFalse(draining.done(), "drain() returned while the buffer was full")
            release.set_result(None)
            await asyncio.wait_for(draining, 30)
            self.assertLessEqual(writer.transport.get_write_buffer_size(), 16384)

        async def main():
            nonlocal release
            release = self.loop.create_future()
            server = await self.serve(slow_reader)
            await test(*await self.open(server))
        self.run_coro(main())

    def test_close_and_wait_closed(self):
        async def test(reader, writer):
            self.assertFalse(writer.is_closing())
            writer.close()
            self.assertTrue(writer.is_closing())
            await writer.wait_closed()
            self.assertTrue(writer.transport.is_closing())
        self.run_with_server(echo_lines, test)

    def test_server_sees_eof_after_client_close(self):
        done = None

        async def handler(reader, writer):
            done.set_result(await reader.read())
            writer.close()

        async def main():
            nonlocal done
            done = self.loop.create_future()
            server = await self.serve(handler)
            reader, writer = await self.open(server)
            writer.write(b"bye")
            writer.close()
            await writer.wait_closed()
            self.assertEqual(await done, b"bye")
        self.run_coro(main())

    # -- servers

    def test_plain_function_callback(self):
        def handler(reader, writer):
            writer.write(b"from a plain function")
            writer.close()

        async def test(reader, writer):
            self.assertEqual(await reader.read(), b"from a plain function")
        self.run_with_server(handler, test)

    def test_server_object(self):
        async def main():
            server = await self.serve(echo_lines)
            self.assertTrue(server.is_serving())
            self.assertIs(server.get_loop(), self.loop)
            async with server:
                reader, writer = await self.open(server)
                writer.write(b"ping\n")
                self.assertEqual(await reader.readline(), b"ping\n")
                # From 3.12 on, leaving the block waits for the connections.
                writer.close()
                await writer.wait_closed()
            self.assertFalse(server.is_serving())
        self.run_coro(main())

    def test_many_clients(self):
        async def client(server, i):
            reader, writer = await self.open(server)
            writer.write(f"client {i}\n".encode())
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return line

        async def main():
            server = await self.serve(echo_lines)
            lines = await asyncio.gather(*(client(server, i) for i in range(20)))
            self.assertEqual(lines, [f"client {i}\n".encode() for i in range(20)])
        self.run_coro(main())


@loop_tests(LOOPS)
class TcpStreamTests(StreamCases, Endpoints):
    async def start_stream_server(self, callback, **kwargs):
        return await asyncio.start_server(callback, "127.0.0.1", 0, **kwargs)

    async def open_stream(self, server, **kwargs):
        host, port = server.sockets[0].getsockname()
        return await asyncio.open_connection(host, port, **kwargs)

    def test_open_connection_with_a_socket(self):
        ours, theirs = socket.socketpair()
        self.addCleanup(theirs.close)

        async def test():
            reader, writer = await asyncio.open_connection(sock=ours)
            self.addCleanup(self._abort_writers, [writer])
            self.loop.call_soon(theirs.send, b"abc")
            self.assertEqual(await reader.read(100), b"abc")
        self.run_coro(test())


@loop_tests(LOOPS)
class UnixStreamTests(StreamCases, Endpoints):
    async def start_stream_server(self, callback, **kwargs):
        path = os.path.join(self.temp_dir(), "streams.sock")
        return await asyncio.start_unix_server(callback, path, **kwargs)

    async def open_stream(self, server, **kwargs):
        return await asyncio.open_unix_connection(server.sockets[0].getsockname(), **kwargs)
