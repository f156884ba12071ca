"""Subprocesses: spawned by subprocess.Popen (so every Popen argument works
as in asyncio), then handed to libtapio (tapio_process_adopt through
_tapio.ProcessCore), which connects the pipes, watches for the exit, reaps
the child and decides asyncio's order of events. This module keeps asyncio's
argument checks, the child watchers of Python < 3.14, and the
SubprocessTransport API as forwards to the C object."""
import asyncio
import signal as signal_module
import subprocess
import sys
import warnings

from ._helpers import logger
from ._pipes import ChildPipe


class _PipeProtocol(asyncio.BaseProtocol):
    """A child pipe's transport's protocol, as asyncio's SubprocessPipeProto.
    libtapio gives the pipe's events to the process's protocol itself; a
    protocol set in this one's place gets them instead, and the process's
    protocol then never gets connection_lost, as in asyncio."""

    def __init__(self, fd):
        self.fd = fd

    def __repr__(self):
        return f"<{type(self).__name__} fd={self.fd}>"


class _ReadPipeProtocol(_PipeProtocol, asyncio.Protocol):
    pass


class SubprocessTransport(asyncio.SubprocessTransport):
    def __init__(self, loop, popen_args, extra=None, **popen_kwargs):
        super().__init__(extra)
        self._loop = loop
        self._closed = False
        self._core = None
        self._exit_waiters = []
        self._proc = None
        self._pid = None
        try:
            self._proc = subprocess.Popen(popen_args, universal_newlines=False,
                                          **popen_kwargs)
        except BaseException:
            self._closed = True  # nothing started: no warning later either
            raise
        self._pid = self._proc.pid
        self._extra["subprocess"] = self._proc

    def _adopt(self, protocol, caller_reaps):
        """Hand the child to libtapio; on failure it is killed (and reaped
        unless caller_reaps) and the error raised."""
        proc = self._proc
        try:
            self._core = self._loop._adopt_process(
                self, protocol, pid=self._pid, caller_reaps=caller_reaps,
                pipes=(proc.stdin, proc.stdout, proc.stderr),
                pipe_protocols=(_PipeProtocol(0), _ReadPipeProtocol(1), _ReadPipeProtocol(2)))
        except BaseException:
            self._closed = True
            self._close_files()
            if caller_reaps:
                proc.wait()  # killed by libtapio; no watcher was given it
            else:
                proc.returncode = -signal_module.SIGKILL  # and reaped
            raise
        if self._loop.get_debug():
            logger.debug("process %r created: pid %s", proc.args, self._pid)

    async def _connect_pipes(self):
        """libtapio connected the pipes already; pass them through the
        loop's connect_*_pipe as asyncio does (nothing suspends here)."""
        for fd in (0, 1, 2):
            pipe = self._core.pipe(fd)
            if pipe is not None:
                connect = (self._loop.connect_write_pipe if fd == 0
                           else self._loop.connect_read_pipe)
                await connect(_no_protocol, ChildPipe(pipe))

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        returncode = self.get_returncode()
        if returncode is not None:
            info.append(f"returncode={returncode}")
        elif self._pid is not None:
            info.append("running")
        return "<{}>".format(" ".join(info))

    # ---- libtapio's events (ProcessCore calls these) ------------------------

    def _on_exit(self, returncode):
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        if self._proc.returncode is None:
            self._proc.returncode = returncode  # so Popen does not wait again

    def _on_lost(self):
        # wait() returns once everything ended, as in asyncio.
        returncode = self.get_returncode()
        for waiter in self._exit_waiters:
            if not waiter.cancelled():
                waiter.set_result(returncode)
        self._exit_waiters = None
        self._close_files()

    def _close_files(self):
        """The Popen's pipe files (libtapio worked on duplicates)."""
        for f in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if f is not None:
                f.close()

    async def _wait(self):
        """Wait for the exit (asyncio.subprocess.Process.wait uses it)."""
        returncode = self.get_returncode()
        if returncode is not None or self._exit_waiters is None:
            return returncode
        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    # ---- SubprocessTransport ------------------------------------------------

    def get_protocol(self):
        return self._core.protocol if self._core is not None else None

    def set_protocol(self, protocol):
        self._core.protocol = protocol

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._core.returncode if self._core is not None else None

    def get_pipe_transport(self, fd):
        # asyncio looks fd up in a dict: anything but 0, 1 or 2 finds nothing.
        if self._core is None or fd not in (0, 1, 2):
            return None
        return self._core.pipe(fd)

    def send_signal(self, sig):
        if self._core is None:
            raise ProcessLookupError()
        self._core.send_signal(sig)

    def terminate(self):
        self.send_signal(signal_module.SIGTERM)

    def kill(self):
        self.send_signal(signal_module.SIGKILL)

    def is_closing(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        self._closed = True
        proc, core = self._proc, self._core
        returncode = self.get_returncode()
        if returncode is None and proc.returncode is None:
            if self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                proc.kill()  # through the Popen, as asyncio (users patch it)
            except ProcessLookupError:
                pass
        elif proc.returncode is None:
            proc.returncode = returncode  # the loop closed before the end
        if core is not None:
            core.close()  # the pipes close; libtapio kills a child still running

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()


def _no_protocol():
    return None


def _resolve(waiter):
    if not waiter.done():
        waiter.set_result(None)


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

# Watchers that wait for the pids registered with them only: libtapio
# watches and reaps its children beside them. Any other kind
# (FastChildWatcher reaps every child of the process, or the user's own) is
# given the child and reports its exit, as in asyncio; libtapio then neither
# waits for it nor reaps it (tapio_process_adopt's caller_reaps) and learns
# the exit through ProcessCore.set_exited (tapio_process_set_exited), so the
# order of events stays libtapio's.
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
        popen_kwargs = dict(shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                            bufsize=bufsize, **kwargs)
        watcher = _policy_child_watcher() if _HAS_WATCHERS else None
        if watcher is None:
            return await self._spawn_subprocess(protocol, args, extra, None,
                                                popen_kwargs)
        with watcher as entered:
            if sys.version_info < (3, 12):
                watcher = entered  # 3.11 uses what __enter__ returns
            if not watcher.is_active():
                # Before the child exists, as asyncio checks.
                raise RuntimeError("asyncio.get_child_watcher() is not activated, "
                                   "subprocess support is not installed.")
            if type(watcher) in _OWN_PID_WATCHERS:
                watcher = None
            return await self._spawn_subprocess(protocol, args, extra, watcher,
                                                popen_kwargs)

    def _child_watcher_callback(self, pid, returncode, core):
        self.call_soon_threadsafe(core.set_exited, returncode)

    async def _spawn_subprocess(self, protocol, args, extra, watcher, popen_kwargs):
        transport = SubprocessTransport(self, args, extra=extra, **popen_kwargs)
        transport._adopt(protocol, caller_reaps=watcher is not None)
        if watcher is not None:
            try:
                watcher.add_child_handler(transport.get_pid(),
                                          self._child_watcher_callback, transport._core)
            except BaseException:
                # Nobody watches it: end it here and tell libtapio.
                transport.close()
                transport._core.set_exited(transport._proc.wait())
                await transport._wait()
                raise
        # libtapio queued connection_made at adoption: this runs after it.
        waiter = self.create_future()
        self.call_soon(_resolve, waiter)
        try:
            await transport._connect_pipes()
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
