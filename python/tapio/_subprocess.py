"""Subprocesses: spawned by subprocess.Popen (so every Popen argument works
as in asyncio), the pipes as libtapio pipe transports (the output pipes
read through libtapio's splice relay), the exit watched with a pidfd, and asyncio's
order of events (connection_made after the pipes are connected,
connection_lost once the child exited and every pipe closed)."""
import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import warnings

from ._helpers import logger
from ._pipes import RelayedPipe


# The child's output pipes get room for 1 MiB instead of the kernel's 64 KiB
# default: fewer wake-ups and larger reads for a child that writes a lot.
_PIPE_SIZE = 1 << 20


# Whether the child's output pipes are read through libtapio's relay (the
# benchmark compares both).
_relay_output = True


def _enlarge_pipe(pipe):
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (AttributeError, OSError):
        pass  # not Linux, or over the system's limit: keep the default


class _PipeProtocol(asyncio.Protocol):
    """Forwards one pipe's events to the subprocess transport."""

    def __init__(self, proc, fd):
        self.proc = proc
        self.fd = fd
        self.pipe = None
        self.disconnected = False

    def connection_made(self, transport):
        self.pipe = transport

    def data_received(self, data):
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
                    # Through connect_read_pipe, as asyncio connects every
                    # pipe; the child keeps its pipe (so /dev/stdout works
                    # in it) and the loop reads it through a relay, so that
                    # the child's copy in and ours out do not take turns.
                    _, self._pipes[fd] = await self._loop.connect_read_pipe(
                        factory, RelayedPipe(pipe) if _relay_output else pipe)
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

    def send_signal(self, sig):
        """Signal the child without reaping it (Popen.send_signal polls, and
        so may take the exit status from the loop's watcher, as asyncio
        avoids): through the pidfd while we hold one, else by pid."""
        self._check_proc()
        if self._returncode is not None:  # a reaped pid may be someone else's
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self._pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

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


# Child watchers: asyncio before 3.14 hands every child to the policy's
# watcher (asyncio.get_child_watcher()), refuses to spawn while it is not
# active, and learns the exit from it.
_HAS_WATCHERS = sys.version_info < (3, 14)

# Watchers that wait for the pids registered with them only: tapio's pidfd
# watches its children beside them. Any other kind (FastChildWatcher reaps
# every child of the process, or the user's own) is given the child and
# reports its exit, as in asyncio.
_OWN_PID_WATCHERS = tuple(
    getattr(asyncio, name) for name in (
        "ThreadedChildWatcher", "PidfdChildWatcher", "SafeChildWatcher",
        "MultiLoopChildWatcher") if hasattr(asyncio, name))


def _policy_child_watcher():
    """The policy's child watcher, or None for a policy without any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop_policy().get_child_watcher()
        except (AttributeError, NotImplementedError):
            return None


class SubprocessMixin:
    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout,
                                         stderr, bufsize, extra=None, **kwargs):
        watcher = _policy_child_watcher() if _HAS_WATCHERS else None
        if watcher is None:
            return await self._spawn_subprocess(protocol, args, shell, stdin, stdout,
                                                stderr, bufsize, extra, None, **kwargs)
        with watcher as entered:
            if sys.version_info < (3, 12):
                watcher = entered  # 3.11 uses what __enter__ returns
            if not watcher.is_active():
                # Before the child exists, as asyncio checks.
                raise RuntimeError("asyncio.get_child_watcher() is not activated, "
                                   "subprocess support is not installed.")
            if type(watcher) in _OWN_PID_WATCHERS:
                watcher = None
            return await self._spawn_subprocess(protocol, args, shell, stdin, stdout,
                                                stderr, bufsize, extra, watcher, **kwargs)

    def _child_watcher_callback(self, pid, returncode, transport):
        self.call_soon_threadsafe(transport._process_exited, returncode)

    async def _spawn_subprocess(self, protocol, args, shell, stdin, stdout, stderr,
                                bufsize, extra, watcher, **kwargs):
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout,
                                        stderr, bufsize, extra=extra, **kwargs)
        waiter = self.create_future()
        try:
            if watcher is None:
                transport._watch_exit()
            else:
                watcher.add_child_handler(transport.get_pid(),
                                          self._child_watcher_callback, transport)
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
