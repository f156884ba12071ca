"""The loop API as each Python version's asyncio defines it: the same tests
on tapio and stock asyncio, each expecting what the running interpreter's
asyncio does (executor shutdown timeouts, task factories and eager tasks,
the exception handler's context, all_errors, keep_alive, Server methods,
Unix socket cleanup, get_event_loop's warnings, child watchers)."""

import asyncio
import concurrent.futures
import contextvars
import os
import socket
import sys
import tempfile
import threading
import time
import unittest
import warnings

from .loops import import_tapio, loop_tests
from .support import EchoProtocol, RecordingProtocol, wait_until

LOOPS = ("asyncio", "tapio")

var = contextvars.ContextVar("var", default="unset")

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@loop_tests(LOOPS)
class ExecutorShutdownTests:
    def test_shutdown_default_executor_waits_for_jobs(self):
        finished = []

        async def test():
            await self.loop.run_in_executor(None, time.sleep, 0)
            self.loop.run_in_executor(None, lambda: (time.sleep(0.1), finished.append(1)))
            await self.loop.shutdown_default_executor()
            self.assertEqual(finished, [1])
            with self.assertRaises(RuntimeError):
                await self.loop.run_in_executor(None, time.sleep, 0)
        self.run_coro(test())

    def test_shutdown_default_executor_timeout(self):
        release = threading.Event()
        self.addCleanup(release.set)
        # Stock 3.12 waits for the jobs whatever the timeout; tapio, like
        # 3.13, stops waiting at the timeout.
        waits_for_jobs = self.loop_name == "asyncio" and sys.version_info[:2] == (3, 12)

        async def test():
            job = self.loop.run_in_executor(None, release.wait, 10)
            if not PY312:  # 3.11's takes no timeout
                with self.assertRaises(TypeError):
                    await self.loop.shutdown_default_executor(0.05)
                release.set()
                await job
                return
            if waits_for_jobs:
                self.loop.call_later(0.3, release.set)
            started = time.monotonic()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await self.loop.shutdown_default_executor(0.05)
            elapsed = time.monotonic() - started
            warned = any(issubclass(w.category, RuntimeWarning) and
                         "did not finishing joining" in str(w.message) for w in caught)
            if waits_for_jobs:
                self.assertGreater(elapsed, 0.2)
                self.assertFalse(warned)
            else:
                self.assertLess(elapsed, 5)
                self.assertTrue(warned, [str(w.message) for w in caught])
            release.set()
            job.cancel()
        self.run_coro(test())
        self.loop.run_until_complete(asyncio.sleep(0.05))


@loop_tests(LOOPS)
class TaskTests:
    def test_create_task_name_and_context(self):
        async def read_var():
            return var.get()

        async def test():
            context = contextvars.copy_context()
            context.run(var.set, "in context")
            task = self.loop.create_task(read_var(), name="named", context=context)
            self.assertEqual(task.get_name(), "named")
            self.assertEqual(await task, "in context")
        self.run_coro(test())

    def test_task_factory_gets_context_only_when_given(self):
        calls = []

        def factory(loop, coro, **kwargs):
            calls.append(sorted(kwargs))
            return asyncio.Task(coro, loop=loop, **kwargs)

        async def test():
            self.loop.set_task_factory(factory)
            self.assertIs(self.loop.get_task_factory(), factory)
            first = self.loop.create_task(asyncio.sleep(0), name="first")
            second = self.loop.create_task(asyncio.sleep(0), context=contextvars.copy_context())
            await asyncio.gather(first, second)
            self.assertEqual(first.get_name(), "first")
            self.loop.set_task_factory(None)
        self.run_coro(test())
        if sys.version_info >= (3, 14):  # every keyword goes through
            self.assertEqual(calls, [["name"], ["context"]])
        else:
            self.assertEqual(calls, [[], ["context"]])

    def test_task_factory_must_be_callable(self):
        with self.assertRaises(TypeError):
            self.loop.set_task_factory(1)

    @unittest.skipUnless(PY312, "eager tasks are new in Python 3.12")
    def test_eager_task_factory_runs_the_first_step_at_once(self):
        steps = []

        async def first_step_only():
            steps.append("ran")
            return 42

        async def test():
            self.loop.set_task_factory(asyncio.eager_task_factory)
            task = self.loop.create_task(first_step_only(), name="eager")
            self.assertEqual(steps, ["ran"])  # before any await
            self.assertTrue(task.done())
            self.assertEqual(task.get_name(), "eager")
            self.assertEqual(await task, 42)
            blocked = self.loop.create_task(asyncio.sleep(0.01, "later"))
            self.assertFalse(blocked.done())
            self.assertEqual(await blocked, "later")
            self.loop.set_task_factory(None)
        self.run_coro(test())

    @unittest.skipUnless(PY312, "eager tasks are new in Python 3.12")
    def test_create_eager_task_factory_with_a_task_subclass(self):
        class MyTask(asyncio.Task):
            pass

        async def answer():
            return 7

        async def test():
            self.loop.set_task_factory(asyncio.create_eager_task_factory(MyTask))
            task = self.loop.create_task(answer())
            self.assertIsInstance(task, MyTask)
            self.assertTrue(task.done())
            self.assertEqual(await task, 7)
            self.loop.set_task_factory(None)
        self.run_coro(test())

    @unittest.skipUnless(PY312, "Handle.get_context is new in Python 3.12")
    def test_handle_get_context(self):
        context = contextvars.copy_context()
        handle = self.loop.call_soon(lambda: None, context=context)
        self.assertIs(handle.get_context(), context)
        timer = self.loop.call_later(10, lambda: None)
        self.assertIsInstance(timer.get_context(), contextvars.Context)
        timer.cancel()
        self.run_briefly()


