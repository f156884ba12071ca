"""Subprocesses: spawned by subprocess.Popen (so every Popen argument works
as in asyncio), the pipes as libtapio pipe transports (the output pipes
through a splice relay, below), the exit watched with a pidfd, and asyncio's
order of events (connection_made after the pipes are connected,
connection_lost once the child exited and every pipe closed)."""
import asyncio
import fcntl
import os
import socket
import subprocess
import sys
import termios
import warnings

from ._helpers import logger


# The child's output pipes get room for 1 MiB instead of the kernel's 64 KiB
# default: fewer wake-ups and larger reads for a child that writes a lot.
_PIPE_SIZE = 1 << 20


def _enlarge_pipe(pipe):
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (AttributeError, OSError):
        pass  # not Linux, or over the system's limit: keep the default


# ---- output relay ----------------------------------------------------------
#
# A pipe serialises its two copies: the writing child and the reading parent
# each copy under the pipe's one mutex, so a child writing large blocks and
# the parent reading them take turns (and the parent spins on the mutex).
# libuv gives the child a socketpair instead, whose two copies run in
# parallel, but then the child's stdout is no pipe: open("/dev/stdout") and
# `echo ... >/dev/stderr` fail with ENXIO (uvloop issues #505 and #532;
# asyncio went back from a socketpair to a pipe for stdin for that reason,
# bpo-46364, and CPython's test_devstdin_input checks it). Here the child
# keeps asyncio's pipe, and the parent moves what arrives in it into a
# socketpair with splice(2), which hands over the pipe's pages without
# copying them (a short hold of the mutex); the pipe transport reads the
# socket, so its copy out to Python runs in parallel with the child's next
# write.

_SPLICE_CHUNK = 1 << 20  # at most a full enlarged pipe per splice
# The socket's send buffer (Linux doubles it: 128 KiB per splice and read).
# Small, as the child's pipe is the buffer; 256 KiB measured no faster.
_RELAY_SNDBUF = 64 * 1024


def _probe_splice():
    """Whether splice(2) moves a pipe's data into an AF_UNIX socket here
    (Linux; not, say, a sandbox that refuses the call)."""
    if not hasattr(os, "splice"):
        return False
    r, w = os.pipe()
    a, b = socket.socketpair()
    try:
        os.write(w, b"x")
        return os.splice(r, b.fileno(), 1, flags=os.SPLICE_F_NONBLOCK) == 1 \
            and a.recv(1) == b"x"
    except OSError:
        return False
    finally:
        for f in (r, w):
            os.close(f)
        a.close()
        b.close()


_can_splice = None


