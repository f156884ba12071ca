"""tapio's asyncio Server: the Python API over a libtapio server, which binds
the listening sockets and runs the accept loop and every connection."""
import asyncio
import socket
import sys
from asyncio import trsock

from ._helpers import logger


def accepted_extra(fd, family, sockname, peername):
    """Socket object and extra info of an accepted connection's fd, from the
    addresses libtapio read at accept (family -1: unknown). The socket
    object is a view: the transport detaches it before libtapio closes the
    fd. Family, type and protocol are given so that making the view costs
    no system call; they are what the kernel would report."""
    if family == -1:
        sock = socket.socket(fileno=fd)
    else:
        proto = 0 if family == socket.AF_UNIX else socket.IPPROTO_TCP
        sock = socket.socket(family, socket.SOCK_STREAM, proto, fileno=fd)
    return sock, {"socket": trsock.TransportSocket(sock), "sockname": sockname,
                  "peername": peername}


class Server(asyncio.AbstractServer):
    def __init__(self, loop, protocol_factory, *, sock=None, backlog=100, **where):
        """Bind where asked (addresses=getaddrinfo entries, or path=) or take
        the user's listening socket; serving starts with _start_serving."""
        self._loop = loop
        self._waiters = []
        self._serving_forever_fut = None
        if sock is not None:
            sock.setblocking(False)
            where["fds"] = [sock.fileno()]  # libtapio serves on a dup
        self._core = loop._serve(self, protocol_factory, accepted_extra,
                                 backlog=backlog, **where)
        # The user's own socket object (closed by close(), as asyncio closes
        # it), or views of libtapio's listening sockets, detached before
        # libtapio closes them.
        self._user_sock = sock is not None
        self._sockets = [sock] if sock is not None else [
            socket.socket(fileno=fd) for fd in self._core.fds()]

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
        return self._core.is_serving()

    def _start_serving(self):
        if self._sockets is not None:
            self._core.start_serving()

    async def start_serving(self):
        if self._sockets is None:  # closed: asyncio fails on its missing sockets
            raise TypeError("'NoneType' object is not iterable")
        self._start_serving()
        await asyncio.sleep(0)  # let the sockets be watched before returning

    def close(self):
        sockets, self._sockets = self._sockets, None
        if sockets is None:
            return
        for sock in sockets:  # libtapio closes its fds
            if self._user_sock:
                sock.close()
            else:
                sock.detach()
        self._core.close(self._wakeup)
        if not self._core.clients():
            self._wakeup()  # at once, as asyncio wakes wait_closed()
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None

    def _clients(self):
        return self._core.clients()

    if sys.version_info >= (3, 13):  # asyncio's Server has them from 3.13 on
        def close_clients(self):
            """Close every connection this server accepted."""
            for transport in self._clients():
                transport.close()

        def abort_clients(self):
            """Abort every connection this server accepted."""
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