@loop_tests(LOOPS)
class ExceptionHandlerContextTests:
    """From 3.12 on the handler runs in the failing handle's or task's
    context; before, in the loop's."""

    expected = "failing" if PY312 else "unset"

    def record_handler_var(self):
        seen = []
        self.loop.set_exception_handler(lambda loop, context: seen.append(var.get()))
        return seen

    def test_failing_callback(self):
        seen = self.record_handler_var()
        context = contextvars.copy_context()
        context.run(var.set, "failing")
        self.loop.call_soon(lambda: 1 / 0, context=context)
        self.run_briefly()
        self.assertEqual(seen, [self.expected])

    def test_task_exception_never_retrieved(self):
        seen = self.record_handler_var()

        async def fail():
            raise ValueError("never retrieved")

        context = contextvars.copy_context()
        context.run(var.set, "failing")
        task = self.loop.create_task(fail(), context=context)
        self.run_briefly()
        del task
        import gc
        gc.collect()
        self.assertEqual(seen, [self.expected])


@loop_tests(LOOPS)
class ConnectionOptionTests:
    @unittest.skipUnless(PY312, "all_errors is new in Python 3.12")
    def test_all_errors_raises_an_exception_group(self):
        port = closed_port()

        async def test():
            with self.assertRaises(ExceptionGroup) as caught:
                await self.loop.create_connection(RecordingProtocol, "127.0.0.1", port,
                                                  all_errors=True)
            self.assertEqual(str(caught.exception.message), "create_connection failed")
            self.assertIsInstance(caught.exception.exceptions[0], ConnectionRefusedError)
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.create_connection(RecordingProtocol, "127.0.0.1", port)
        self.run_coro(test())

    @unittest.skipUnless(PY313, "keep_alive is new in Python 3.13")
    def test_keep_alive_reaches_accepted_connections(self):
        accepted = []

        def factory():
            protocol = EchoProtocol()
            accepted.append(protocol)
            return protocol

        async def test():
            for keep_alive in (True, False):
                server = await self.loop.create_server(factory, "127.0.0.1", 0,
                                                       keep_alive=keep_alive)
                port = server.sockets[0].getsockname()[1]
                transport, _ = await self.loop.create_connection(RecordingProtocol,
                                                                 "127.0.0.1", port)
                await wait_until(lambda: accepted and accepted[-1].transport, what="accept")
                sock = accepted[-1].transport.get_extra_info("socket")
                self.assertEqual(bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)),
                                 keep_alive)
                transport.close()
                server.close()
                await server.wait_closed()
        self.run_coro(test())


@loop_tests(LOOPS)
class ServerVersionTests:
    async def serve_and_connect(self, count):
        accepted = []

        def factory():
            protocol = RecordingProtocol()
            accepted.append(protocol)
            return protocol

        server = await self.loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await self.loop.create_connection(RecordingProtocol, "127.0.0.1", port)
                   for _ in range(count)]
        await wait_until(lambda: len(accepted) == count and
                         all(p.transport for p in accepted), what="the accepts")
        return server, accepted, clients

    @unittest.skipUnless(PY313, "Server.close_clients is new in Python 3.13")
    def test_close_clients(self):
        async def test():
            server, accepted, clients = await self.serve_and_connect(2)
            server.close()
            server.close_clients()
            for transport, protocol in clients:
                await asyncio.wait_for(protocol.lost, 5)
                self.assertIsNone(protocol.lost.result())
            await asyncio.wait_for(server.wait_closed(), 5)
            self.assertTrue(all(p.lost.done() for p in accepted))
        self.run_coro(test())

    @unittest.skipUnless(PY313, "Server.abort_clients is new in Python 3.13")
    def test_abort_clients(self):
        async def test():
            server, accepted, clients = await self.serve_and_connect(2)
            for transport, _ in clients:
                transport.pause_reading()  # so the server's writes stay queued
            for protocol in accepted:
                protocol.transport.write(b"x" * 4 * 1024 * 1024)
            server.close()
            server.abort_clients()
            await asyncio.wait_for(server.wait_closed(), 5)
            for protocol in accepted:
                self.assertTrue(protocol.lost.done())
                self.assertEqual(protocol.transport.get_write_buffer_size(), 0)
            for transport, _ in clients:
                transport.close()
        self.run_coro(test())

    def test_wait_closed_when_close_and_the_last_connection_end_together(self):
        # close() and the end of the last connection in the same iteration:
        # wait_closed() still returns (3.12.0 hung here).
        async def test():
            server, accepted, clients = await self.serve_and_connect(1)
            waiting = asyncio.ensure_future(server.wait_closed())
            await asyncio.sleep(0)
            self.assertFalse(waiting.done())
            self.loop.call_soon(server.close)
            self.loop.call_soon(accepted[0].transport.abort)
            await asyncio.wait_for(waiting, 5)
            await asyncio.wait_for(server.wait_closed(), 5)
            clients[0][0].close()
        self.run_coro(test())

    def test_wait_closed_and_open_connections(self):
        async def test():
            server, accepted, clients = await self.serve_and_connect(1)
            before_close = asyncio.ensure_future(server.wait_closed())
            await asyncio.sleep(0.05)
            self.assertFalse(before_close.done())
            server.close()
            after_close = asyncio.ensure_future(server.wait_closed())
            await asyncio.sleep(0.05)
            # Every version waits for the connections to go; 3.11's
            # wait_closed() returns at once when called after close().
            self.assertFalse(before_close.done())
            self.assertEqual(after_close.done(), not PY312)
            clients[0][0].close()
            await asyncio.wait_for(asyncio.gather(before_close, after_close), 5)
        self.run_coro(test())


