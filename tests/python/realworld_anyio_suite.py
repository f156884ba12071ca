"""anyio (Debian's python3-anyio 3.6) on the loop under test.

anyio 3.6's asyncio backend takes no loop_factory: its run() accepts the
backend options debug, use_uvloop and policy, and policy is how a program
chooses tapio there:

    anyio.run(main, backend="asyncio",
              backend_options={"policy": tapio.EventLoopPolicy()})

(anyio 4 adds loop_factory=tapio.new_event_loop). anyio code also runs
unchanged inside a coroutine that a tapio loop runs, which is how the
stream tests below use it: TCP, Unix and UDP sockets, a process, threads and
cancel scopes. The test script runs this module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py realworld_anyio_suite
"""
import asyncio
import os
import shutil
import sys
import tempfile
import threading

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from .loops import loop_tests
from .realworld_services import kind_of

LOOPS = ("asyncio", "tapio")
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def policy_of(loop_name):
    if loop_name == "tapio":
        import tapio
        return tapio.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


async def echo_until_eof(stream):
    """A server's connection handler: send back everything, then close."""
    async with stream:
        async for data in stream:
            await stream.send(data)


@loop_tests(LOOPS)
class AnyioTests:

    def check_stream(self, stream):
        """stream (an anyio socket stream) rides on the loop under test: a
        transport of that loop (TCP, UDP), or that loop's fd watchers (anyio
        drives Unix sockets with add_reader/add_writer)."""
        self.assertEqual(kind_of(asyncio.get_running_loop()), self.loop_name)
        if hasattr(stream, "_transport"):
            self.assertEqual(kind_of(stream._transport), self.loop_name, stream._transport)
        else:
            self.assertIs(stream._loop, asyncio.get_running_loop())

    async def echo_round_trip(self, stream):
        """Send PAYLOAD and a line over stream, half-close, read it all back."""
        self.check_stream(stream)
        buffered = BufferedByteReceiveStream(stream)

        async def send():
            await stream.send(PAYLOAD)
            await stream.send(b"last line\n")
            await stream.send_eof()

        async with anyio.create_task_group() as group:
            group.start_soon(send)
            self.assertEqual(await buffered.receive_exactly(len(PAYLOAD)), PAYLOAD)
            self.assertEqual(await buffered.receive_until(b"\n", 100), b"last line")
            with self.assertRaises(anyio.EndOfStream):
                await buffered.receive()

    async def ping_pong(self, stream):
        """Messages echoed one at a time, each smaller than the socket's
        buffer: anyio 3.6's Unix stream resends from the start of its buffer
        after a partial write (fixed in anyio 3.7), whatever the loop."""
        self.check_stream(stream)
        buffered = BufferedByteReceiveStream(stream)
        for n in range(200):
            message = bytes([n]) * 4096
            await stream.send(message)
            self.assertEqual(await buffered.receive_exactly(len(message)), message)
        await stream.send_eof()
        with self.assertRaises(anyio.EndOfStream):
            await buffered.receive()

    def test_anyio_run_with_the_loops_policy(self):
        previous = asyncio.get_event_loop_policy()
        self.addCleanup(asyncio.set_event_loop_policy, previous)

        async def main(tasks):
            results = []

            async def child(n):
                await anyio.sleep(0.01 * (tasks - n))
                results.append(n)

            async with anyio.create_task_group() as group:
                for n in range(tasks):
                    group.start_soon(child, n)
            in_thread = await anyio.to_thread.run_sync(threading.get_ident)
            return kind_of(asyncio.get_running_loop()), sorted(results), in_thread

        kind, results, thread = anyio.run(main, 10, backend="asyncio",
                                          backend_options={"policy": policy_of(self.loop_name)})
        self.assertEqual(kind, self.loop_name)
        self.assertEqual(results, list(range(10)))
        self.assertNotEqual(thread, threading.get_ident())

    def test_tcp_listener_and_connect_tcp(self):
        async def test():
            async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, \
                    anyio.create_task_group() as group:
                group.start_soon(listener.serve, echo_until_eof)
                port = listener.extra(anyio.abc.SocketAttribute.local_port)
                for _ in range(3):  # one connection after another
                    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                        await self.echo_round_trip(stream)
                group.cancel_scope.cancel()
        self.run_coro(test())

    def test_unix_listener_and_connect_unix(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "anyio.sock")

        async def test():
            async with await anyio.create_unix_listener(path) as listener, \
                    anyio.create_task_group() as group:
                group.start_soon(listener.serve, echo_until_eof)
                async with await anyio.connect_unix(path) as stream:
                    await self.ping_pong(stream)
                group.cancel_scope.cancel()
        self.run_coro(test())

    def test_udp_sockets(self):
        async def test():
            async with await anyio.create_udp_socket(local_host="127.0.0.1") as server, \
                    await anyio.create_connected_udp_socket(
                        "127.0.0.1", server.extra(anyio.abc.SocketAttribute.local_port)) as client:
                self.check_stream(client)
                for n in range(20):
                    await client.send(b"datagram %d" % n)
                    data, address = await server.receive()
                    self.assertEqual(data, b"datagram %d" % n)
                    await server.sendto(data.upper(), *address)
                    self.assertEqual(await client.receive(), b"DATAGRAM %d" % n)
        self.run_coro(test())

    def test_cancel_scopes_threads_and_a_process(self):
        async def test():
            with anyio.move_on_after(0.05) as scope:
                await anyio.sleep(10)
            self.assertTrue(scope.cancel_called)
            with self.assertRaises(TimeoutError):
                with anyio.fail_after(0.05):
                    await anyio.Event().wait()

            # A thread calls back into the loop (from_thread.run).
            event = anyio.Event()
            def in_thread():
                return anyio.from_thread.run(lambda: set_and_report(event))
            async def set_and_report(event):
                event.set()
                return kind_of(asyncio.get_running_loop())
            self.assertEqual(await anyio.to_thread.run_sync(in_thread), self.loop_name)
            self.assertTrue(event.is_set())

            result = await anyio.run_process(
                [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()[::-1])"],
                input=b"olleh")
            self.assertEqual((result.returncode, result.stdout), (0, b"hello"))
        self.run_coro(test())
