"""Subprocesses: loop.subprocess_exec / subprocess_shell with a
SubprocessProtocol (asyncio's order of events, large transfers both ways
with back-pressure, signals, children that outlive their pipes and pipes
that outlive their children, every kind of stdin/stdout/stderr, env and
cwd, many children at once, the arguments asyncio refuses) and the streams
API on top (asyncio.create_subprocess_exec/shell, communicate, wait,
readline).

asyncio promises an order, not an interleaving: connection_made first,
connection_lost last (once the child has exited and every pipe has closed),
process_exited once, and pipe_connection_lost(fd) once per pipe after the
last pipe_data_received(fd). process_exited may come before or after the
pipes close. The tests assert those rules and nothing the two loops may do
differently from one run to the next."""

import asyncio
import contextlib
import errno
import gc
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import unittest.mock
import warnings
import zlib

from .loops import loop_tests, open_fds
from .support import wait_until

LOOPS = ("asyncio", "tapio")

MiB = 1024 * 1024

# A child that prints "ready" and then sleeps until it is killed.
SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(30)"

# A child that copies stdin to stdout.
CAT = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"

# A child that counts the bytes on stdin and prints the count.
COUNT_STDIN = """
import os
n = 0
while True:
    chunk = os.read(0, 1 << 20)
    if not chunk:
        break
    n += len(chunk)
print(n)
"""


def python(code):
    """argv running code in a Python child."""
    return (sys.executable, "-c", code)


