"""Connections and servers: argument checking, name resolution through the
loop's getaddrinfo and asyncio's exceptions; connecting (address order, happy
eyeballs, local addresses), binding, the transports and the accept loop are
libtapio's."""
import asyncio
import collections.abc
import errno
import functools
import itertools
import os
import socket
import sys

from . import _tapio
from ._helpers import connection_made, check_protocol, socket_extra
from ._server import Server
from ._tls import TLSSettings, acceptor_factory

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None



def _check_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_tls_args(ssl, server_hostname=None, handshake=None, shutdown=None):
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if handshake is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def _tls_settings(ssl, server_side, server_hostname, handshake_timeout, shutdown_timeout):
    if not ssl:
        return None
    return TLSSettings(ssl, server_side, server_hostname, handshake_timeout, shutdown_timeout)


def _check_stream_socket(sock, family=None):
    if family is not None and (sock.family != family or sock.type != socket.SOCK_STREAM):
        raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")


def _bind_error(err, laddr):
    exc = OSError(err, os.strerror(err))
    # asyncio words it with the OSError's str() from 3.13 on.
    reason = str(exc) if sys.version_info >= (3, 13) else exc.strerror
    return OSError(err, f"error while attempting to bind on address {laddr!r}: "
                        f"{reason.lower()}")


def _connect_failed(err, info):
    family, type_, proto, _, address = info
    try:  # the address as asyncio's sock_connect prints it
        numeric = _tapio.ipaddr_info(address[0], address[1], family, type_, proto,
                                     *address[2:])
    except (TypeError, ValueError, IndexError):
        numeric = None
    if numeric is not None:
        address = numeric[4]
    return OSError(err, f"Connect call failed {address}")


def _attempt_errors(errors, infos, local_infos):
    """libtapio's failed steps as the OSErrors asyncio's attempts raise."""
    exceptions = []
    for index, local, step, err in errors:
        info = infos[index]
        if step == _tapio.CONNECT_STEP_BIND:
            exceptions.append(_bind_error(err, local_infos[local][4]))
        elif step == _tapio.CONNECT_STEP_NO_LOCAL:
            exceptions.append(OSError(f"no matching local address with family={info[0]!r} found"))
        elif step == _tapio.CONNECT_STEP_CONNECTING:
            exceptions.append(_connect_failed(err, info))
        else:  # socket() or connect() refused at once: their own OSError
            exceptions.append(OSError(err, os.strerror(err)))
    return exceptions


def _raise_connect_errors(exceptions, all_errors):
    try:
        if all_errors:
            raise ExceptionGroup("create_connection failed", exceptions)
        if len(exceptions) == 1:
            raise exceptions[0]
        first = str(exceptions[0])
        if all(str(exc) == first for exc in exceptions):
            raise exceptions[0]
        raise OSError("Multiple exceptions: {}".format(", ".join(str(e) for e in exceptions)))
    finally:
        exceptions = None  # no reference cycle through the traceback


def _connect_done(fut, fd, index, errors):
    if fut.done():  # cancelled: the socket is not wanted
        if fd >= 0:
            os.close(fd)
        return
    fut.set_result((fd, index, errors))


