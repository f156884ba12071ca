"""tapio's asyncio Server: the listening sockets are bound in Python, the
accept loop and every connection run in libtapio."""
import asyncio
import os
import socket
import sys
from asyncio import trsock

from ._helpers import logger, socket_extra


def accepted_extra(fd):
    """Socket object and extra info of an accepted connection's fd. The
    socket object is a view: the transport detaches it before libtapio
    closes the fd."""
    sock = socket.socket(fileno=fd)
    return sock, socket_extra(sock)


def unix_socket_file(sock):
    """(path, inode) of a Unix socket bound to a file, else None: what
    create_unix_server(cleanup_socket=True) removes when the server closes."""
    path = sock.getsockname()
    if not path or path[0] in (0, "\x00"):  # unbound or an abstract name
        return None
    try:
        return path, os.stat(path).st_ino
    except FileNotFoundError:
        return None


def remove_unix_socket_file(path, inode):
    """Remove the server's socket file unless another file took its path."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)


class Server(asyncio.AbstractServer):
    def __init__(self, loop, sockets, protocol_factory, backlog, socket_files=()):
        self._loop = loop
        self._sockets = sockets
        self._socket_files = socket_files  # (path, inode) to remove on close
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._core = None
        self._waiters = []
        self._serving_forever_fut = None

    def __repr__(self):
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._core is not None and self._core.is_serving()

    def _start_serving(self):
        if self._sockets is None:
            return
        if self._core is None:
            try:
                self._core = self._loop._serve(self, [s.fileno() for s in self._sockets],
                                               self._protocol_factory, accepted_extra,
                                               self._backlog, True)
            except OSError:
                # libtapio took the fds and has closed them.
                for sock in self._sockets:
                    sock.detach()
                self._sockets = None
                raise
        else:
            self._core.start_serving()

    async def start_serving(self):
        self._start_serving()
        await asyncio.sleep(0)  # let the sockets be watched before returning

    def close(self):
        sockets, self._sockets = self._sockets, None
        if sockets is None:
            return
        if self._core is not None:
            # libtapio owns the fds now: it closes them.
            for sock in sockets:
                sock.detach()
            self._core.close(self._wakeup)
            if not self._core.clients():
                self._wakeup()  # at once, as asyncio wakes wait_closed()
        else:
            for sock in sockets:
                sock.close()
            self._wakeup()
        for path, inode in self._socket_files:
            remove_unix_socket_file(path, inode)
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None

    def _clients(self):
        return self._core.clients() if self._core is not None else []

    def close_clients(self):
        """Close every connection this server accepted (3.13's API)."""
        for transport in self._clients():
            transport.close()

    def abort_clients(self):
        """Abort every connection this server accepted (3.13's API)."""
        for transport in self._clients():
            transport.abort()

    def _wakeup(self):
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def wait_closed(self):
        # Python 3.11 returns at once once close() was called; later versions
        # wait for the last connection too.
        if self._waiters is None or (sys.version_info < (3, 12) and self._sockets is None):
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()

    def _log_serving(self):
        if self._loop.get_debug():
            logger.info("%r is serving", self)
