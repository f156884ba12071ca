"""Pipe transports: loop.connect_read_pipe and loop.connect_write_pipe over
pipes, socket pair ends, FIFOs and PTYs; EOF and the reader going away,
flow control on the write side, pause/resume on the read side, close() and
abort(), the refusal of regular files, and the pipe object being closed
when the transport ends (as asyncio's unix_events pipe transports do)."""

import array
import asyncio
import errno
import fcntl
import gc
import os
import shutil
import socket
import sys
import tempfile
import termios
import tty
import warnings
from asyncio import unix_events

from .loops import loop_tests
from .support import RecordingProtocol, wait_until

LOOPS = ("asyncio", "tapio")

# asyncio's messages for a regular file (read and write pipes differ).
READ_PIPE_REFUSED = "Pipe transport is for pipes/sockets only."
WRITE_PIPE_REFUSED = "Pipe transport is only for pipes, sockets and character devices"

# is_reading() on asyncio's read pipe transport came in 3.11.x (not 3.11.2);
# tapio's read pipe follows the running asyncio.
ASYNCIO_READ_PIPE_HAS_IS_READING = "is_reading" in vars(unix_events._UnixReadPipeTransport)

MiB = 1024 * 1024


def bytes_in_pipe(fd):
    """How many bytes wait to be read on the read end fd (FIONREAD)."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)


def pattern(size):
    """size bytes that are not all alike, so reordering would show."""
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


class PipeCases:
    """Helpers (a mixin for LoopTestCase)."""

    def temp_dir(self):
        path = tempfile.mkdtemp(prefix="tapio-test-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def pipe(self):
        """(read file, write file): an os.pipe() as unbuffered file objects,
        closed when the test ends unless a transport closed them first."""
        r, w = os.pipe()
        rfile = open(r, "rb", buffering=0)
        wfile = open(w, "wb", buffering=0)
        self.addCleanup(rfile.close)
        self.addCleanup(wfile.close)
        return rfile, wfile

    async def read_pipe(self, pipe, protocol_class=RecordingProtocol):
        transport, protocol = await self.loop.connect_read_pipe(protocol_class, pipe)
        self.addCleanup(self._end, transport, protocol)
        return transport, protocol

    async def write_pipe(self, pipe, protocol_class=RecordingProtocol):
        transport, protocol = await self.loop.connect_write_pipe(protocol_class, pipe)
        self.addCleanup(self._end, transport, protocol)
        return transport, protocol

    def _end(self, transport, protocol):
        """End what the test left open and let connection_lost run."""
        if self.loop.is_closed() or protocol.lost.done():
            return
        if hasattr(transport, "abort"):
            transport.abort()
        else:
            transport.close()
        self.loop.run_until_complete(asyncio.wait_for(asyncio.shield(protocol.lost), 5))

    async def read_fd(self, fd, nbytes, timeout=5.0):
        """Read nbytes from the non-blocking fd while the loop runs."""
        data = bytearray()

        def ready():
            while len(data) < nbytes:
                try:
                    chunk = os.read(fd, nbytes - len(data))
                except BlockingIOError:
                    return False
                if not chunk:
                    return True  # EOF
                data.extend(chunk)
            return True

        await wait_until(ready, timeout, f"{nbytes} bytes on fd {fd} (have {len(data)})")
        return bytes(data)

    async def read_to_eof(self, fd, timeout=5.0):
        """Everything readable from the non-blocking fd up to EOF."""
        data = bytearray()
        eof = False

        def ready():
            nonlocal eof
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    return False
                if not chunk:
                    eof = True
                    return True
                data.extend(chunk)

        await wait_until(ready, timeout, f"EOF on fd {fd} (have {len(data)} bytes)")
        return bytes(data)

    def fill_write_pipe(self, transport, total=MiB):
        """Write total bytes on a transport whose reader does not read:
        the pipe fills up and the rest is buffered. Returns the data."""
        data = pattern(total)
        transport.write(data)
        return data


@loop_tests(LOOPS)
class ReadPipeTests(PipeCases):

    def test_data_then_eof_received_then_connection_lost(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.read_pipe(rfile)
            self.assertEqual(protocol.events, ["connection_made"])
            self.assertIs(protocol.transport, transport)
            self.assertIs(transport.get_protocol(), protocol)
            self.assertFalse(transport.is_closing())

            os.write(wfile.fileno(), b"hello ")
            self.assertEqual(await protocol.received(6), b"hello ")
            os.write(wfile.fileno(), b"pipe")
            self.assertEqual(await protocol.received(10), b"hello pipe")
            wfile.close()

            self.assertIsNone(await protocol.lost)
            self.assertTrue(protocol.eof.done())
            self.assertEqual(protocol.events[0], "connection_made")
            self.assertEqual(set(protocol.events[1:-2]), {"data_received"})
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
            self.assertEqual(protocol.chunk_types, {bytes})
            self.assertTrue(transport.is_closing())
        self.run_coro(test())

    def test_large_data_arrives_in_order(self):
        async def test():
            rfile, wfile = self.pipe()
            _, protocol = await self.read_pipe(rfile)
            data = pattern(4 * MiB)
            os.set_blocking(wfile.fileno(), False)
            view = memoryview(data)

            def write_some():
                nonlocal view
                try:
                    view = view[os.write(wfile.fileno(), view):]
                except BlockingIOError:
                    pass
                if not view:
                    self.loop.remove_writer(wfile.fileno())
                    wfile.close()

            self.loop.add_writer(wfile.fileno(), write_some)
            self.assertIsNone(await protocol.lost)
            self.assertEqual(len(protocol.data), len(data))
            self.assertTrue(protocol.data == data, "the bytes differ")
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_extra_info_pipe_is_the_object_given(self):
        async def test():
            rfile, _ = self.pipe()
            transport, _ = await self.read_pipe(rfile)
            self.assertIs(transport.get_extra_info("pipe"), rfile)
            self.assertIsNone(transport.get_extra_info("no such key"))
            self.assertEqual(transport.get_extra_info("no such key", "default"), "default")
        self.run_coro(test())

    def test_transport_is_a_read_transport(self):
        async def test():
            rfile, _ = self.pipe()
            transport, _ = await self.read_pipe(rfile)
            self.assertIsInstance(transport, asyncio.BaseTransport)
            self.assertIsInstance(transport, asyncio.ReadTransport)
            # asyncio's read pipe is a ReadTransport only: no write side, and
            # no abort() (WriteTransport's).
            self.assertNotIsInstance(transport, asyncio.WriteTransport)
            for name in ("write", "writelines", "write_eof", "can_write_eof", "abort",
                         "get_write_buffer_size", "set_write_buffer_limits"):
                self.assertFalse(hasattr(transport, name), name)
        self.run_coro(test())

    def test_pause_reading_and_resume_reading(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.read_pipe(rfile)
            check_is_reading = ASYNCIO_READ_PIPE_HAS_IS_READING
            if check_is_reading:
                self.assertTrue(transport.is_reading())
            else:
                self.assertRaises(NotImplementedError, transport.is_reading)
            transport.pause_reading()
            transport.pause_reading()  # a second call changes nothing
            if check_is_reading:
                self.assertFalse(transport.is_reading())

            os.write(wfile.fileno(), b"while paused")
            await asyncio.sleep(0.1)
            self.assertEqual(protocol.data, b"")
            self.assertEqual(bytes_in_pipe(rfile.fileno()), len(b"while paused"))

            transport.resume_reading()
            transport.resume_reading()
            if check_is_reading:
                self.assertTrue(transport.is_reading())
            self.assertEqual(await protocol.received(12), b"while paused")

            # EOF is not seen while paused either.
            transport.pause_reading()
            wfile.close()
            await asyncio.sleep(0.1)
            self.assertFalse(protocol.eof.done())
            self.assertFalse(protocol.lost.done())
            transport.resume_reading()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_close_gives_connection_lost_once(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.read_pipe(rfile)
            transport.close()
            self.assertTrue(transport.is_closing())
            transport.close()
            self.assertIsNone(await protocol.lost)
            transport.close()
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
            # The read end is gone: the writer learns it.
            with self.assertRaises(BrokenPipeError):
                os.write(wfile.fileno(), b"x")
        self.run_coro(test())

    def test_close_discards_unread_data(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.read_pipe(rfile)
            transport.pause_reading()
            os.write(wfile.fileno(), b"never read")
            await asyncio.sleep(0.02)
            transport.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_pipe_object_is_closed_when_the_transport_ends(self):
        async def test():
            rfile, wfile = self.pipe()
            _, protocol = await self.read_pipe(rfile)
            self.assertFalse(rfile.closed)
            wfile.close()
            await protocol.lost
            self.assertTrue(rfile.closed)
        self.run_coro(test())

    def test_pipe_object_is_closed_after_close(self):
        async def test():
            rfile, _ = self.pipe()
            transport, protocol = await self.read_pipe(rfile)
            transport.close()
            await protocol.lost
            self.assertTrue(rfile.closed)
        self.run_coro(test())

    def test_regular_file_is_refused(self):
        async def test():
            path = os.path.join(self.temp_dir(), "regular")
            with open(path, "wb") as f:
                f.write(b"data")
            with open(path, "rb", buffering=0) as f:
                with self.assertRaises(ValueError) as caught:
                    await self.loop.connect_read_pipe(RecordingProtocol, f)
                self.assertEqual(str(caught.exception), READ_PIPE_REFUSED)
                self.assertFalse(f.closed)
                self.assertEqual(f.read(), b"data")
        self.run_coro(test())

    def test_socketpair_end_as_a_read_pipe(self):
        async def test():
            sock, peer = socket.socketpair()
            self.addCleanup(sock.close)
            self.addCleanup(peer.close)
            transport, protocol = await self.read_pipe(sock)
            self.assertIs(transport.get_extra_info("pipe"), sock)
            peer.sendall(b"over a socket")
            self.assertEqual(await protocol.received(13), b"over a socket")
            peer.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
            self.assertEqual(sock.fileno(), -1, "the socket is closed with the transport")
        self.run_coro(test())

    def test_fifo_as_a_read_pipe(self):
        async def test():
            path = os.path.join(self.temp_dir(), "fifo")
            os.mkfifo(path)
            rfile = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
            self.addCleanup(rfile.close)
            writer = os.open(path, os.O_WRONLY)
            self.addCleanup(lambda: os.close(writer) if writer_open else None)
            writer_open = True
            _, protocol = await self.read_pipe(rfile)
            os.write(writer, b"through the fifo")
            self.assertEqual(await protocol.received(16), b"through the fifo")
            os.close(writer)
            writer_open = False
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
            self.assertTrue(rfile.closed)
        self.run_coro(test())

    def test_pty_master_as_a_read_pipe(self):
        # CPython's test_events.test_read_pty_output: the master read as a
        # pipe, the slave written with os.write.
        async def test():
            master, slave = os.openpty()
            master_file = open(master, "rb", buffering=0)
            self.addCleanup(master_file.close)
            slave_open = True
            self.addCleanup(lambda: os.close(slave) if slave_open else None)
            transport, protocol = await self.read_pipe(master_file)
            self.assertEqual(protocol.events, ["connection_made"])
            os.write(slave, b"1")
            self.assertEqual(await protocol.received(1), b"1")
            os.write(slave, b"2345")
            self.assertEqual(await protocol.received(5), b"12345")
            self.assertEqual(protocol.events[0], "connection_made")
            self.assertNotIn("eof_received", protocol.events)
            self.assertNotIn("connection_lost", protocol.events)
            os.close(slave)
            slave_open = False
            transport.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertIsNotNone(transport.get_extra_info("pipe"))
        self.run_coro(test())

    def test_pty_master_read_ends_when_the_slave_closes(self):
        # Linux: reading a PTY master whose slave is closed fails with EIO;
        # asyncio takes that as the end (connection_lost with the OSError,
        # nothing reported to the exception handler).
        async def test():
            master, slave = os.openpty()
            master_file = open(master, "rb", buffering=0)
            self.addCleanup(master_file.close)
            _, protocol = await self.read_pipe(master_file)
            os.write(slave, b"last words")
            self.assertEqual(await protocol.received(10), b"last words")
            os.close(slave)
            exc = await protocol.lost
            self.assertIsInstance(exc, OSError)
            self.assertEqual(exc.errno, errno.EIO)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertNotIn("eof_received", protocol.events)
            self.assertTrue(master_file.closed)
        self.run_coro(test())

    def test_pty_slave_in_raw_mode_as_a_read_pipe(self):
        async def test():
            master, slave = os.openpty()
            self.addCleanup(os.close, master)
            tty.setraw(slave)
            slave_file = open(slave, "rb", buffering=0)
            self.addCleanup(slave_file.close)
            _, protocol = await self.read_pipe(slave_file)
            os.write(master, b"typed")
            self.assertEqual(await protocol.received(5), b"typed")
        self.run_coro(test())


    def test_pipe_taken_away_after_the_loop_closed_goes_quietly(self):
        # CPython's test_unclosed_pipe_transport sets _pipe to None on
        # transports the closed loop left open: their finalizers then warn
        # nothing and close nothing (asyncio's __del__ checks for None).
        rfile, wfile = self.pipe()
        loop = self.new_loop_factory()
        try:
            read_transport, _ = loop.run_until_complete(
                loop.connect_read_pipe(asyncio.Protocol, rfile))
            write_transport, _ = loop.run_until_complete(
                loop.connect_write_pipe(asyncio.Protocol, wfile))
        finally:
            loop.close()
        self.assertIn("open", repr(read_transport))
        read_transport._pipe = None
        write_transport._pipe = None
        unraisable = []
        old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del read_transport, write_transport
                gc.collect()
        finally:
            sys.unraisablehook = old_hook
        self.assertEqual([str(u.exc_value) for u in unraisable], [])
        self.assertEqual([w for w in caught if w.category is ResourceWarning], [])


@loop_tests(LOOPS)
class WritePipeTests(PipeCases):

    def test_write_pipe_closed_by_the_user_spares_the_reused_fd(self):
        # The user closes the pipe object it gave and another pipe gets its
        # number. tapio writes on its own duplicate: the bytes go down the
        # pipe that was given. asyncio writes by the number, into the new
        # pipe.
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            other_r, other_w = os.pipe()
            self.addCleanup(os.close, other_r)
            self.addCleanup(os.close, other_w)
            os.set_blocking(other_r, False)
            fd = wfile.fileno()
            wfile.close()
            os.dup2(other_w, fd)  # the number now writes into the other pipe
            self.addCleanup(os.close, fd)
            transport.write(b"for the given pipe")
            if self.loop_name == "tapio":
                self.assertEqual(await self.read_fd(rfile.fileno(), 18), b"for the given pipe")
                with self.assertRaises(BlockingIOError):
                    os.read(other_r, 100)
            else:
                self.assertEqual(await self.read_fd(other_r, 18), b"for the given pipe")
            transport.close()
            await asyncio.wait_for(protocol.lost, 5)
            os.fstat(fd)  # not closed by the transport
        self.run_coro(test())

    def test_writes_reach_the_reader(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            self.assertEqual(protocol.events, ["connection_made"])
            self.assertIs(protocol.transport, transport)
            transport.write(b"bytes ")
            transport.write(bytearray(b"bytearray "))
            transport.write(memoryview(b"memoryview"))
            transport.write(b"")
            transport.writelines([b" and", b" lines"])
            expected = b"bytes bytearray memoryview and lines"
            self.assertEqual(await self.read_fd(rfile.fileno(), len(expected)), expected)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            self.assertEqual(protocol.events, ["connection_made"])
        self.run_coro(test())

    def test_memoryview_of_wide_items(self):
        """asyncio's write pipe counts os.write()'s bytes against len() of
        the view, in items: the 12 bytes of three ints go out, but it keeps
        an empty remainder, and its writer callback fails an assertion,
        reported, on each loop iteration until the pipe closes."""
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            log = []
            self.loop.set_exception_handler(
                lambda loop, context: log.append(type(context["exception"]).__name__[0]))
            view = memoryview(array.array("i", [1, 2, 3]))
            self.assertIsNone(transport.write(view))
            for i in range(3):
                await asyncio.sleep(0)
                log.append(f"|{i}")
            self.assertEqual(os.read(rfile.fileno(), 100), view.tobytes())
            transport.close()
            log.append(" closed ")
            self.assertIsNone(await protocol.lost)
            for i in range(3):
                await asyncio.sleep(0)
                log.append(f"|{i}")
            self.assertEqual("".join(log), "|0A|1A|2 closed AA|0|1|2")
        self.run_coro(test())

    def test_close_gives_eof_to_the_reader(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            transport.write(b"before close")
            transport.close()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
            self.assertEqual(await self.read_to_eof(rfile.fileno()), b"before close")
            self.assertTrue(wfile.closed)
        self.run_coro(test())

    def test_write_eof(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            self.assertTrue(transport.can_write_eof())
            transport.write(b"then eof")
            transport.write_eof()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await protocol.lost)
            self.assertEqual(await self.read_to_eof(rfile.fileno()), b"then eof")
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_reader_closing_gives_connection_lost(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.write_pipe(wfile)
            transport.write(b"read by nobody")
            await asyncio.sleep(0)  # sent by then; it fits in the pipe
            self.assertEqual(transport.get_write_buffer_size(), 0)
            rfile.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
            self.assertTrue(wfile.closed)
        self.run_coro(test())

    def test_reader_closing_with_data_buffered_is_a_broken_pipe(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.write_pipe(wfile)
            self.fill_write_pipe(transport)
            self.assertGreater(transport.get_write_buffer_size(), 0)
            rfile.close()
            exc = await protocol.lost
            self.assertIsInstance(exc, BrokenPipeError)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.write(b"after the end")  # ignored, as asyncio does
            await asyncio.sleep(0.02)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_coro(test())

    def test_flow_control(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
            self.assertEqual(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024))
            data = self.fill_write_pipe(transport, MiB)
            # Nobody reads: what is not in the pipe is in the buffer.
            self.assertEqual(protocol.events, ["connection_made", "pause_writing"])
            await asyncio.sleep(0.02)
            buffered = transport.get_write_buffer_size()
            self.assertGreater(buffered, 64 * 1024)
            self.assertEqual(buffered + bytes_in_pipe(rfile.fileno()), len(data))
            transport.write(b"!")  # more while paused: buffered, no second pause
            self.assertEqual(transport.get_write_buffer_size(), buffered + 1)
            self.assertEqual(protocol.events, ["connection_made", "pause_writing"])

            received = await self.read_fd(rfile.fileno(), len(data) + 1)
            self.assertTrue(received == data + b"!", "the bytes differ")
            await wait_until(lambda: "resume_writing" in protocol.events,
                             what="resume_writing")
            self.assertEqual(protocol.events,
                             ["connection_made", "pause_writing", "resume_writing"])
            self.assertEqual(transport.get_write_buffer_size(), 0)
        self.run_coro(test())

    def test_no_pause_below_the_high_water_mark(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.write_pipe(wfile)
            transport.set_write_buffer_limits(high=4 * MiB)
            self.fill_write_pipe(transport, MiB)
            self.assertGreater(transport.get_write_buffer_size(), 0)
            await asyncio.sleep(0.02)
            self.assertEqual(protocol.events, ["connection_made"])
        self.run_coro(test())

    def test_close_waits_for_the_buffer_to_drain(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            data = self.fill_write_pipe(transport, MiB)
            transport.close()
            self.assertTrue(transport.is_closing())
            await asyncio.sleep(0.05)
            self.assertFalse(protocol.lost.done(), "closed with data still buffered")
            self.assertFalse(wfile.closed)
            received = await self.read_to_eof(rfile.fileno())
            self.assertTrue(received == data, f"{len(received)} of {len(data)} bytes")
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertTrue(wfile.closed)
        self.run_coro(test())

    def test_abort_discards_the_buffer(self):
        async def test():
            rfile, wfile = self.pipe()
            os.set_blocking(rfile.fileno(), False)
            transport, protocol = await self.write_pipe(wfile)
            self.fill_write_pipe(transport, MiB)
            in_pipe = bytes_in_pipe(rfile.fileno())
            transport.abort()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await protocol.lost)
            self.assertEqual(transport.get_write_buffer_size(), 0)
            self.assertEqual(len(await self.read_to_eof(rfile.fileno())), in_pipe)
            transport.close()  # (asyncio's abort() after the end fails)
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertTrue(wfile.closed)
        self.run_coro(test())

    def test_close_then_abort_gives_connection_lost_once(self):
        async def test():
            rfile, wfile = self.pipe()
            transport, protocol = await self.write_pipe(wfile)
            self.fill_write_pipe(transport, MiB)
            transport.close()
            transport.close()
            transport.abort()
            self.assertIsNone(await protocol.lost)
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_coro(test())

    def test_extra_info_pipe_is_the_object_given(self):
        async def test():
            _, wfile = self.pipe()
            transport, _ = await self.write_pipe(wfile)
            self.assertIs(transport.get_extra_info("pipe"), wfile)
        self.run_coro(test())

    def test_transport_is_a_write_transport(self):
        async def test():
            _, wfile = self.pipe()
            transport, _ = await self.write_pipe(wfile)
            self.assertIsInstance(transport, asyncio.BaseTransport)
            self.assertIsInstance(transport, asyncio.WriteTransport)
            # asyncio's write pipe is an asyncio.Transport that implements no
            # reading: ReadTransport's methods raise NotImplementedError.
            self.assertIsInstance(transport, asyncio.Transport)
            for name in ("pause_reading", "resume_reading", "is_reading"):
                self.assertRaises(NotImplementedError, getattr(transport, name))
        self.run_coro(test())

    def test_abort_once_the_end_is_due_runs_the_end_twice(self):
        # asyncio's write pipe schedules its end again; that second run fails
        # (AttributeError) and the loop's exception handler hears of it.
        async def test():
            _, wfile = self.pipe()
            transport, protocol = await self.write_pipe(wfile)
            transport.abort()
            transport.abort()
            self.assertIsNone(await protocol.lost)
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_coro(test())
        [context] = self.loop_errors
        self.assertIsInstance(context["exception"], AttributeError)
        self.loop_errors.clear()

    def test_regular_file_is_refused(self):
        async def test():
            path = os.path.join(self.temp_dir(), "regular")
            with open(path, "wb", buffering=0) as f:
                with self.assertRaises(ValueError) as caught:
                    await self.loop.connect_write_pipe(RecordingProtocol, f)
                self.assertEqual(str(caught.exception), WRITE_PIPE_REFUSED)
                self.assertFalse(f.closed)
        self.run_coro(test())

    def test_socketpair_end_as_a_write_pipe(self):
        async def test():
            sock, peer = socket.socketpair()
            self.addCleanup(sock.close)
            self.addCleanup(peer.close)
            peer.setblocking(False)
            transport, protocol = await self.write_pipe(sock)
            self.assertIs(transport.get_extra_info("pipe"), sock)
            transport.write(b"to the peer")
            self.assertEqual(await self.read_fd(peer.fileno(), 11), b"to the peer")
            peer.close()  # the reader goes away
            self.assertIsNone(await protocol.lost)
            self.assertEqual(sock.fileno(), -1, "the socket is closed with the transport")
        self.run_coro(test())

    def test_fifo_as_a_write_pipe(self):
        async def test():
            path = os.path.join(self.temp_dir(), "fifo")
            os.mkfifo(path)
            rfile = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
            self.addCleanup(rfile.close)
            wfile = open(os.open(path, os.O_WRONLY | os.O_NONBLOCK), "wb", buffering=0)
            self.addCleanup(wfile.close)
            transport, protocol = await self.write_pipe(wfile)
            transport.write(b"into the fifo")
            self.assertEqual(await self.read_fd(rfile.fileno(), 13), b"into the fifo")
            rfile.close()
            self.assertIsNone(await protocol.lost)
            self.assertTrue(wfile.closed)
        self.run_coro(test())

    def test_fifo_both_ends_on_the_loop(self):
        async def test():
            path = os.path.join(self.temp_dir(), "fifo")
            os.mkfifo(path)
            rfile = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
            self.addCleanup(rfile.close)
            wfile = open(os.open(path, os.O_WRONLY | os.O_NONBLOCK), "wb", buffering=0)
            self.addCleanup(wfile.close)
            _, reader = await self.read_pipe(rfile)
            writer_transport, writer = await self.write_pipe(wfile)
            data = pattern(MiB)
            writer_transport.write(data)
            writer_transport.close()
            self.assertIsNone(await reader.lost)
            self.assertIsNone(await writer.lost)
            self.assertTrue(reader.data == data, f"{len(reader.data)} of {len(data)} bytes")
            self.assertEqual(reader.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_pty_slave_as_a_write_pipe(self):
        # CPython's test_events.test_write_pty: the slave written as a pipe,
        # the master read with os.read.
        async def test():
            master, slave = os.openpty()
            self.addCleanup(os.close, master)
            slave_file = open(slave, "wb", buffering=0)
            self.addCleanup(slave_file.close)
            os.set_blocking(master, False)
            transport, protocol = await self.write_pipe(slave_file)
            transport.write(b"1")
            self.assertEqual(await self.read_fd(master, 1), b"1")
            transport.write(b"2345")
            self.assertEqual(await self.read_fd(master, 4), b"2345")
            self.assertEqual(protocol.events, ["connection_made"])
            self.assertIs(transport.get_extra_info("pipe"), slave_file)
            transport.close()
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
            self.assertTrue(slave_file.closed)
        self.run_coro(test())

    def test_pty_input_does_not_end_a_write_pipe(self):
        # A terminal's slave is readable when input arrives; asyncio does not
        # watch a character device for the reader going away.
        async def test():
            master, slave = os.openpty()
            self.addCleanup(os.close, master)
            tty.setraw(slave)
            slave_file = open(slave, "wb", buffering=0)
            self.addCleanup(slave_file.close)
            os.set_blocking(master, False)
            transport, protocol = await self.write_pipe(slave_file)
            os.write(master, b"keyboard input")
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.events, ["connection_made"])
            transport.write(b"still writing")
            self.assertEqual(await self.read_fd(master, 13), b"still writing")
        self.run_coro(test())


@loop_tests(LOOPS)
class BidirectionalPipeTests(PipeCases):

    def test_bidirectional_pty(self):
        # CPython's test_events.test_bidirectional_pty: one raw slave, read
        # and written through two pipe transports, the master on the other side.
        async def test():
            master, read_slave = os.openpty()
            self.addCleanup(os.close, master)
            write_slave = os.dup(read_slave)
            tty.setraw(read_slave)
            slave_read = open(read_slave, "rb", buffering=0)
            self.addCleanup(slave_read.close)
            slave_write = open(write_slave, "wb", buffering=0)
            self.addCleanup(slave_write.close)
            os.set_blocking(master, False)
            _, reader = await self.read_pipe(slave_read)
            writer_transport, _ = await self.write_pipe(slave_write)

            writer_transport.write(b"1")
            self.assertEqual(await self.read_fd(master, 1), b"1")
            os.write(master, b"a")
            self.assertEqual(await reader.received(1), b"a")
            writer_transport.write(b"2345")
            self.assertEqual(await self.read_fd(master, 4), b"2345")
            os.write(master, b"bcde")
            self.assertEqual(await reader.received(5), b"abcde")
        self.run_coro(test())
