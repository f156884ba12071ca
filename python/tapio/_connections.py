"""Connections and servers: argument checking, name resolution and address
ordering (happy eyeballs) in Python, as asyncio does them; the transports
and the accept loop are libtapio's."""
import asyncio
import collections.abc
import errno
import itertools
import os
import socket
import sys
from asyncio import staggered

from ._helpers import connection_made, socket_extra
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


def _numeric_info(host, port, family, type_, proto):
    """getaddrinfo's answer for a numeric host and port, without asking it."""
    if not isinstance(port, int) and not (isinstance(port, (str, bytes)) and port.isdigit()):
        return None
    if host is None or not isinstance(host, str):
        return None
    families = [family] if family else [socket.AF_INET, socket.AF_INET6]
    for fam in families:
        try:
            socket.inet_pton(fam, host.partition("%")[0])
        except (OSError, ValueError):
            continue
        if "%" in host:
            return None  # a scope id needs the resolver
        address = (host, int(port)) if fam == socket.AF_INET else (host, int(port), 0, 0)
        type_ = type_ or socket.SOCK_STREAM
        proto = proto or (socket.IPPROTO_UDP if type_ == socket.SOCK_DGRAM
                          else socket.IPPROTO_TCP)
        return [(fam, type_, proto, "", address)]
    return None


def _interleave(infos, first_family_count=1):
    """Alternate address families, as RFC 8305 asks (asyncio's interleave)."""
    by_family = collections.OrderedDict()
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    lists = list(by_family.values())
    ordered = []
    if first_family_count > 1:
        ordered.extend(lists[0][:first_family_count - 1])
        lists[0] = lists[0][first_family_count - 1:]
    ordered.extend(a for a in itertools.chain.from_iterable(itertools.zip_longest(*lists))
                   if a is not None)
    return ordered


def _raise_connect_errors(exceptions, all_errors):
    exceptions = [exc for sub in exceptions for exc in sub]
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


class ConnectionsMixin:
    async def _resolve(self, host, port, *, family=0, type=socket.SOCK_STREAM, proto=0,
                       flags=0):
        infos = _numeric_info(host, port, family, type, proto)
        if infos is None:
            infos = await self.getaddrinfo(host, port, family=family, type=type,
                                           proto=proto, flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    def _wrap(self, sock, protocol):
        return self._wrap_socket(sock, protocol, socket_extra(sock))

    async def _connection_transport(self, sock, protocol_factory, tls=None):
        if tls is not None:
            return await self._tls_connection(sock, protocol_factory, tls)
        sock.setblocking(False)
        protocol = protocol_factory()
        return await connection_made(self, self._wrap(sock, protocol), protocol)

    async def _connect_one(self, exceptions, addr_info, local_infos):
        errors = []
        exceptions.append(errors)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_infos is not None:
                self._bind_local(sock, family, local_infos, errors)
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    @staticmethod
    def _bind_local(sock, family, local_infos, errors):
        for lfamily, _, _, _, laddr in local_infos:
            if lfamily != family:
                continue
            try:
                sock.bind(laddr)
                return
            except OSError as exc:
                errors.append(OSError(exc.errno, f"error while attempting to bind on "
                                                 f"address {laddr!r}: {exc.strerror.lower()}"))
        if errors:
            raise errors.pop()
        raise OSError(f"no matching local address with family={family} found")

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
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1  # RFC 8305's default
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            infos = await self._resolve(host, port, family=family, proto=proto, flags=flags)
            local_infos = None
            if local_addr is not None:
                local_infos = await self._resolve(*local_addr, family=family, proto=proto,
                                                  flags=flags)
            if interleave:
                infos = _interleave(infos, interleave)
            exceptions = []
            if happy_eyeballs_delay is None:
                for info in infos:
                    try:
                        sock = await self._connect_one(exceptions, info, local_infos)
                        break
                    except OSError:
                        continue
            else:
                sock, _, _ = await staggered.staggered_race(
                    [lambda info=info: self._connect_one(exceptions, info, local_infos)
                     for info in infos],
                    happy_eyeballs_delay, loop=self)
            if sock is None:
                _raise_connect_errors(exceptions, all_errors)
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            _check_stream_socket(sock)
        return await self._connection_transport(sock, protocol_factory, tls)

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None,
                                     sock=None, server_hostname=None,
                                     ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        _check_tls_args(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        tls = _tls_settings(ssl, False, server_hostname, ssl_handshake_timeout,
                            ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            _check_stream_socket(sock, socket.AF_UNIX)
        return await self._connection_transport(sock, protocol_factory, tls)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        _check_ssl_socket(sock)
        _check_tls_args(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        _check_stream_socket(sock)
        return await self._connection_transport(
            sock, protocol_factory,
            _tls_settings(ssl, True, None, ssl_handshake_timeout, ssl_shutdown_timeout))

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
            try:
                server = Server(self, factory, path=os.fsencode(path), backlog=backlog,
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