class _Relay:
    """Moves a child's output pipe into a socketpair; to connect_read_pipe
    it is the pipe, a file object over the socket's reading end. The
    transport closes it at its end as it would close the pipe: the pipe
    closes then, so the child's next write fails with EPIPE, as in asyncio.

    One splice per read of the transport: after a splice the relay waits
    for the transport's read (consumed()) before the next. While the
    transport is paused with bytes to read, it stops watching the pipe,
    which then fills until the child blocks, as without the relay."""

    def __init__(self, loop, pipe):
        self._loop = loop
        self._pipe = pipe
        self._pfd = pipe.fileno()
        self.protocol = None  # the _PipeProtocol, whose .pipe is the transport
        self._unread = False  # spliced bytes the transport has not read yet
        self._watching = False
        reader, writer = socket.socketpair()
        with reader, writer:  # closed if this fails; the relay owns the fds
            writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _RELAY_SNDBUF)
            writer.setblocking(False)
            os.set_blocking(self._pfd, False)
            self._rfd, self._wfd = reader.detach(), writer.detach()
        try:
            self._watch(True)
        except BaseException:
            self.close()
            raise

    def fileno(self):
        return self._rfd

    def _watch(self, on):
        if on and not self._watching and self._wfd >= 0:
            self._loop._add_reader(self._pfd, self._move)
            self._watching = True
        elif not on and self._watching:
            self._watching = False
            self._loop._remove_reader(self._pfd)

    def consumed(self):
        """The transport read from the socket."""
        self._unread = False
        self._watch(True)

    def _move(self):
        if self._unread:
            # The transport reads them this round (and its consumed() lets
            # the next splice in) unless it is paused or not yet connected.
            transport = self.protocol.pipe if self.protocol is not None else None
            if transport is None or not transport.is_reading():
                self._watch(False)  # consumed() follows its next read
            return
        try:
            moved = os.splice(self._pfd, self._wfd, _SPLICE_CHUNK,
                              flags=os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            # The pipe was empty after all, or the transport's last read
            # left bytes in a full socket.
            self._unread = self._socket_holds_bytes()
            return
        except OSError:  # the reading end is gone (EPIPE): close() follows
            moved = 0
        if moved:
            self._unread = True
        else:  # EOF: every copy of the pipe's write end closed
            self._watch(False)
            self._close_socket()  # the transport reads the rest, then EOF

    def _socket_holds_bytes(self):
        buf = bytearray(4)
        fcntl.ioctl(self._rfd, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder) > 0

    def _close_socket(self, reading_end=False):
        for name in ("_wfd", "_rfd") if reading_end else ("_wfd",):
            fd = getattr(self, name, -1)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    def close(self):
        self._watch(False)
        self._close_socket(reading_end=True)
        self._pipe.close()

    def __del__(self):
        # Left open when the loop closed under its transport: the pipe's
        # file object warns about that (as in asyncio), the socket goes quietly.
        self._close_socket(reading_end=True)


async def _connect_output(loop, protocol_factory, pipe):
    """connect_read_pipe for a child's stdout or stderr, through a relay
    where splice(2) works."""
    global _can_splice
    if _can_splice is None:
        _can_splice = _probe_splice()
    if not _can_splice:
        return await loop.connect_read_pipe(protocol_factory, pipe)
    relay = _Relay(loop, pipe)

    def relayed_protocol():
        relay.protocol = protocol_factory()
        relay.protocol.relay = relay
        return relay.protocol

    try:
        # Through connect_read_pipe, as asyncio connects every pipe.
        transport, protocol = await loop.connect_read_pipe(relayed_protocol, relay)
    except BaseException:
        relay.close()
        raise
    extra = getattr(transport, "_extra", None)
    if isinstance(extra, dict):
        extra["pipe"] = pipe  # asyncio's extra info: the child's pipe
    return transport, protocol


class _PipeProtocol(asyncio.Protocol):
    """Forwards one pipe's events to the subprocess transport."""

    relay = None  # the _Relay in front of a child's output pipe, if any

    def __init__(self, proc, fd):
        self.proc = proc
        self.fd = fd
        self.pipe = None
        self.disconnected = False

    def connection_made(self, transport):
        self.pipe = transport

    def data_received(self, data):
        if self.relay is not None:
            self.relay.consumed()
        # Through _call: output that arrives before connection_made waits.
        self.proc._call(self.proc._protocol.pipe_data_received, self.fd, data)

    def connection_lost(self, exc):
        self.disconnected = True
        self.proc._pipe_connection_lost(self.fd, exc)

    def pause_writing(self):
        self.proc._protocol.pause_writing()

    def resume_writing(self):
        self.proc._protocol.resume_writing()


class SubprocessTransport(asyncio.SubprocessTransport):
    def __init__(self, loop, protocol, args, shell, stdin, stdout, stderr, bufsize,
                 extra=None, **kwargs):
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._closed = False
        self._pipes = {}
        self._pending_calls = []
        self._returncode = None
        self._exit_waiters = []
        self._finished = False
        self._pidfd = None
        self._proc = None
        self._pid = None
        try:
            self._proc = subprocess.Popen(args, shell=shell, stdin=stdin, stdout=stdout,
                                          stderr=stderr, universal_newlines=False,
                                          bufsize=bufsize, **kwargs)
        except BaseException:
            self.close()  # nothing started: no warning later either
            raise
        self._pid = self._proc.pid
        self._extra["subprocess"] = self._proc
        for fd, pipe in enumerate((self._proc.stdin, self._proc.stdout, self._proc.stderr)):
            if pipe is not None:
                self._pipes[fd] = None  # connected by _connect_pipes
        if loop.get_debug():
            logger.debug("process %r created: pid %s", args, self._pid)

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        return "<{}>".format(" ".join(info))

    async def _connect_pipes(self, waiter):
        try:
            proc = self._proc
            for fd, pipe in ((0, proc.stdin), (1, proc.stdout), (2, proc.stderr)):
                if pipe is None:
                    continue
                factory = lambda fd=fd: _PipeProtocol(self, fd)  # noqa: E731
                if fd == 0:
                    _, self._pipes[fd] = await self._loop.connect_write_pipe(factory, pipe)
                else:
                    _enlarge_pipe(pipe)
                    _, self._pipes[fd] = await _connect_output(self._loop, factory, pipe)
            self._loop.call_soon(self._protocol.connection_made, self)
            for callback, data in self._pending_calls:
                self._loop.call_soon(callback, *data)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    # ---- the exit -----------------------------------------------------------

    def _watch_exit(self):
        """A pidfd becomes readable when the child exits."""
        self._pidfd = os.pidfd_open(self._pid)
        self._loop._add_reader(self._pidfd, self._child_ready)

    def _child_ready(self):
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self._pid, None  # reaped elsewhere: asyncio says 255
        if pid == 0:
            return
        self._stop_watching()
        returncode = 255 if status is None else os.waitstatus_to_exitcode(status)
        self._process_exited(returncode)

    def _stop_watching(self):
        if self._pidfd is not None:
            self._loop._remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _process_exited(self, returncode):
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        if self._proc.returncode is None:
            self._proc.returncode = returncode  # so Popen does not wait again
        self._call(self._protocol.process_exited)
        self._try_finish()

    async def _wait(self):
        """Wait for the exit (asyncio.subprocess.Process.wait uses it)."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    # ---- pipes and the end --------------------------------------------------

    def _call(self, callback, *data):
        if self._pending_calls is not None:
            self._pending_calls.append((callback, data))
        else:
            self._loop.call_soon(callback, *data)

    def _pipe_connection_lost(self, fd, exc):
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _try_finish(self):
        if self._finished or self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            # wait() returns once everything ended, as in this asyncio.
            for waiter in self._exit_waiters:
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)
            self._exit_waiters = None
            self._loop = None
            self._proc = None
            self._protocol = None

    # ---- SubprocessTransport ------------------------------------------------

    def _check_proc(self):
        if self._proc is None:
            raise ProcessLookupError()

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._returncode

    def get_pipe_transport(self, fd):
        if fd in self._pipes and self._pipes[fd] is not None:
            return self._pipes[fd].pipe
        return None

    def send_signal(self, signal):
        self._check_proc()
        if self._returncode is None:  # a reaped pid may be someone else's
            self._proc.send_signal(signal)

    def terminate(self):
        self._check_proc()
        if self._returncode is None:
            self._proc.terminate()

    def kill(self):
        self._check_proc()
        if self._returncode is None:
            self._proc.kill()

    def is_closing(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is not None and proto.pipe is not None:
                proto.pipe.close()
        if self._proc is not None and self._returncode is None and self._proc.poll() is None:
            if self._loop is not None and self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()


def _check_popen_arguments(universal_newlines, bufsize, text, encoding, errors):
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


class SubprocessMixin:
    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout,
                                         stderr, bufsize, extra=None, **kwargs):
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout,
                                        stderr, bufsize, extra=extra, **kwargs)
        waiter = self.create_future()
        try:
            transport._watch_exit()
            # As a task, like asyncio: the waiter then resolves only after
            # the queued connection_made has run.
            self.create_task(transport._connect_pipes(waiter))
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=False,
                              shell=False, bufsize=0, encoding=None, errors=None,
                              text=None, **kwargs):
        if shell:
            raise ValueError("shell must be False")
        _check_popen_arguments(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, (program,) + args, False, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0,
                               encoding=None, errors=None, text=None, **kwargs):
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if not shell:
            raise ValueError("shell must be True")
        _check_popen_arguments(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol
