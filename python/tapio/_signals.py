"""Signal handlers, the way asyncio's Unix loop does them: Python's own
handler writes the signal number to a socket the loop watches
(signal.set_wakeup_fd), and the loop runs the user's callback as an
ordinary callback."""
import asyncio
import errno
import signal
import socket

from ._helpers import logger


def _noop_handler(signum, frame):
    """Installed for handled signals: the wakeup fd does the real work."""


def _check_signal(sig):
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


class SignalsMixin:
    def _init_signals(self):
        self._signal_handlers = {}
        self._signal_rsock = self._signal_wsock = None

    def _open_signal_socket(self):
        if self._signal_rsock is not None:
            return
        self._signal_rsock, self._signal_wsock = socket.socketpair()
        self._signal_rsock.setblocking(False)
        self._signal_wsock.setblocking(False)
        self._add_reader(self._signal_rsock.fileno(), self._read_signals)

    def _read_signals(self):
        while True:
            try:
                data = self._signal_rsock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                self._dispatch_signal(signum)

    def _dispatch_signal(self, signum):
        handle = self._signal_handlers.get(signum)
        if handle is None:
            return
        if handle.cancelled():
            self.remove_signal_handler(signum)
        else:
            handle._run()

    def add_signal_handler(self, sig, callback, *args):
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        self._open_signal_socket()
        try:
            # Only the main thread may set it: that is asyncio's rule too.
            signal.set_wakeup_fd(self._signal_wsock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._signal_handlers[sig] = asyncio.Handle(callback, args, self, None)
        try:
            signal.signal(sig, _noop_handler)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                self._clear_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        _check_signal(sig)
        if self._signal_handlers.pop(sig, None) is None:
            return False
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, default)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers:
            self._clear_wakeup_fd()
        return True

    def _clear_wakeup_fd(self):
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            logger.info("set_wakeup_fd(-1) failed: %s", exc)

    def _close_signals(self):
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        if self._signal_rsock is not None:
            self._remove_reader(self._signal_rsock.fileno())
            self._signal_rsock.close()
            self._signal_wsock.close()
            self._signal_rsock = self._signal_wsock = None