class SubprocessRecorder(asyncio.SubprocessProtocol):
    """Records every callback in events as a tuple: ("connection_made",),
    ("pipe_data_received", fd), ("pipe_connection_lost", fd, exc),
    ("process_exited", returncode at that moment), ("connection_lost", exc),
    ("pause_writing",), ("resume_writing",). The bytes of each fd are in
    data[fd]; made/exited/lost are futures."""

    keep_data = True

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.events = []
        self.data = {}
        self.transport = None
        self.made = self.loop.create_future()
        self.exited = self.loop.create_future()
        self.lost = self.loop.create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport):
        self.events.append(("connection_made",))
        self.transport = transport
        self.made.set_result(None)

    def pipe_data_received(self, fd, data):
        self.events.append(("pipe_data_received", fd))
        if self.keep_data:
            self.data.setdefault(fd, bytearray()).extend(data)

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_connection_lost", fd, exc))

    def process_exited(self):
        returncode = self.transport.get_returncode()
        self.events.append(("process_exited", returncode))
        if not self.exited.done():
            self.exited.set_result(returncode)

    def connection_lost(self, exc):
        self.events.append(("connection_lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.events.append(("pause_writing",))
        self.can_write.clear()

    def resume_writing(self):
        self.events.append(("resume_writing",))
        self.can_write.set()

    def names(self):
        return [event[0] for event in self.events]

    def output(self, fd=1):
        return bytes(self.data.get(fd, b""))


class SubprocessCases:
    """Helpers (a mixin for LoopTestCase)."""

    def temp_dir(self):
        path = tempfile.mkdtemp(prefix="tapio-test-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    async def spawn(self, *argv, protocol_class=SubprocessRecorder, **kwargs):
        transport, protocol = await self.loop.subprocess_exec(protocol_class, *argv, **kwargs)
        self.addCleanup(self._end, transport, protocol)
        return transport, protocol

    async def shell(self, cmd, protocol_class=SubprocessRecorder, **kwargs):
        transport, protocol = await self.loop.subprocess_shell(protocol_class, cmd, **kwargs)
        self.addCleanup(self._end, transport, protocol)
        return transport, protocol

    def _end(self, transport, protocol):
        """Kill what the test left running and wait for connection_lost."""
        if self.loop.is_closed():
            return
        transport.close()
        if not protocol.lost.done():
            self.loop.run_until_complete(asyncio.wait_for(asyncio.shield(protocol.lost), 5))

    async def finished(self, protocol, timeout=5.0):
        """Wait for connection_lost; assert asyncio's order of events."""
        await asyncio.wait_for(asyncio.shield(protocol.lost), timeout)
        self.assert_asyncio_order(protocol)
        return protocol

    def assert_asyncio_order(self, protocol, pipe_fds=None):
        """connection_made first and once, connection_lost(None) last and
        once, process_exited once, and for every pipe one
        pipe_connection_lost after all its data. pipe_fds (default: the
        transport's pipes) are the fds that must have had a pipe."""
        events = protocol.events
        names = protocol.names()
        self.assertEqual(names[0], "connection_made", events[:5])
        self.assertEqual(names.count("connection_made"), 1)
        self.assertEqual(events[-1], ("connection_lost", None), events[-5:])
        self.assertEqual(names.count("connection_lost"), 1)
        self.assertEqual(names.count("process_exited"), 1)
        if pipe_fds is None:
            pipe_fds = [fd for fd in (0, 1, 2)
                        if protocol.transport.get_pipe_transport(fd) is not None]
        for fd in (0, 1, 2):
            lost_at = [i for i, e in enumerate(events) if e[:2] == ("pipe_connection_lost", fd)]
            data_at = [i for i, e in enumerate(events) if e == ("pipe_data_received", fd)]
            if fd in pipe_fds:
                self.assertEqual(len(lost_at), 1, f"pipe_connection_lost({fd}) once")
                self.assertTrue(all(i < lost_at[0] for i in data_at),
                                f"data on fd {fd} after its pipe_connection_lost")
            else:
                self.assertEqual(lost_at + data_at, [], f"fd {fd} is not a pipe")
        if 0 in pipe_fds:
            self.assertNotIn(("pipe_data_received", 0), events)

    def event_index(self, protocol, event):
        return protocol.events.index(event)

    def pipe_lost_index(self, protocol, fd):
        return next(i for i, e in enumerate(protocol.events)
                    if e[:2] == ("pipe_connection_lost", fd))


@loop_tests(LOOPS)
class SubprocessProtocolTests(SubprocessCases):

    def test_events_in_asyncio_order(self):
        code = ("import sys; data = sys.stdin.buffer.read(); "
                "sys.stdout.buffer.write(b'out:' + data); sys.stdout.flush(); "
                "sys.stderr.buffer.write(b'err:' + data); sys.exit(3)")

        async def test():
            transport, protocol = await self.spawn(*python(code))
            stdin = transport.get_pipe_transport(0)
            stdin.write(b"hello")
            stdin.close()
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"out:hello")
            self.assertEqual(protocol.output(2), b"err:hello")
            self.assertIn(("process_exited", 3), protocol.events)
            self.assertEqual(transport.get_returncode(), 3)
            for fd in (0, 1, 2):
                self.assertIn(("pipe_connection_lost", fd, None), protocol.events)
        self.run_coro(test())

    def test_subprocess_exec_returns_after_connection_made(self):
        async def test():
            transport, protocol = await self.spawn(*python("pass"))
            self.assertEqual(protocol.events[0], ("connection_made",))
            self.assertIs(protocol.transport, transport)
            self.assertIs(transport.get_protocol(), protocol)
            self.assertFalse(transport.is_closing())
            await self.finished(protocol)
            self.assertIn(("process_exited", 0), protocol.events)
        self.run_coro(test())

    def test_output_written_before_the_pipes_are_connected_follows_connection_made(self):
        # preexec_fn runs in the child before exec, and Popen returns only
        # after the exec: the bytes are in the pipes before the loop
        # connects them. asyncio holds pipe_data_received back until
        # connection_made has run.
        def write_early():
            os.write(1, b"early out")
            os.write(2, b"early err")

        async def test():
            transport, protocol = await self.spawn(*python("print('late')"),
                                                   stdin=subprocess.DEVNULL,
                                                   preexec_fn=write_early)
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"early outlate\n")
            self.assertEqual(protocol.output(2), b"early err")
        self.run_coro(test())

    def test_set_protocol(self):
        async def test():
            transport, first = await self.spawn(*python(SLEEPER))
            second = SubprocessRecorder()
            second.transport = transport
            transport.set_protocol(second)
            self.assertIs(transport.get_protocol(), second)
            transport.kill()
            await asyncio.wait_for(second.lost, 5)
            self.assertIn(("process_exited", -signal.SIGKILL), second.events)
            self.assertNotIn("process_exited", first.names())
            first.lost.set_result(None)  # for the cleanup
        self.run_coro(test())

    def test_transport_api(self):
        async def test():
            transport, protocol = await self.spawn(*python(SLEEPER))
            self.assertIsInstance(transport, asyncio.SubprocessTransport)
            self.assertIsInstance(transport, asyncio.BaseTransport)
            popen = transport.get_extra_info("subprocess")
            self.assertIsInstance(popen, subprocess.Popen)
            pid = transport.get_pid()
            self.assertIsInstance(pid, int)
            self.assertEqual(popen.pid, pid)
            self.assertIsNone(transport.get_returncode())
            self.assertIsInstance(transport.get_pipe_transport(0), asyncio.WriteTransport)
            self.assertIsInstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
            self.assertIsInstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
            self.assertIsNone(transport.get_pipe_transport(3))
            self.assertEqual(len({id(transport.get_pipe_transport(fd)) for fd in (0, 1, 2)}), 3)
            # Each pipe transport's extra info is the Popen's file object.
            for fd, pipe in enumerate((popen.stdin, popen.stdout, popen.stderr)):
                self.assertIs(transport.get_pipe_transport(fd).get_extra_info("pipe"), pipe)
            await wait_until(lambda: b"ready" in protocol.output(1), what="the child")

            transport.kill()
            self.assertEqual(await protocol.exited, -signal.SIGKILL)
            await self.finished(protocol)
            self.assertEqual(transport.get_returncode(), -signal.SIGKILL)
            self.assertEqual(transport.get_pid(), pid)
            # After the end the process is gone for good.
            with self.assertRaises(ProcessLookupError):
                transport.kill()
            with self.assertRaises(ProcessLookupError):
                transport.send_signal(signal.SIGTERM)
        self.run_coro(test())

    def test_child_writes_100_mib_to_stdout(self):
        total = 100 * MiB
        block = bytes(range(256)) * 4096  # 1 MiB
        code = ("import sys; block = bytes(range(256)) * 4096; "
                "w = sys.stdout.buffer.write\n"
                "for _ in range(100): w(block)")

        class Counter(SubprocessRecorder):
            keep_data = False
            count = 0
            crc = 0

            def pipe_data_received(self, fd, data):
                if fd == 1:
                    self.count += len(data)
                    self.crc = zlib.crc32(data, self.crc)
                else:
                    super().pipe_data_received(fd, data)

        async def test():
            _, protocol = await self.spawn(*python(code), protocol_class=Counter,
                                           stdin=subprocess.DEVNULL)
            await self.finished(protocol, timeout=30)
            self.assertEqual(protocol.count, total)
            expected_crc = 0
            for _ in range(100):
                expected_crc = zlib.crc32(block, expected_crc)
            self.assertEqual(protocol.crc, expected_crc, "the bytes differ")
            self.assertEqual(protocol.exited.result(), 0)
            self.assertEqual(protocol.data, {}, "nothing on stderr")
        self.run_coro(test(), timeout=40)

    def test_100_mib_to_stdin_with_back_pressure(self):
        async def test():
            transport, protocol = await self.spawn(*python(COUNT_STDIN))
            stdin = transport.get_pipe_transport(0)
            chunk = b"x" * MiB
            high = stdin.get_write_buffer_limits()[1]
            for _ in range(100):
                await protocol.can_write.wait()
                self.assertLessEqual(stdin.get_write_buffer_size(), high)
                stdin.write(chunk)
            stdin.close()
            await self.finished(protocol, timeout=30)
            self.assertEqual(protocol.output(1), b"%d\n" % (100 * MiB))
            self.assertEqual(protocol.exited.result(), 0)
            flow = [name for name in protocol.names() if name.endswith("_writing")]
            self.assertGreaterEqual(flow.count("pause_writing"), 1)
            self.assertEqual(flow[0], "pause_writing")
            # They alternate: a resume follows each pause.
            self.assertEqual(flow, ["pause_writing", "resume_writing"] * (len(flow) // 2))
        self.run_coro(test(), timeout=40)

    def test_writes_after_the_child_closed_stdin_end_the_pipe(self):
        code = "import os, time; os.close(0); time.sleep(0.2)"

        async def test():
            transport, protocol = await self.spawn(*python(code), stdout=subprocess.DEVNULL)
            stdin = transport.get_pipe_transport(0)
            await wait_until(lambda: ("pipe_connection_lost", 0, None) in protocol.events
                             or protocol.lost.done(), what="stdin to close")
            stdin.write(b"nobody reads this")  # ignored, as asyncio does
            await self.finished(protocol)
            self.assertEqual(len([e for e in protocol.events if e[0] == "pipe_connection_lost"]), 2)
        self.run_coro(test())

    def test_unsendable_write_to_stdin_ends_the_pipe_with_its_error(self):
        async def test():
            reports = []
            self.loop.set_exception_handler(lambda loop, context: reports.append(context))
            transport, protocol = await self.spawn(*python(CAT))
            stdin = transport.get_pipe_transport(0)
            strided = memoryview(bytearray(b"0123456789"))[::2]
            self.assertIsNone(stdin.write(strided))  # fails in the send
            self.assertTrue(stdin.is_closing())
            await self.finished(protocol)
            lost = [e for e in protocol.events if e[:2] == ("pipe_connection_lost", 0)]
            self.assertIsInstance(lost[0][2], BufferError)
            self.assertEqual([type(c.get("exception")) for c in reports], [BufferError])
            self.assertEqual(reports[0]["message"], "Fatal write error on pipe transport")
        self.run_coro(test())

    # ---- signals ------------------------------------------------------------

    async def killed_by(self, kill, expected):
        transport, protocol = await self.spawn(*python(SLEEPER))
        await wait_until(lambda: b"ready" in protocol.output(1), what="the child")
        kill(transport)
        self.assertEqual(await protocol.exited, expected)
        await self.finished(protocol)
        self.assertEqual(transport.get_returncode(), expected)

    def test_kill(self):
        self.run_coro(self.killed_by(lambda t: t.kill(), -signal.SIGKILL))

    def test_terminate(self):
        self.run_coro(self.killed_by(lambda t: t.terminate(), -signal.SIGTERM))

    def test_send_signal(self):
        self.run_coro(self.killed_by(lambda t: t.send_signal(signal.SIGUSR1), -signal.SIGUSR1))

    def test_close_kills_a_running_child(self):
        async def test():
            transport, protocol = await self.spawn(*python(SLEEPER))
            await wait_until(lambda: b"ready" in protocol.output(1), what="the child")
            transport.close()
            self.assertTrue(transport.is_closing())
            self.assertEqual(await protocol.exited, -signal.SIGKILL)
            await self.finished(protocol)
            for fd in (0, 1, 2):
                self.assertTrue(transport.get_pipe_transport(fd).is_closing())
        self.run_coro(test())

    def test_close_after_the_end_changes_nothing(self):
        async def test():
            transport, protocol = await self.spawn(*python("pass"))
            await self.finished(protocol)
            transport.close()
            transport.close()
            await asyncio.sleep(0.02)
            self.assertEqual(protocol.names().count("connection_lost"), 1)
            self.assertEqual(transport.get_returncode(), 0)
        self.run_coro(test())

    # ---- exit and pipes in either order ---------------------------------------

    def test_child_exits_before_its_pipes_close(self):
        # The shell exits at once; a grandchild keeps stdout and stderr
        # open a while longer and writes before it goes.
        async def test():
            transport, protocol = await self.shell("(sleep 0.3; echo late) & echo early",
                                                   stdin=subprocess.DEVNULL)
            self.assertEqual(await protocol.exited, 0)
            self.assertEqual(transport.get_returncode(), 0)
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"early\nlate\n")
            exited_at = self.event_index(protocol, ("process_exited", 0))
            self.assertLess(exited_at, self.pipe_lost_index(protocol, 1))
            self.assertLess(exited_at, self.pipe_lost_index(protocol, 2))
            # "late" arrived after the exit.
            last_data = max(i for i, e in enumerate(protocol.events)
                            if e == ("pipe_data_received", 1))
            self.assertLess(exited_at, last_data)
        self.run_coro(test())

    def test_child_closes_its_pipes_before_exiting(self):
        code = ("import os, time\n"
                "os.write(1, b'bye'); os.write(2, b'err')\n"
                "for fd in (0, 1, 2): os.close(fd)\n"
                "time.sleep(0.3)\n"
                "os._exit(5)")

        async def test():
            transport, protocol = await self.spawn(*python(code))
            await wait_until(lambda: protocol.names().count("pipe_connection_lost") == 3
                             or protocol.exited.done(), what="the pipes to close")
            self.assertFalse(protocol.exited.done(), "exited before closing its pipes")
            self.assertIsNone(transport.get_returncode())
            self.assertEqual(await protocol.exited, 5)
            await self.finished(protocol)
            exited_at = self.event_index(protocol, ("process_exited", 5))
            for fd in (0, 1, 2):
                self.assertIn(("pipe_connection_lost", fd, None), protocol.events)
                self.assertLess(self.pipe_lost_index(protocol, fd), exited_at)
            self.assertEqual(protocol.output(1), b"bye")
            self.assertEqual(protocol.output(2), b"err")
        self.run_coro(test())

    # ---- stdin, stdout, stderr ----------------------------------------------

    def test_stderr_to_stdout(self):
        code = ("import sys; sys.stdout.write('out\\n'); sys.stdout.flush(); "
                "sys.stderr.write('err\\n'); sys.stderr.flush(); print('end')")

        async def test():
            transport, protocol = await self.spawn(*python(code), stderr=subprocess.STDOUT)
            self.assertIsNone(transport.get_pipe_transport(2))
            await self.finished(protocol)
            self.assert_asyncio_order(protocol, pipe_fds=(0, 1))
            self.assertEqual(protocol.output(1), b"out\nerr\nend\n")
            self.assertNotIn(2, protocol.data)
        self.run_coro(test())

    def test_stderr_as_its_own_pipe(self):
        code = ("import sys; sys.stdout.write('to out'); sys.stdout.flush(); "
                "sys.stderr.write('to err'); sys.stderr.flush()")

        async def test():
            transport, protocol = await self.spawn(*python(code))
            self.assertIsNot(transport.get_pipe_transport(2), transport.get_pipe_transport(1))
            await self.finished(protocol)
            self.assert_asyncio_order(protocol, pipe_fds=(0, 1, 2))
            self.assertEqual(protocol.output(1), b"to out")
            self.assertEqual(protocol.output(2), b"to err")
        self.run_coro(test())

    def test_stdout_and_stderr_are_pipes_the_child_can_reopen(self):
        # asyncio gives the child pipes: `>/dev/stderr` reopens them (on a
        # socketpair, as libuv gives, the open fails with ENXIO).
        cmd = ("test -p /dev/stdout && test -p /dev/stderr && "
               "echo out >/dev/stdout && echo err >/dev/stderr")

        async def test():
            transport, protocol = await self.shell(cmd, stdin=subprocess.DEVNULL)
            await self.finished(protocol)
            self.assertEqual((protocol.output(1), protocol.output(2)), (b"out\n", b"err\n"))
            self.assertEqual(transport.get_returncode(), 0)
        self.run_coro(test())

    def test_paused_stdout_blocks_the_child_until_resumed(self):
        total = 8 * MiB
        code = ("import sys; sys.stdout.buffer.write(b'x' * %d); sys.stdout.flush(); "
                "sys.stderr.write('wrote all')" % total)

        class Paused(SubprocessRecorder):
            keep_data = False
            count = 0

            def connection_made(self, transport):
                transport.get_pipe_transport(1).pause_reading()
                super().connection_made(transport)

            def pipe_data_received(self, fd, data):
                if fd == 1:
                    self.count += len(data)
                else:
                    self.data.setdefault(fd, bytearray()).extend(data)
                super().pipe_data_received(fd, data)

        async def test():
            transport, protocol = await self.spawn(*python(code), protocol_class=Paused,
                                                   stdin=subprocess.DEVNULL)
            await asyncio.sleep(0.5)
            # The buffers between the child and the paused transport hold
            # far less than 8 MiB: the child is still writing.
            self.assertFalse(protocol.exited.done(), "the child finished")
            self.assertEqual(protocol.output(2), b"")
            self.assertLess(protocol.count, total // 2)
            transport.get_pipe_transport(1).resume_reading()
            await self.finished(protocol, timeout=10)
            self.assertEqual(protocol.count, total)
            self.assertEqual(protocol.output(2), b"wrote all")
            self.assertEqual(transport.get_returncode(), 0)
        self.run_coro(test())

    def test_pausing_stdout_again_and_again_loses_nothing(self):
        # 32 MiB in 1 MiB writes; the reader pauses after every 3 MiB and
        # resumes 10 ms later.
        code = ("import sys; block = bytes(range(256)) * 4096\n"
                "for _ in range(32): sys.stdout.buffer.write(block)")

        class Pausing(SubprocessRecorder):
            keep_data = False
            count = 0
            crc = 0
            pauses = 0

            def pipe_data_received(self, fd, data):
                if fd != 1:
                    return super().pipe_data_received(fd, data)
                self.count += len(data)
                self.crc = zlib.crc32(data, self.crc)
                if self.count // (3 * MiB) > self.pauses:
                    self.pauses += 1
                    pipe = self.transport.get_pipe_transport(1)
                    pipe.pause_reading()
                    self.loop.call_later(0.01, pipe.resume_reading)

        async def test():
            transport, protocol = await self.spawn(*python(code), protocol_class=Pausing,
                                                   stdin=subprocess.DEVNULL)
            await self.finished(protocol, timeout=20)
            self.assertEqual(protocol.count, 32 * MiB)
            self.assertEqual(protocol.crc, zlib.crc32(bytes(range(256)) * 4096 * 32))
            self.assertGreaterEqual(protocol.pauses, 10)
            self.assertEqual(transport.get_returncode(), 0)
        self.run_coro(test(), timeout=30)

    def test_closing_stdout_breaks_the_childs_pipe(self):
        # Closing the parent's end makes the child's next write fail with
        # EPIPE, as when asyncio closes the pipe.
        code = ("import os, sys\n"
                "try:\n"
                "    while True:\n"
                "        sys.stdout.buffer.write(b'x' * 65536); sys.stdout.flush()\n"
                "except BrokenPipeError:\n"
                "    os.write(2, b'EPIPE'); os._exit(3)\n")

        async def test():
            transport, protocol = await self.spawn(*python(code), stdin=subprocess.DEVNULL)
            await wait_until(lambda: 1 in protocol.data, what="the first output")
            transport.get_pipe_transport(1).close()
            self.assertEqual(await asyncio.wait_for(asyncio.shield(protocol.exited), 5), 3)
            await self.finished(protocol)
            self.assertEqual(protocol.output(2), b"EPIPE")
        self.run_coro(test())

    def test_devnull_stdin_and_stdout(self):
        code = ("import os, sys; data = sys.stdin.buffer.read(); "
                "null = os.stat(os.devnull); "
                "same = [os.path.samestat(os.fstat(fd), null) for fd in (0, 1)]; "
                "print('x' * 100); "
                "sys.stderr.write(repr((data, same)))")

        async def test():
            transport, protocol = await self.spawn(*python(code), stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL)
            self.assertIsNone(transport.get_pipe_transport(0))
            self.assertIsNone(transport.get_pipe_transport(1))
            await self.finished(protocol)
            self.assert_asyncio_order(protocol, pipe_fds=(2,))
            self.assertEqual(protocol.output(2), b"(b'', [True, True])")
            self.assertNotIn(1, protocol.data)
        self.run_coro(test())

    def test_no_pipes_at_all(self):
        async def test():
            transport, protocol = await self.spawn(
                *python("import sys; sys.exit(4)"), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fd in (0, 1, 2):
                self.assertIsNone(transport.get_pipe_transport(fd))
            await self.finished(protocol)
            self.assertEqual(protocol.events,
                             [("connection_made",), ("process_exited", 4),
                              ("connection_lost", None)])
        self.run_coro(test())

    def test_given_files(self):
        code = "import sys; sys.stdout.write(sys.stdin.read().upper())"

        async def test():
            directory = self.temp_dir()
            source = os.path.join(directory, "in")
            target = os.path.join(directory, "out")
            with open(source, "w") as f:
                f.write("from a file\n")
            with open(source, "rb") as stdin, open(target, "wb") as stdout:
                transport, protocol = await self.spawn(*python(code), stdin=stdin, stdout=stdout)
                self.assertIsNone(transport.get_pipe_transport(0))
                self.assertIsNone(transport.get_pipe_transport(1))
                await self.finished(protocol)
            self.assert_asyncio_order(protocol, pipe_fds=(2,))
            self.assertEqual(protocol.exited.result(), 0)
            with open(target, "rb") as f:
                self.assertEqual(f.read(), b"FROM A FILE\n")
        self.run_coro(test())

    def test_given_fd_for_stderr(self):
        code = "import sys; sys.stderr.write('to the fd'); print('to the pipe')"

        async def test():
            target = os.path.join(self.temp_dir(), "err")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                transport, protocol = await self.spawn(*python(code), stderr=fd)
                self.assertIsNone(transport.get_pipe_transport(2))
                await self.finished(protocol)
            finally:
                os.close(fd)
            self.assertEqual(protocol.output(1), b"to the pipe\n")
            with open(target, "rb") as f:
                self.assertEqual(f.read(), b"to the fd")
        self.run_coro(test())

    def test_parent_fds_are_not_inherited(self):
        code = "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"

        async def test():
            r, w = os.pipe()
            self.addCleanup(os.close, r)
            self.addCleanup(os.close, w)
            _, protocol = await self.spawn(*python(code))
            await self.finished(protocol)
            fds = eval(protocol.output(1))
            self.assertEqual(fds[:3], [0, 1, 2])
            self.assertNotIn(r, fds)
            self.assertNotIn(w, fds)
            self.assertLessEqual(len(fds), 4, fds)  # 0, 1, 2 and listdir's own
        self.run_coro(test())

    def test_pass_fds(self):
        code = "import os, sys; os.write(int(sys.argv[1]), b'through pass_fds')"

        async def test():
            r, w = os.pipe()
            self.addCleanup(os.close, r)
            w_open = True

            def close_w():
                if w_open:
                    os.close(w)
            self.addCleanup(close_w)
            _, protocol = await self.spawn(*python(code), str(w), pass_fds=(w,))
            await self.finished(protocol)
            os.close(w)
            w_open = False
            self.assertEqual(os.read(r, 100), b"through pass_fds")
        self.run_coro(test())

    # ---- env and cwd ----------------------------------------------------------

    def test_env(self):
        code = "import os; print(os.environ.get('TAPIO_TEST_VALUE'), os.environ.get('HOME'))"

        async def test():
            _, protocol = await self.spawn(*python(code), env={"TAPIO_TEST_VALUE": "given"})
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"given None\n")
        self.run_coro(test())

    def test_cwd(self):
        code = "import os; print(os.getcwd())"

        async def test():
            directory = self.temp_dir()
            _, protocol = await self.spawn(*python(code), cwd=directory)
            await self.finished(protocol)
            self.assertEqual(os.path.realpath(protocol.output(1).decode().strip()),
                             os.path.realpath(directory))
        self.run_coro(test())

    # ---- many children ----------------------------------------------------------

    def test_200_concurrent_children(self):
        async def test():
            started = await asyncio.gather(*(self.spawn("true") for _ in range(200)))
            pids = [transport.get_pid() for transport, _ in started]
            self.assertEqual(len(set(pids)), 200)
            await asyncio.gather(*(self.finished(protocol, timeout=20) for _, protocol in started))
            for transport, protocol in started:
                self.assertEqual(transport.get_returncode(), 0)
                self.assertEqual(protocol.exited.result(), 0)
                self.assertEqual(protocol.data, {})
            # Every child is reaped: none of them is left as a zombie.
            for pid in pids:
                with self.assertRaises(ChildProcessError, msg=f"pid {pid} not reaped"):
                    os.waitpid(pid, os.WNOHANG)
            # No child of this process at all is waiting to be reaped.
            try:
                self.assertEqual(os.waitpid(-1, os.WNOHANG), (0, 0))
            except ChildProcessError:
                pass  # no children at all
            for transport, _ in started:
                transport.close()
        self.run_coro(test(), timeout=40)

    # ---- the shell --------------------------------------------------------------

    def test_subprocess_shell(self):
        async def test():
            transport, protocol = await self.shell(
                'read word; echo "$word $TAPIO_TEST_VALUE" | tr a-z A-Z; echo oops >&2; exit 7',
                env={"TAPIO_TEST_VALUE": "shell", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            self.assertIsInstance(transport, asyncio.SubprocessTransport)
            stdin = transport.get_pipe_transport(0)
            stdin.write(b"hello\n")
            stdin.close()
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"HELLO SHELL\n")
            self.assertEqual(protocol.output(2), b"oops\n")
            self.assertEqual(transport.get_returncode(), 7)
        self.run_coro(test())

    def test_subprocess_shell_with_a_bytes_command(self):
        async def test():
            transport, protocol = await self.shell(b"echo bytes", stdin=subprocess.DEVNULL)
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"bytes\n")
            self.assertEqual(transport.get_returncode(), 0)
        self.run_coro(test())

    def test_shell_reports_a_missing_command_as_127(self):
        async def test():
            transport, protocol = await self.shell("tapio-no-such-command-here",
                                                   stdin=subprocess.DEVNULL)
            await self.finished(protocol)
            self.assertEqual(transport.get_returncode(), 127)
            self.assertIn(b"tapio-no-such-command-here", protocol.output(2))
        self.run_coro(test())

    # ---- what asyncio refuses -----------------------------------------------------

    def test_exec_refuses_popen_arguments(self):
        cases = [
            ({"universal_newlines": True}, "universal_newlines must be False"),
            ({"text": True}, "text must be False"),
            ({"encoding": "utf-8"}, "encoding must be None"),
            ({"errors": "strict"}, "errors must be None"),
            ({"bufsize": 1}, "bufsize must be 0"),
            ({"bufsize": -1}, "bufsize must be 0"),
            ({"shell": True}, "shell must be False"),
        ]

        async def test():
            made = []
            for kwargs, message in cases:
                with self.subTest(**kwargs):
                    with self.assertRaises(ValueError) as caught:
                        await self.loop.subprocess_exec(lambda: made.append(1), "true", **kwargs)
                    self.assertEqual(str(caught.exception), message)
            self.assertEqual(made, [], "the protocol factory was called")
        self.run_coro(test())

    def test_shell_refuses_popen_arguments(self):
        cases = [
            ("true", {"universal_newlines": True}, "universal_newlines must be False"),
            ("true", {"text": True}, "text must be False"),
            ("true", {"encoding": "utf-8"}, "encoding must be None"),
            ("true", {"errors": "strict"}, "errors must be None"),
            ("true", {"bufsize": 1}, "bufsize must be 0"),
            ("true", {"shell": False}, "shell must be True"),
            (["true"], {}, "cmd must be a string"),
            (("true",), {}, "cmd must be a string"),
            (None, {}, "cmd must be a string"),
        ]

        async def test():
            made = []
            for cmd, kwargs, message in cases:
                with self.subTest(cmd=cmd, **kwargs):
                    with self.assertRaises(ValueError) as caught:
                        await self.loop.subprocess_shell(lambda: made.append(1), cmd, **kwargs)
                    self.assertEqual(str(caught.exception), message)
            self.assertEqual(made, [], "the protocol factory was called")
        self.run_coro(test())

    def test_text_false_and_explicit_defaults_are_accepted(self):
        async def test():
            _, protocol = await self.spawn(
                *python("print('ok')"), universal_newlines=False, text=False, bufsize=0,
                encoding=None, errors=None, shell=False)
            await self.finished(protocol)
            self.assertEqual(protocol.output(1), b"ok\n")
        self.run_coro(test())

    def test_missing_program(self):
        async def test():
            for program in ("/nonexistent/tapio-no-such-program", "tapio-no-such-program"):
                with self.subTest(program=program):
                    protocols = []

                    def factory():
                        protocols.append(SubprocessRecorder())
                        return protocols[-1]

                    with self.assertRaises(FileNotFoundError):
                        await self.loop.subprocess_exec(factory, program, "arg")
                    for protocol in protocols:
                        self.assertEqual(protocol.events, [])
        self.run_coro(test())

    def test_missing_cwd(self):
        async def test():
            with self.assertRaises(FileNotFoundError):
                await self.loop.subprocess_exec(
                    SubprocessRecorder, *python("pass"),
                    cwd=os.path.join(self.temp_dir(), "missing"))
        self.run_coro(test())

    def test_program_that_is_not_executable(self):
        async def test():
            path = os.path.join(self.temp_dir(), "not-executable")
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho no\n")
            os.chmod(path, 0o600)
            with self.assertRaises(PermissionError):
                await self.loop.subprocess_exec(SubprocessRecorder, path)
        self.run_coro(test())


@loop_tests(LOOPS)
class SubprocessStreamsTests(SubprocessCases):
    """asyncio.create_subprocess_exec/shell on the loop under test."""

    async def exec(self, *argv, **kwargs):
        proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
        self.addCleanup(self._end_process, proc)
        return proc

    def _end_process(self, proc):
        """Kill what the test left running, wait for it and let the pipe
        transports finish closing."""
        if self.loop.is_closed():
            return
        proc._transport.close()
        self.loop.run_until_complete(asyncio.wait_for(proc.wait(), 5))
        self.run_briefly()

    def test_create_subprocess_exec_runs_on_this_loop(self):
        async def test():
            proc = await self.exec(*python("print('hi')"), stdout=subprocess.PIPE)
            self.assertIs(proc._loop, self.loop)
            self.assertIsInstance(proc._transport, asyncio.SubprocessTransport)
            self.assertEqual(await proc.stdout.read(), b"hi\n")
            self.assertEqual(await proc.wait(), 0)
        self.run_coro(test())

    def test_communicate_with_input(self):
        async def test():
            proc = await self.exec(*python(CAT), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            data = bytes(range(256)) * 4096 * 4  # 4 MiB: more than a pipe holds
            stdout, stderr = await proc.communicate(data)
            self.assertEqual(len(stdout), len(data))
            self.assertTrue(stdout == data, "the bytes differ")
            self.assertEqual(stderr, b"")
            self.assertEqual(proc.returncode, 0)
        self.run_coro(test())

    def test_communicate_without_input(self):
        async def test():
            code = "import sys; print('o'); sys.stderr.write('e'); sys.exit(2)"
            proc = await self.exec(*python(code),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertIsNone(proc.returncode)
            self.assertEqual(await proc.communicate(), (b"o\n", b"e"))
            self.assertEqual(proc.returncode, 2)
            self.assertEqual(await proc.wait(), 2)
        self.run_coro(test())

    def test_wait_and_returncode(self):
        async def test():
            proc = await self.exec(*python("import sys; sys.exit(9)"))
            self.assertIsInstance(proc.pid, int)
            self.assertIsNone(proc.stdin)
            self.assertIsNone(proc.stdout)
            self.assertIsNone(proc.stderr)
            self.assertEqual(await proc.wait(), 9)
            self.assertEqual(proc.returncode, 9)
            self.assertEqual(await proc.wait(), 9)
        self.run_coro(test())

    def test_readline_until_eof(self):
        code = "for i in range(5): print('line', i, flush=True)"

        async def test():
            proc = await self.exec(*python(code), stdout=subprocess.PIPE)
            lines = []
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
            self.assertEqual(lines, [b"line %d\n" % i for i in range(5)])
            self.assertTrue(proc.stdout.at_eof())
            self.assertEqual(await proc.wait(), 0)
        self.run_coro(test())

    def test_drain_applies_back_pressure(self):
        async def test():
            proc = await self.exec(*python(COUNT_STDIN), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
            transport = proc.stdin.transport
            high = transport.get_write_buffer_limits()[1]
            chunk = b"y" * MiB
            most_buffered = 0
            for _ in range(16):
                proc.stdin.write(chunk)
                most_buffered = max(most_buffered, transport.get_write_buffer_size())
                await proc.stdin.drain()
                self.assertLessEqual(transport.get_write_buffer_size(), high)
            self.assertGreater(most_buffered, high, "drain() never had to wait")
            proc.stdin.close()
            self.assertEqual(await proc.stdout.read(), b"%d\n" % (16 * MiB))
            self.assertEqual(await proc.wait(), 0)
        self.run_coro(test(), timeout=20)

    def test_kill_and_wait(self):
        async def test():
            proc = await self.exec(*python(SLEEPER), stdout=subprocess.PIPE)
            self.assertEqual(await proc.stdout.readline(), b"ready\n")
            proc.kill()
            self.assertEqual(await proc.wait(), -signal.SIGKILL)
            self.assertEqual(proc.returncode, -signal.SIGKILL)
        self.run_coro(test())

    def test_terminate_and_wait(self):
        async def test():
            proc = await self.exec(*python(SLEEPER), stdout=subprocess.PIPE)
            self.assertEqual(await proc.stdout.readline(), b"ready\n")
            proc.terminate()
            self.assertEqual(await proc.wait(), -signal.SIGTERM)
        self.run_coro(test())

    def test_signal_to_an_exited_child_keeps_its_exit_status(self):
        # The child exits while the loop is blocked; signalling it then must
        # not reap it behind the loop's back (the exit status would be lost:
        # 255). Stock asyncio before 3.13 signals through Popen, which reaps
        # it, and may lose the status, depending on its child watcher
        # (CPython gh-87744, fixed in 3.13); tapio keeps it on every version.
        may_lose = self.loop_name == "asyncio" and sys.version_info < (3, 13)

        async def test():
            for send in ("send_signal", "terminate", "kill"):
                proc = await self.exec(sys.executable, "-c", "pass")
                time.sleep(0.3)  # blocks the loop: the child is a zombie now
                if send == "send_signal":
                    proc.send_signal(signal.SIGUSR1)
                else:
                    getattr(proc, send)()
                self.assertIn(await proc.wait(), (0, 255) if may_lose else (0,), send)
        self.run_coro(test())

    def test_create_subprocess_shell(self):
        async def test():
            proc = await asyncio.create_subprocess_shell(
                "cat; echo done >&2; exit 6", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.addCleanup(self._end_process, proc)
            self.assertEqual(await proc.communicate(b"shell input"), (b"shell input", b"done\n"))
            self.assertEqual(proc.returncode, 6)
        self.run_coro(test())

    def test_create_subprocess_exec_missing_program(self):
        async def test():
            with self.assertRaises(FileNotFoundError):
                await asyncio.create_subprocess_exec("/nonexistent/tapio-no-such-program",
                                                     stdout=subprocess.PIPE)
        self.run_coro(test())

    def test_stderr_to_stdout(self):
        code = "import sys; print('a', flush=True); sys.stderr.write('b\\n')"

        async def test():
            proc = await self.exec(*python(code), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
            self.assertIsNone(proc.stderr)
            self.assertEqual(await proc.communicate(), (b"a\nb\n", None))
        self.run_coro(test())


def children():
    """Pids of this process's children (zombies included), from /proc."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[1]) == me:
            found.append(int(entry))
    return found


@contextlib.contextmanager
def threaded_child_watcher():
    """asyncio before 3.14 learns a child's exit from the policy's child
    watcher: a ThreadedChildWatcher needs neither a pidfd nor any fd, as
    asyncio runs where pidfds are missing (tapio leaves that kind to
    libtapio, which watches its children itself)."""
    if sys.version_info >= (3, 14):
        yield
        return
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = policy.get_child_watcher()
        policy.set_child_watcher(asyncio.ThreadedChildWatcher())
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy.set_child_watcher(old)


@contextlib.contextmanager
def pidfd_open_failing(err):
    """pidfd_open fails with err, as on kernels before 5.3 or under seccomp:
    os.pidfd_open for Python code, and libtapio's through its testing hook."""
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))
    with unittest.mock.patch.dict(os.environ, {"TAPIO_FAULT_PIDFD_OPEN": str(err)}), \
            unittest.mock.patch.object(os, "pidfd_open", fail, create=True), \
            threaded_child_watcher():
        yield


@contextlib.contextmanager
def fd_limit(soft):
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


@loop_tests(LOOPS)
class SubprocessFailureTests(SubprocessCases):
    """Where the exit cannot be watched with a pidfd, where the pipes cannot
    be connected, and where the loop closes under a running child: the call
    completes or raises, and no child, fd or hang is left."""

    def check_without_pidfd(self, err):
        async def test():
            with pidfd_open_failing(err):
                transport, protocol = await self.spawn(*python(
                    "import sys; print('out'); sys.exit(4)"), stdin=subprocess.DEVNULL)
                await self.finished(protocol)
                self.assertEqual(protocol.output(1), b"out\n")
                self.assertEqual(transport.get_returncode(), 4)
                self.assertIn(("process_exited", 4), protocol.events)
                # kill reaches a child watched without pidfd, too
                transport, protocol = await self.spawn(*python(SLEEPER))
                await wait_until(lambda: b"ready" in protocol.output(1), what="the child")
                transport.kill()
                await self.finished(protocol)
                self.assertEqual(transport.get_returncode(), -signal.SIGKILL)
            proc = await asyncio.create_subprocess_exec(
                *python("pass"), stdout=subprocess.PIPE)
            self.assertEqual(await proc.wait(), 0)
        self.run_coro(test())
        self.assertEqual(children(), [])

    def test_without_pidfd_enosys(self):
        self.check_without_pidfd(errno.ENOSYS)

    def test_without_pidfd_eperm(self):
        self.check_without_pidfd(errno.EPERM)

    def test_without_pidfd_create_subprocess_exec_and_communicate(self):
        async def test():
            with pidfd_open_failing(errno.ENOSYS):
                proc = await asyncio.create_subprocess_exec(
                    *python(CAT), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                out, _ = await proc.communicate(b"through")
                self.assertEqual(out, b"through")
                self.assertEqual(proc.returncode, 0)
        self.run_coro(test())

    def test_out_of_fds_while_connecting_pipes_raises_without_leaks(self):
        # Every fd limit from "not even Popen's pipes" to "enough": each
        # call completes or raises EMFILE, promptly; after each, no fd is
        # left open and no child is left running or unreaped.
        true = shutil.which("true")
        outcomes = []

        async def attempt():
            try:
                transport, protocol = await self.loop.subprocess_exec(
                    SubprocessRecorder, true)
            except OSError as e:
                self.assertEqual(e.errno, errno.EMFILE, e)
                return "EMFILE"
            return transport, protocol

        def popen_leaks(soft):
            """Whether a bare subprocess.Popen under this fd limit leaves fds
            open (Python 3.11.2's does when its pipes run out of fds; later
            3.11s fixed it): then the stdlib's leak, not the loop's, is
            closed again and not counted."""
            before = open_fds()
            with fd_limit(soft), contextlib.suppress(OSError):
                subprocess.Popen([true], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE).communicate()
            leaked = set(open_fds()) - set(before)
            for fd in leaked:
                os.close(fd)
            return bool(leaked)

        async def test():
            with threaded_child_watcher():
                gc.collect()
                before = open_fds()
                lowest = min(set(range(len(before) + 1)) - set(before))  # no fd free
                for soft in range(lowest, max(before) + 60):
                    stdlib_leaks = popen_leaks(soft)
                    with fd_limit(soft):
                        result = await asyncio.wait_for(attempt(), 5)
                    if result != "EMFILE":
                        transport, protocol = result
                        await self.finished(protocol)
                        transport.close()
                        result = "ok"
                    outcomes.append(result)
                    await wait_until(lambda: not children(), what="no child left")
                    gc.collect()
                    # Transports close on the loop's next iterations, as
                    # asyncio's: the fds go then.
                    with contextlib.suppress(AssertionError):
                        await wait_until(lambda: open_fds() == before, timeout=2)
                    if stdlib_leaks:
                        for fd in set(open_fds()) - set(before):
                            os.close(fd)
                    self.assertEqual(open_fds(), before, f"fd limit {soft}: fds left")
                    if outcomes[-3:] == ["ok"] * 3:
                        break
        self.run_coro(test(), timeout=60)
        self.assertIn("EMFILE", outcomes)
        self.assertEqual(outcomes[-1], "ok")

    def test_loop_closed_with_a_child_running_leaves_no_pidfd(self):
        def pidfds():
            return {fd for fd, target in open_fds().items() if "pidfd" in target}

        gc.collect()
        before = open_fds()
        # asyncio's watcher thread logs that the loop of the killed child
        # is closed.
        logger = logging.getLogger("asyncio")
        self.addCleanup(logger.setLevel, logger.level)
        logger.setLevel(logging.ERROR)
        with threaded_child_watcher():
            loop = self.new_loop_factory()
            try:
                async def spawn():
                    return await loop.subprocess_exec(SubprocessRecorder, *python(SLEEPER))
                transport, protocol = loop.run_until_complete(spawn())
                pid = transport.get_pid()
                loop.run_until_complete(asyncio.wait_for(
                    wait_until(lambda: b"ready" in protocol.output(1)), 5))
            finally:
                loop.close()
            self.assertEqual(pidfds(), {fd for fd in before if fd in pidfds()})
            # tapio killed and reaped the child at loop close; asyncio leaves
            # it running (its watcher thread holds the transport): end it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while pid in children() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertNotIn(pid, children())
            # The transports, collected, close their pipes (and warn).
            with warnings.catch_warnings(), \
                    unittest.mock.patch.object(sys, "unraisablehook", lambda u: None):
                warnings.simplefilter("ignore", ResourceWarning)
                del transport, protocol
                for _ in range(50):
                    gc.collect()
                    if open_fds() == before:
                        break
                    time.sleep(0.01)
        self.assertEqual(open_fds(), before)


class ReportingWatcher(getattr(asyncio, "AbstractChildWatcher", object)):
    """A user's own child watcher (Python < 3.14): it reaps each child given
    to it in a thread and reports a returncode of its own (42), so that a
    test can tell that the loop took the exit from it."""

    def __init__(self):
        self.pids = []
        self.threads = []

    def add_child_handler(self, pid, callback, *args):
        self.pids.append(pid)

        def wait():
            os.waitpid(pid, 0)
            callback(pid, 42, *args)
        thread = threading.Thread(target=wait, daemon=True)
        self.threads.append(thread)
        thread.start()

    def remove_child_handler(self, pid):
        return True

    def attach_loop(self, loop):
        pass

    def close(self):
        pass

    def is_active(self):
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@loop_tests(LOOPS)
class UserChildWatcherTests(SubprocessCases):

    @unittest.skipUnless(sys.version_info < (3, 14), "child watchers were removed in 3.14")
    def test_exit_comes_from_the_policys_watcher(self):
        watcher = ReportingWatcher()
        policy = asyncio.get_event_loop_policy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = policy.get_child_watcher()
            policy.set_child_watcher(watcher)
        try:
            async def test():
                transport, protocol = await self.spawn(*python(
                    "import sys; print('hi'); sys.exit(3)"), stdin=subprocess.DEVNULL)
                await self.finished(protocol)
                self.assertEqual(watcher.pids, [transport.get_pid()])
                self.assertEqual(transport.get_returncode(), 42)
                self.assertIn(("process_exited", 42), protocol.events)
                self.assertEqual(protocol.output(1), b"hi\n")
                proc = await asyncio.create_subprocess_exec(*python("pass"))
                self.assertEqual(await proc.wait(), 42)
            self.run_coro(test())
        finally:
            for thread in watcher.threads:
                thread.join(5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                policy.set_child_watcher(old)
        self.assertEqual(children(), [])


@loop_tests(("tapio",))
class PipeConnectFailureTests(SubprocessCases):
    """tapio only: on stock asyncio (3.11-3.13) this call hangs for ever,
    the very defect: after a failure to connect a pipe, asyncio's
    subprocess_exec kills the child and awaits connection_lost, which waits
    for the pipe that was never connected (base_subprocess._try_finish)."""

    def test_connecting_a_pipe_failing_raises_and_ends_the_child(self):
        # asyncio connects a child's pipes through connect_read_pipe (tapio
        # passes them through it too): EMFILE there fails the call; the
        # child is killed and reaped, its pipes closed.
        async def failing_connect_read_pipe(*args, **kwargs):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

        async def test():
            with threaded_child_watcher():
                gc.collect()
                before = open_fds()
                self.loop.connect_read_pipe = failing_connect_read_pipe
                try:
                    with self.assertRaises(OSError) as cm:
                        await self.loop.subprocess_exec(SubprocessRecorder, *python(SLEEPER))
                finally:
                    del self.loop.connect_read_pipe
                self.assertEqual(cm.exception.errno, errno.EMFILE)
                await wait_until(lambda: not children(), what="the child reaped")
                gc.collect()
                with contextlib.suppress(AssertionError):
                    await wait_until(lambda: open_fds() == before, timeout=2)
                self.assertEqual(open_fds(), before)
        self.run_coro(test())

