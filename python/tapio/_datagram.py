"""loop.create_datagram_endpoint: addresses resolved and paired by family as
asyncio does; libtapio makes, binds and connects the socket and runs the
transport."""
import socket
import sys

from . import _tapio
from ._helpers import connection_made, check_protocol, socket_extra

def _check_sock_arguments(sock, **options):
    """A given socket takes no socket options, as asyncio checks."""
    if sys.version_info >= (3, 13):
        if sock.type == socket.SOCK_STREAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
    elif sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    if any(options.values()):
        problems = ", ".join(f"{k}={v}" for k, v in options.items() if v)
        raise ValueError(f"socket modifier keyword arguments can not be used when "
                         f"sock is specified. ({problems})")


class DatagramMixin:
    async def _datagram_address_pairs(self, local_addr, remote_addr, family, proto, flags):
        """[((family, proto), (local, remote)), ...] in asyncio's order."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError("unexpected address family")
            return [((family, proto), (None, None))]
        if family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError("string is expected")
            return [((family, proto), (local_addr, remote_addr))]
        by_family = {}
        for index, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError("2-tuple is expected")
            infos = await self._resolve(*addr, family=family, type=socket.SOCK_DGRAM,
                                        proto=proto, flags=flags)
            for fam, _, pro, _, address in infos:
                by_family.setdefault((fam, pro), [None, None])[index] = address
        pairs = [(key, pair) for key, pair in by_family.items()
                 if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))]
        if not pairs:
            raise ValueError("can not get address information")
        return pairs

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None,
                                       remote_addr=None, *, family=0, proto=0, flags=0,
                                       reuse_port=None, allow_broadcast=None, sock=None):
        # reuse_address is gone, as from asyncio since Python 3.11.
        remote = None
        user_sock = sock is not None  # libtapio then works on a dup of its fd
        if user_sock:
            _check_sock_arguments(sock, local_addr=local_addr,
                                  remote_addr=remote_addr, family=family, proto=proto,
                                  flags=flags, reuse_port=reuse_port,
                                  allow_broadcast=allow_broadcast)
            sock.setblocking(False)
        else:
            if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
                raise ValueError("reuse_port not supported by socket module")
            pairs = await self._datagram_address_pairs(local_addr, remote_addr, family,
                                                       proto, flags)
            # As asyncio: bind only to a local_addr, connect only to a remote_addr given.
            fd, chosen = _tapio.datagram_socket(
                [(fam, pro, local if local_addr else None, remote if remote_addr else None)
                 for (fam, pro), (local, remote) in pairs],
                reuse_port=bool(reuse_port), allow_broadcast=bool(allow_broadcast))
            (fam, pro), (_, remote_address) = pairs[chosen]
            sock = socket.socket(fam, socket.SOCK_DGRAM, pro, fileno=fd)
            sock.setblocking(False)
            remote = remote_address if remote_addr else None
        protocol = protocol_factory()
        check_protocol(protocol, sock)
        transport = self._wrap_datagram(sock, protocol, remote, socket_extra(sock), user_sock)
        return await connection_made(self, transport, protocol)
