"""TLS for the tapio loop: ssl= on the create_* calls, start_tls.

The TLS state machine, buffering and flow control are libtapio's; the
cryptography is the user's ssl.SSLContext driving an ssl.SSLObject between
two memory BIOs, so every setting of the context applies as in asyncio.
Transport._start_tls puts the TLS transport over a stream transport and
reports the handshake's end to a callback.
"""
import asyncio

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None

from . import _tapio
from ._helpers import socket_extra

# asyncio's defaults (asyncio.constants), in seconds.
HANDSHAKE_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0


class SSLTransport(_tapio.Transport):
    """A TLS transport: plaintext over libtapio's TLS layer. Sendfile goes
    through reading and writing, since every byte must be encrypted."""

    __slots__ = ()
    _sendfile_compatible = asyncio.constants._SendfileMode.FALLBACK


def _timeout(value, name, default):
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")
    return value


class TLSSettings:
    """What one side of a TLS connection needs. They are checked as each
    connection starts, as asyncio checks them when it makes an SSLProtocol:
    after connecting, and for a server at each accepted connection."""

    __slots__ = ("ssl", "server_side", "server_hostname", "handshake_timeout",
                 "shutdown_timeout")

    def __init__(self, ssl, server_side, server_hostname, handshake_timeout,
                 shutdown_timeout):
        self.ssl = ssl
        self.server_side = server_side
        self.server_hostname = server_hostname if server_hostname and not server_side else None
        self.handshake_timeout = handshake_timeout
        self.shutdown_timeout = shutdown_timeout

    def _context(self):
        # ssl=True means asyncio's secure client default; anything else is
        # taken as the context (an object that is not one fails in wrap_bio).
        context = None if isinstance(self.ssl, bool) else self.ssl
        if context:
            return context
        if self.server_side:
            raise ValueError("Server side SSL needs a valid SSLContext")
        context = _ssl.create_default_context()
        if not self.server_hostname:
            context.check_hostname = False
        return context

    def engine(self):
        """The checked settings and a new SSL object between two memory BIOs,
        as _start_tls's keywords (asyncio's SSLProtocol checks as it makes
        them)."""
        if _ssl is None:
            raise RuntimeError("stdlib ssl module not available")
        handshake_timeout = _timeout(self.handshake_timeout, "ssl_handshake_timeout",
                                     HANDSHAKE_TIMEOUT)
        shutdown_timeout = _timeout(self.shutdown_timeout, "ssl_shutdown_timeout",
                                    SHUTDOWN_TIMEOUT)
        context = self._context()
        incoming = _ssl.MemoryBIO()
        outgoing = _ssl.MemoryBIO()
        sslobj = context.wrap_bio(incoming, outgoing, server_side=self.server_side,
                                  server_hostname=self.server_hostname)
        return {"sslobject": sslobj, "incoming": incoming, "outgoing": outgoing,
                "handshake_timeout": float(handshake_timeout),
                "shutdown_timeout": float(shutdown_timeout)}

    def start(self, raw, protocol, on_handshake, *, connected=False):
        """Put a TLS transport for protocol over the stream transport raw;
        on_handshake(exc or None) runs once the handshake ends."""
        engine = self.engine()
        extra = dict(raw._extra or {})
        extra["sslcontext"] = engine["sslobject"].context
        return raw._start_tls(cls=SSLTransport, protocol=protocol, extra=extra,
                              on_handshake=on_handshake, connected=connected, **engine)


def _wake(waiter, exc):
    if waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)


async def _established(loop, settings, raw, protocol, connected=False):
    """The TLS transport over raw once its handshake succeeded; it is closed
    if the handshake fails or the caller is cancelled."""
    waiter = loop.create_future()
    try:
        transport = settings.start(raw, protocol, lambda exc: _wake(waiter, exc),
                                   connected=connected)
    except BaseException:
        if not connected:  # a connection made for TLS: closed (start_tls's is the caller's)
            raw.abort()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport


class _Acceptor(asyncio.Protocol):
    """A TLS server's protocol for each accepted stream: it makes the
    user's protocol and puts a TLS transport over the stream for it. A
    connection whose handshake fails ends quietly, as in asyncio (debug mode
    reports it)."""

    __slots__ = ("_loop", "_factory", "_settings")

    def __init__(self, loop, factory, settings):
        self._loop = loop
        self._factory = factory
        self._settings = settings

    def connection_made(self, raw):
        try:
            protocol = self._factory()
            self._settings.start(raw, protocol, self._handshake_done)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raw.abort()
            self._report(exc)

    def _handshake_done(self, exc):
        if exc is not None:
            self._report(exc)

    def _report(self, exc):
        if self._loop.get_debug():
            self._loop.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
            })


def acceptor_factory(loop, protocol_factory, settings):
    return lambda: _Acceptor(loop, protocol_factory, settings)


class TLSMixin:
    async def _tls_connection(self, sock, protocol_factory, settings, user_sock):
        """create_connection's and connect_accepted_socket's ssl= path."""
        sock.setblocking(False)
        protocol = protocol_factory()
        # The stream's own protocol is never called: TLS takes it over before
        # its connection_made.
        raw = self._wrap_socket(sock, asyncio.Protocol(), socket_extra(sock), user_sock)
        transport = await _established(self, settings, raw, protocol)
        return transport, protocol

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        if _ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        settings = TLSSettings(sslcontext, server_side, server_hostname,
                               ssl_handshake_timeout, ssl_shutdown_timeout)
        if transport.is_closing():
            settings.engine()
            # asyncio's SSLProtocol then waits for a handshake over a transport
            # whose connection_lost went to the old protocol: it never ends.
            await self.create_future()
        return await _established(self, settings, transport, protocol, connected=True)