@loop_tests(LOOPS)
class UnixServerCleanupTests:
    def socket_path(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "server.sock")
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        return path

    async def serve_then_close(self, path, **kwargs):
        server = await self.loop.create_unix_server(RecordingProtocol, path, **kwargs)
        self.assertTrue(os.path.exists(path))
        server.close()
        await server.wait_closed()

    def test_default(self):
        path = self.socket_path()
        self.run_coro(self.serve_then_close(path))
        # 3.13 removes the socket file when the server closes.
        self.assertEqual(os.path.exists(path), not PY313)

    @unittest.skipUnless(PY313, "cleanup_socket is new in Python 3.13")
    def test_cleanup_socket_false_keeps_the_file(self):
        path = self.socket_path()
        self.run_coro(self.serve_then_close(path, cleanup_socket=False))
        self.assertTrue(os.path.exists(path))

    @unittest.skipUnless(PY313, "cleanup_socket is new in Python 3.13")
    def test_a_file_that_replaced_the_socket_stays(self):
        path = self.socket_path()

        async def test():
            server = await self.loop.create_unix_server(RecordingProtocol, path)
            os.unlink(path)
            with open(path, "w") as replacement:
                replacement.write("not the server's")
            server.close()
            await server.wait_closed()
        self.run_coro(test())
        with open(path) as f:
            self.assertEqual(f.read(), "not the server's")

    @unittest.skipUnless(PY313, "cleanup_socket is new in Python 3.13")
    def test_given_socket_is_cleaned_up_too(self):
        path = self.socket_path()
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)

        async def test():
            server = await self.loop.create_unix_server(RecordingProtocol, sock=sock)
            server.close()
            await server.wait_closed()
        self.run_coro(test())
        self.assertFalse(os.path.exists(path))


@loop_tests(LOOPS)
class PolicyVersionTests:
    fresh_loop = False

    def setUp(self):
        super().setUp()
        if self.loop_name == "tapio":
            self.policy = import_tapio().EventLoopPolicy()
        else:
            self.policy = asyncio.DefaultEventLoopPolicy()
        asyncio.set_event_loop_policy(self.policy)
        self.addCleanup(asyncio.set_event_loop_policy, None)

    def test_get_event_loop_without_a_loop(self):
        # In a new thread: the main thread's policy made no loop there yet.
        outcome = {}

        def in_thread():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    asyncio.get_event_loop()
                except RuntimeError as exc:
                    outcome["error"] = str(exc)
            outcome["warnings"] = [w.category for w in caught]

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        self.assertIn("There is no current event loop", outcome.get("error", ""))

    def test_get_event_loop_makes_a_loop_of_the_policy(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.get_event_loop()
        self.addCleanup(loop.close)
        self.assertTrue(self.is_loop_of_this_kind(loop))
        categories = [w.category for w in caught]
        if PY312:  # 3.12 warns when get_event_loop() makes the loop
            self.assertIn(DeprecationWarning, categories)
        else:
            self.assertNotIn(DeprecationWarning, categories)
        asyncio.set_event_loop(None)

    @unittest.skipUnless(hasattr(asyncio, "set_child_watcher"), "no child watchers")
    def test_child_watcher_calls_work(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.ThreadedChildWatcher()
            asyncio.set_child_watcher(watcher)
            self.assertIs(asyncio.get_child_watcher(), watcher)
            loop = self.policy.new_event_loop()
            self.addCleanup(loop.close)

            async def child():
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "raise SystemExit(3)")
                return await process.wait()
            self.assertEqual(loop.run_until_complete(child()), 3)
            asyncio.set_child_watcher(None)
