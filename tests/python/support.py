"""Protocols, endpoints and waiting helpers shared by the connection tests."""

import asyncio
import errno
import os
import resource
import shutil
import socket
import tempfile
import time


async def wait_until(predicate, timeout=5.0, what="condition"):
    """Let the loop run until predicate() is true; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


class RecordingProtocol(asyncio.Protocol):
    """Records each callback's name in events and the bytes in data; futures
    made/eof/lost resolve at those points (lost with the exception or None)."""

    keep_open_on_eof = False  # eof_received's return value

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.events = []
        self.data = bytearray()
        self.chunk_types = set()
        self.transport = None
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("connection_made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        self.events.append("data_received")
        self.chunk_types.add(type(data))
        self.data += data

    def eof_received(self):
        self.events.append("eof_received")
        self.eof.set_result(None)
        return self.keep_open_on_eof

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append("connection_lost")
        if not self.lost.done():  # a second call shows up in events
            self.lost.set_result(exc)

    async def received(self, nbytes, timeout=5.0):
        """Wait until at least nbytes have arrived; return all data so far."""
        await wait_until(lambda: len(self.data) >= nbytes or self.lost.done(),
                         timeout, f"{nbytes} bytes")
        return bytes(self.data)


class EchoProtocol(RecordingProtocol):
    """Writes back whatever it receives."""

    def data_received(self, data):
        super().data_received(data)
        self.transport.write(data)


class RecordingBufferedProtocol(asyncio.BufferedProtocol):
    """A BufferedProtocol whose get_buffer() hands out make_buffer(size) and
    records the size hints and the bytes filled in."""

    def __init__(self, make_buffer=lambda hint: bytearray(hint if hint > 0 else 65536)):
        loop = asyncio.get_running_loop()
        self.make_buffer = make_buffer
        self.buffer = None
        self.hints = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(None)

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        self.buffer = self.make_buffer(sizehint)
        return self.buffer

    def buffer_updated(self, nbytes):
        self.data += memoryview(self.buffer)[:nbytes]

    def eof_received(self):
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.lost.set_result(exc)

    async def received(self, nbytes, timeout=5.0):
        await wait_until(lambda: len(self.data) >= nbytes or self.lost.done(),
                         timeout, f"{nbytes} bytes")
        return bytes(self.data)


class Endpoints:
    """Mixin for LoopTestCase: servers and connections that are closed when
    the test ends. A subclass says which kind (TCP, Unix) by implementing
    create_server(factory, **kw) and create_connection(factory, server, **kw)."""

    def temp_dir(self):
        path = tempfile.mkdtemp(prefix="tapio-test-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    async def start_server(self, protocol_class=EchoProtocol, **kwargs):
        """(server, accepted); accepted lists the server-side protocols."""
        accepted = []

        def factory():
            accepted.append(protocol_class())
            return accepted[-1]

        server = await self.create_server(factory, **kwargs)
        self.addCleanup(self._close_server, server, accepted)
        return server, accepted

    async def connect(self, server, protocol_class=RecordingProtocol, **kwargs):
        transport, protocol = await self.create_connection(protocol_class, server, **kwargs)
        self.addCleanup(self._abort, [protocol])
        return transport, protocol

    async def connected_pair(self, server_protocol=RecordingProtocol,
                             client_protocol=RecordingProtocol, **server_kwargs):
        """(client_transport, client_protocol, server_protocol), all connected."""
        server, accepted = await self.start_server(server_protocol, **server_kwargs)
        transport, protocol = await self.connect(server, client_protocol)
        await wait_until(lambda: accepted, what="the server to accept")
        await accepted[0].made
        return transport, protocol, accepted[0]

    def _close_server(self, server, accepted):
        server.close()
        self._abort(accepted)

    def _abort(self, protocols):
        """Abort what the test left open and let connection_lost run."""
        if self.loop.is_closed():
            return
        for protocol in protocols:
            if protocol.transport is not None and not protocol.lost.done():
                protocol.transport.abort()
        self.run_briefly()


class TcpEndpoints(Endpoints):
    host = "127.0.0.1"
    family = socket.AF_INET

    async def create_server(self, factory, **kwargs):
        kwargs.setdefault("host", self.host)
        kwargs.setdefault("port", 0)
        return await self.loop.create_server(factory, **kwargs)

    async def create_connection(self, factory, server, **kwargs):
        host, port = server.sockets[0].getsockname()[:2]
        return await self.loop.create_connection(factory, host, port, **kwargs)

    def server_address(self, server):
        return server.sockets[0].getsockname()

    def blocking_connect(self, address):
        return socket.create_connection(address[:2], timeout=5)

    def raw_socket_pair(self):
        return tcp_socket_pair(self.family)


class UnixEndpoints(Endpoints):
    family = socket.AF_UNIX

    async def create_server(self, factory, **kwargs):
        if "sock" not in kwargs:
            kwargs.setdefault("path", os.path.join(self.temp_dir(), "server.sock"))
        return await self.loop.create_unix_server(factory, **kwargs)

    async def create_connection(self, factory, server, **kwargs):
        path = server.sockets[0].getsockname()
        return await self.loop.create_unix_connection(factory, path, **kwargs)

    def server_address(self, server):
        return server.sockets[0].getsockname()

    def blocking_connect(self, path):
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(5)
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock

    def raw_socket_pair(self):
        return socket.socketpair(socket.AF_UNIX)


def pair_on_fd_number(fd):
    """A connected socket pair whose first socket has the number fd, just
    freed: what another part of the program opening a socket may get."""
    first, second = socket.socketpair()
    if second.fileno() == fd:
        first, second = second, first
    if first.fileno() != fd:
        os.dup2(first.fileno(), fd, inheritable=False)
        first.close()
        first = socket.socket(fileno=fd)
    return first, second


def nonblocking(*socks):
    for sock in socks:
        sock.setblocking(False)
    return socks


def tcp_socket_pair(family=socket.AF_INET):
    """Two connected blocking TCP sockets over the loopback interface."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname()[:2])
        server, _ = listener.accept()
    return client, server


def closed_tcp_port(host="127.0.0.1"):
    """A port nothing listens on (it was bound a moment ago and released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ExhaustedFds:
    """Context manager: lowers RLIMIT_NOFILE a little above the descriptors
    open now and fills the rest with duplicates of one descriptor, so that the
    next socket() or accept() fails with EMFILE. release() (or the end of the
    block) closes them and restores the limit.

    lower_limit() alone, before the block, lowers the limit early: io_uring's
    accept takes the process's limit when the request is made (a server
    already accepting keeps the limit it started with), so a server tested
    for EMFILE starts under the lowered limit, as a process at its limit
    does."""

    HEADROOM = 64

    def lower_limit(self):
        if hasattr(self, "limits"):
            return
        from .loops import open_fds
        self.limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(open_fds())
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (highest + self.HEADROOM, self.limits[1]))

    def __enter__(self):
        self.lower_limit()
        self.fds = []
        try:
            while True:
                self.fds.append(os.dup(self._base()))
        except OSError as exc:
            if exc.errno != errno.EMFILE:
                self.release()
                raise
        return self

    def _base(self):
        if not hasattr(self, "base"):
            self.base = os.open(os.devnull, os.O_RDONLY)
        return self.base

    def release(self):
        for fd in getattr(self, "fds", []):
            os.close(fd)
        self.fds = []
        if hasattr(self, "base"):
            os.close(self.base)
            del self.base
        if hasattr(self, "limits"):
            resource.setrlimit(resource.RLIMIT_NOFILE, self.limits)
            del self.limits

    def __exit__(self, *exc_info):
        self.release()