class ConnectionsMixin:
    async def _ensure_resolved(self, address, *, family=0, type=socket.SOCK_STREAM, proto=0,
                               flags=0):
        host, port = address[:2]
        info = _tapio.ipaddr_info(host, port, family, type, proto, *address[2:])
        if info is not None:  # a numeric host needs no resolver
            return [info]
        return await self.getaddrinfo(host, port, family=family, type=type, proto=proto,
                                      flags=flags)

    async def _resolve(self, host, port, *, family=0, type=socket.SOCK_STREAM, proto=0,
                       flags=0):
        infos = await self._ensure_resolved((host, port), family=family, type=type,
                                            proto=proto, flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    async def _connection_transport(self, sock, protocol_factory, tls, user_sock):
        """The transport over a connected socket: one libtapio connected, or
        the user's own (user_sock: libtapio works on a dup of its fd, so
        that closing it cannot point the transport at another file)."""
        if tls is not None:
            return await self._tls_connection(sock, protocol_factory, tls, user_sock)
        sock.setblocking(False)
        protocol = protocol_factory()
        check_protocol(protocol, sock)
        transport = self._wrap_socket(sock, protocol, socket_extra(sock), user_sock)
        return await connection_made(self, transport, protocol)

    async def _connect_socket(self, infos, local_infos=None, delay=None, interleave=None,
                              all_errors=False):
        """A socket connected by libtapio to one of infos (getaddrinfo tuples),
        tried in asyncio's order; asyncio's exceptions when none connects."""
        fut = self.create_future()
        key = _tapio.connect_socket(self, infos, functools.partial(_connect_done, fut),
                                    local_addresses=local_infos, delay=delay,
                                    interleave=interleave)
        try:
            fd, index, errors = await fut
        except BaseException:
            if not fut.done() or fut.cancelled():
                _tapio.connect_cancel(self, key)  # closes every attempt
            elif fut.exception() is None and fut.result()[0] >= 0:
                os.close(fut.result()[0])  # connected as the task was cancelled
            raise
        if fd < 0:
            _raise_connect_errors(_attempt_errors(errors, infos, local_infos), all_errors)
        family, type_, proto, _, _ = infos[index]
        return socket.socket(family, type_, proto, fileno=fd)

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None,
                                family=0, proto=0, flags=0, sock=None, local_addr=None,
                                server_hostname=None, ssl_handshake_timeout=None,
                                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                                interleave=None, all_errors=False):
        _check_tls_args(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        tls = _tls_settings(ssl, False, server_hostname, ssl_handshake_timeout,
                            ssl_shutdown_timeout)
        user_sock = sock is not None
        if user_sock:
            _check_ssl_socket(sock)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            infos = await self._ensure_resolved((host, port), family=family, proto=proto,
                                                flags=flags)
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            local_infos = None
            if local_addr is not None:
                local_infos = await self._ensure_resolved(local_addr, family=family,
                                                          proto=proto, flags=flags)
                if not local_infos:
                    raise OSError("getaddrinfo() returned empty list")
            # libtapio orders the attempts (interleave, happy eyeballs).
            sock = await self._connect_socket(infos, local_infos, happy_eyeballs_delay,
                                              interleave, all_errors)
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            _check_stream_socket(sock)
        return await self._connection_transport(sock, protocol_factory, tls, user_sock)

    if sys.version_info < (3, 12):  # all_errors came in 3.12: before, a TypeError at the call
        _create_connection = create_connection

        async def create_connection(self, protocol_factory, host=None, port=None, *,
                                    ssl=None, family=0, proto=0, flags=0, sock=None,
                                    local_addr=None, server_hostname=None,
                                    ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                    happy_eyeballs_delay=None, interleave=None):
            return await self._create_connection(
                protocol_factory, host, port, ssl=ssl, family=family, proto=proto,
                flags=flags, sock=sock, local_addr=local_addr,
                server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None,
                                     sock=None, server_hostname=None,
                                     ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        _check_tls_args(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        tls = _tls_settings(ssl, False, server_hostname, ssl_handshake_timeout,
                            ssl_shutdown_timeout)
        user_sock = sock is not None
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = await self._connect_socket(
                [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", path)])
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            _check_stream_socket(sock, socket.AF_UNIX)
        return await self._connection_transport(sock, protocol_factory, tls, user_sock)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        _check_ssl_socket(sock)
        _check_tls_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        _check_stream_socket(sock)
        return await self._connection_transport(
            sock, protocol_factory,
            _tls_settings(ssl, True, None, ssl_handshake_timeout, ssl_shutdown_timeout),
            user_sock=True)

    # ---- servers ----------------------------------------------------------

    async def _server_addresses(self, host, port, family, flags):
        """Every address of every host, in asyncio's order, duplicates once."""
        if host == "":
            hosts = [None]
        elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
            hosts = [host]
        else:
            hosts = host
        results = await asyncio.gather(*[
            self._resolve(h, port, family=family, flags=flags) for h in hosts])
        return list(dict.fromkeys(itertools.chain.from_iterable(results)))

    async def _start_server(self, server, start_serving):
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)  # as asyncio: the caller runs after serving began
        server._log_serving()
        return server

    async def create_server(self, protocol_factory, host=None, port=None, *,
                            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            start_serving=True, keep_alive=None):
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_tls_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            _check_ssl_socket(sock)
        factory = self._server_factory(protocol_factory, ssl, ssl_handshake_timeout,
                                       ssl_shutdown_timeout)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
                raise ValueError("reuse_port not supported by socket module")
            infos = await self._server_addresses(host, port, family, flags)
            try:
                server = Server(self, factory, addresses=infos, backlog=backlog,
                                reuse_address=bool(reuse_address),
                                reuse_port=bool(reuse_port), keep_alive=bool(keep_alive))
            except OSError as err:
                index = getattr(err, "address_index", None)
                if index is None:
                    raise
                raise OSError(err.errno, "error while attempting to bind on address %r: %s"
                              % (infos[index][4], err.strerror.lower())) from None
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            _check_stream_socket(sock)
            server = Server(self, factory, sock=sock, backlog=backlog)
        return await self._start_server(server, start_serving)

    def _server_factory(self, protocol_factory, ssl, handshake_timeout, shutdown_timeout):
        tls = _tls_settings(ssl, True, None, handshake_timeout, shutdown_timeout)
        if tls is None:
            return protocol_factory
        return acceptor_factory(self, protocol_factory, tls)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None,
                                 backlog=100, ssl=None, ssl_handshake_timeout=None,
                                 ssl_shutdown_timeout=None, start_serving=True,
                                 cleanup_socket=sys.version_info >= (3, 13)):
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_tls_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        factory = self._server_factory(protocol_factory, ssl, ssl_handshake_timeout,
                                       ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            encoded = os.fsencode(path)
            # asyncio first looks for a stale socket file there, and os.stat()
            # refuses a NUL (an abstract name, which starts with one, is not looked for).
            if not encoded.startswith(b"\0") and b"\0" in encoded:
                raise ValueError("embedded null byte")
            try:
                server = Server(self, factory, path=encoded, backlog=backlog,
                                keep_socket_file=not cleanup_socket)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE,
                                  f"Address {path!r} is already in use") from None
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            _check_stream_socket(sock, socket.AF_UNIX)
            server = Server(self, factory, sock=sock, backlog=backlog,
                            keep_socket_file=not cleanup_socket)
        return await self._start_server(server, start_serving)
