"""TCP: create_server/create_connection with protocols. The transport tests
shared with Unix sockets are in stream_transport_cases.py; the TCP-only ones
(addresses, options, errors) are here."""

import asyncio
import errno
import socket
import struct
import sys
import time

from .loops import loop_tests, open_fds
from .stream_transport_cases import StreamTransportCases
from .support import (EchoProtocol, ExhaustedFds, RecordingBufferedProtocol,
                      RecordingProtocol, TcpEndpoints,
                      closed_tcp_port, tcp_socket_pair, wait_until)

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class TcpTransportTests(StreamTransportCases, TcpEndpoints):
    pass


@loop_tests(LOOPS)
class TcpTests(TcpEndpoints):
    def test_tcp_nodelay_is_set(self):
        async def test():
            server, accepted = await self.start_server()
            transport, _ = await self.connect(server)
            await wait_until(lambda: accepted)
            await accepted[0].made
            for t in (transport, accepted[0].transport):
                sock = t.get_extra_info("socket")
                self.assertTrue(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        self.run_coro(test())

    def test_loop_made_objects_cannot_be_made_bare(self):
        # A transport, server or handle type called with no arguments is a
        # TypeError on both loops (it once crashed tapio on first use).
        async def test():
            server, _ = await self.start_server()
            transport, _ = await self.connect(server)
            endpoint, _ = await self.loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            self.addCleanup(endpoint.close)
            handle = self.loop.call_soon(print)
            handle.cancel()
            for obj in (transport, server, endpoint, handle, self.loop.call_later(9, print)):
                with self.subTest(type(obj).__name__), self.assertRaises(TypeError):
                    type(obj)()
        self.run_coro(test())

    def test_failed_get_buffer_reads_nothing_and_ends_the_connection(self):
        # When get_buffer() raises or returns something unusable, asyncio
        # reports it and closes the transport with that error: no byte is
        # read, and buffer_updated() is never called.
        def raising(hint):
            raise ZeroDivisionError("no buffer")

        makers = {"raises": raising, "none": lambda hint: None,
                  "str": lambda hint: "text", "read-only": lambda hint: b"x" * 64}

        async def test(make_buffer):
            errors = []
            self.loop.set_exception_handler(lambda loop, context: errors.append(context))
            updates = []

            class Buffered(RecordingBufferedProtocol):
                def buffer_updated(self, nbytes):
                    updates.append(nbytes)

            server, _ = await self.start_server(EchoProtocol)
            transport, protocol = await self.create_connection(
                lambda: Buffered(make_buffer), server)
            transport.write(b"ping")
            exc = await asyncio.wait_for(protocol.lost, 5)
            self.assertIsInstance(exc, Exception)
            self.assertEqual(updates, [])
            self.assertTrue(transport.is_closing())
            self.assertTrue(errors)

        for name, make_buffer in makers.items():
            with self.subTest(name):
                self.run_coro(test(make_buffer))

    def test_peername_is_the_servers_address(self):
        async def test():
            server, _ = await self.start_server()
            transport, _ = await self.connect(server)
            self.assertEqual(transport.get_extra_info("peername"), server.sockets[0].getsockname())
            host, port = transport.get_extra_info("sockname")
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(port, 0)
        self.run_coro(test())

    def test_ipv6(self):
        async def test():
            server, _ = await self.start_server(EchoProtocol, host="::1")
            self.assertEqual(server.sockets[0].family, socket.AF_INET6)
            transport, protocol = await self.connect(server)
            self.assertEqual(transport.get_extra_info("peername")[:2], ("::1", server.sockets[0].getsockname()[1]))
            transport.write(b"six")
            self.assertEqual(await protocol.received(3), b"six")
        self.run_coro(test())

    def test_server_on_a_host_list(self):
        async def test():
            server, _ = await self.start_server(host=["127.0.0.1", "::1"])
            families = sorted(sock.family for sock in server.sockets)
            self.assertEqual(families, sorted([socket.AF_INET, socket.AF_INET6]))
        self.run_coro(test())

    def test_server_on_a_host_name_with_family(self):
        async def test():
            server, _ = await self.start_server(host="localhost", family=socket.AF_INET)
            self.assertEqual([s.getsockname()[0] for s in server.sockets], ["127.0.0.1"])
        self.run_coro(test())

    def test_connect_by_host_name(self):
        async def test():
            server, _ = await self.start_server(EchoProtocol)
            port = server.sockets[0].getsockname()[1]
            transport, protocol = await self.loop.create_connection(RecordingProtocol, "localhost", port)
            self.addCleanup(self._abort, [protocol])
            transport.write(b"by name")
            self.assertEqual(await protocol.received(7), b"by name")
        self.run_coro(test())

    def test_port_in_use(self):
        async def test():
            server, _ = await self.start_server()
            port = server.sockets[0].getsockname()[1]
            with self.assertRaises(OSError) as caught:
                await self.loop.create_server(RecordingProtocol, "127.0.0.1", port)
            self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.run_coro(test())

    def test_reuse_port(self):
        async def test():
            first, _ = await self.start_server(reuse_port=True)
            port = first.sockets[0].getsockname()[1]
            second, _ = await self.start_server(port=port, reuse_port=True)
            self.assertEqual(second.sockets[0].getsockname()[1], port)
        self.run_coro(test())

    def test_backlog_and_reuse_address_are_accepted(self):
        async def test():
            server, _ = await self.start_server(backlog=5, reuse_address=True)
            sock = server.sockets[0]
            self.assertTrue(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
        self.run_coro(test())

    def test_server_from_a_listening_socket(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))

        async def test():
            server, _ = await self.start_server(EchoProtocol, host=None, port=None, sock=sock)
            self.assertEqual(server.sockets[0].fileno(), sock.fileno())
            transport, protocol = await self.connect(server)
            transport.write(b"via sock=")
            self.assertEqual(await protocol.received(9), b"via sock=")
        self.run_coro(test())

    def test_connection_from_a_connected_socket(self):
        client, peer = tcp_socket_pair()
        self.addCleanup(peer.close)
        self.addCleanup(client.close)
        peer.sendall(b"to an existing socket")

        async def test():
            transport, protocol = await self.loop.create_connection(RecordingProtocol, sock=client)
            self.addCleanup(self._abort, [protocol])
            self.assertEqual(await protocol.received(21), b"to an existing socket")
            self.assertEqual(transport.get_extra_info("peername"), peer.getsockname())
        self.run_coro(test())

    def test_local_addr(self):
        async def test():
            server, _ = await self.start_server()
            transport, _ = await self.connect(server, local_addr=("127.0.0.1", 0))
            self.assertEqual(transport.get_extra_info("sockname")[0], "127.0.0.1")
        self.run_coro(test())

    def test_happy_eyeballs_and_interleave_are_accepted(self):
        async def test():
            server, _ = await self.start_server(EchoProtocol)
            port = server.sockets[0].getsockname()[1]
            transport, protocol = await self.loop.create_connection(
                RecordingProtocol, "localhost", port, happy_eyeballs_delay=0.25, interleave=1)
            self.addCleanup(self._abort, [protocol])
            transport.write(b"eyeballs")
            self.assertEqual(await protocol.received(8), b"eyeballs")
        self.run_coro(test())

    def test_connection_refused(self):
        with self.assertRaises(ConnectionRefusedError):
            self.run_coro(self.loop.create_connection(RecordingProtocol, "127.0.0.1", closed_tcp_port()))

    def test_argument_errors(self):
        with socket.socket() as sock, socket.socket(type=socket.SOCK_DGRAM) as datagram:
            cases = {
                "host and sock": dict(host="127.0.0.1", port=80, sock=sock),
                "neither host nor sock": dict(),
                "datagram sock": dict(sock=datagram),
            }
            for name, kwargs in cases.items():
                with self.subTest(name):
                    with self.assertRaises(ValueError):
                        self.run_coro(self.loop.create_connection(RecordingProtocol, **kwargs))

    def test_peer_reset_reaches_connection_lost(self):
        async def test():
            server, accepted = await self.start_server()
            transport, protocol = await self.connect(server)
            await wait_until(lambda: accepted)
            await accepted[0].made
            # SO_LINGER with a zero timeout turns close() into a reset.
            server_sock = accepted[0].transport.get_extra_info("socket")
            server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            accepted[0].transport.close()
            self.assertIsInstance(await protocol.lost, ConnectionResetError)
        self.run_coro(test())


BIND_ERROR = "error while attempting to bind on address {!r}: "


def link_local_address():
    """(address, interface name) of an IPv6 link-local address of this
    machine, from /proc/net/if_inet6; None if it has none."""
    try:
        with open("/proc/net/if_inet6") as table:
            for line in table:
                hexaddr, _, _, scope, _, name = line.split()
                if int(scope, 16) == 0x20:
                    words = [hexaddr[i:i + 4] for i in range(0, 32, 4)]
                    packed = bytes.fromhex("".join(words))
                    return socket.inet_ntop(socket.AF_INET6, packed), name
    except OSError:
        pass
    return None


def service_with_a_free_port():
    """(name, port) of a TCP service of /etc/services whose port above 1024
    nothing on 127.0.0.1 uses now."""
    with open("/etc/services") as services:
        for line in services:
            fields = line.split("#")[0].split()
            if len(fields) < 2 or not fields[1].endswith("/tcp"):
                continue
            name, port = fields[0], int(fields[1].split("/")[0])
            if port <= 1024 or socket.getservbyname(name, "tcp") != port:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return name, port
    raise AssertionError("/etc/services names no TCP service with a free port above 1024")


@loop_tests(LOOPS)
class TcpFailureTests(TcpEndpoints):
    """Connections and servers that fail for real reasons: what the caller
    gets, and that no descriptor is left behind (the harness checks)."""

    def test_all_addresses_refusing_is_one_oserror_naming_each(self):
        port_v4 = closed_tcp_port()
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            port_v6 = sock.getsockname()[1]

        async def two_addresses(host, port, **kwargs):
            # loop.getaddrinfo is public and overridable; this name has two
            # addresses, both refusing.
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_v4)),
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port_v6, 0, 0))]
        self.loop.getaddrinfo = two_addresses

        with self.assertRaises(OSError) as caught:
            self.run_coro(self.loop.create_connection(RecordingProtocol, "two.invalid", 80))
        message = str(caught.exception)
        self.assertTrue(message.startswith("Multiple exceptions: "), message)
        self.assertIn(f"('127.0.0.1', {port_v4})", message)
        self.assertIn(f"('::1', {port_v6}, 0, 0)", message)
        self.assertNotIsInstance(caught.exception, ConnectionRefusedError)

        if sys.version_info >= (3, 12):
            with self.assertRaises(ExceptionGroup) as group:
                self.run_coro(self.loop.create_connection(
                    RecordingProtocol, "two.invalid", 80, all_errors=True))
            self.assertEqual([type(e) for e in group.exception.exceptions],
                             [ConnectionRefusedError, ConnectionRefusedError])

    def test_refusals_with_the_same_message_raise_the_first(self):
        port = closed_tcp_port()

        async def same_address_twice(host, port_, **kwargs):
            info = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
            return [info, info]
        self.loop.getaddrinfo = same_address_twice
        with self.assertRaises(ConnectionRefusedError):
            self.run_coro(self.loop.create_connection(RecordingProtocol, "twice.invalid", 80))

    def test_local_addr_in_use_names_the_address(self):
        async def test():
            server, _ = await self.start_server()
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                local = taken.getsockname()
                with self.assertRaises(OSError) as caught:
                    await self.connect(server, local_addr=local)
                self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
                message = str(caught.exception)
                self.assertIn(BIND_ERROR.format(local), message)
                self.assertIn("address already in use", message)
                if sys.version_info >= (3, 12):
                    with self.assertRaises(ExceptionGroup) as group:
                        await self.connect(server, local_addr=local, all_errors=True)
                    [error] = group.exception.exceptions
                    self.assertEqual(error.errno, errno.EADDRINUSE)
        self.run_coro(test())

    def test_port_in_use_error_names_the_address(self):
        async def test():
            server, _ = await self.start_server()
            address = server.sockets[0].getsockname()
            with self.assertRaises(OSError) as caught:
                await self.loop.create_server(RecordingProtocol, *address)
            self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
            self.assertIn(BIND_ERROR.format(address), str(caught.exception))
            self.assertIn("address already in use", str(caught.exception))
        self.run_coro(test())

    def test_connect_timeout_closes_the_socket(self):
        # A listener with a full backlog: the kernel drops the next SYNs, so
        # the connect hangs until wait_for gives up.
        with socket.socket() as listener, socket.socket() as filler:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            filler.connect(listener.getsockname())
            fds_before = set(open_fds())
            start = time.monotonic()
            with self.assertRaises(asyncio.TimeoutError):
                self.loop.run_until_complete(asyncio.wait_for(
                    self.loop.create_connection(RecordingProtocol, *listener.getsockname()), 0.3))
            self.assertGreaterEqual(time.monotonic() - start, 0.29)
            self.run_briefly()
            self.assertEqual(set(open_fds()) - fds_before, set(), "the connecting socket stays open")

    def test_service_name_as_port(self):
        name, port = service_with_a_free_port()

        async def test():
            server, _ = await self.start_server(EchoProtocol, port=port)
            for service in (name, name.encode()):
                with self.subTest(service=service):
                    transport, protocol = await self.loop.create_connection(
                        RecordingProtocol, "127.0.0.1", service)
                    self.addCleanup(self._abort, [protocol])
                    self.assertEqual(transport.get_extra_info("peername"), ("127.0.0.1", port))
                    transport.write(b"by service name")
                    self.assertEqual(await protocol.received(15), b"by service name")
                    transport.close()
            for service in ("nonsense", b"nonsense"):
                with self.subTest(service=service):
                    with self.assertRaises(OSError):
                        await self.loop.create_connection(RecordingProtocol, "127.0.0.1", service)
        self.run_coro(test())

    def test_ipv6_scope_id_in_the_host(self):
        # An address with %interface reaches connect() with that interface's
        # scope id: a link-local address needs it to be reachable at all.
        found = link_local_address()
        address, ifname = found if found else ("::1", "lo")
        scope = socket.if_nametoindex(ifname)
        with socket.socket(socket.AF_INET6) as listener:
            listener.bind((address, 0, 0, scope))
            listener.listen()
            port = listener.getsockname()[1]

            async def test():
                transport, protocol = await self.loop.create_connection(
                    RecordingProtocol, f"{address}%{ifname}", port)
                self.addCleanup(self._abort, [protocol])
                peer = transport.get_extra_info("peername")
                self.assertEqual(peer[:2], (address, port))
                if found:
                    self.assertEqual(peer[3], scope)
                return transport
            transport = self.run_coro(test())
            accepted, _ = listener.accept()
            with accepted:
                transport.write(b"scoped")
                accepted.settimeout(5)
                self.assertEqual(accepted.recv(6), b"scoped")

    def test_server_on_repeated_hosts_listens_once_per_address(self):
        for hosts in (["127.0.0.1", "127.0.0.1"], ["::1", "::1"], ["127.0.0.1", "::1", "127.0.0.1"]):
            with self.subTest(hosts=hosts):
                async def test():
                    server, _ = await self.start_server(host=hosts)
                    addresses = sorted(s.getsockname()[0] for s in server.sockets)
                    self.assertEqual(addresses, sorted(set(hosts)))
                    server.close()
                    await server.wait_closed()
                self.run_coro(test())

    def test_accept_out_of_descriptors_is_reported_and_retried(self):
        async def test():
            exhausted = ExhaustedFds()
            self.addCleanup(exhausted.release)
            exhausted.lower_limit()
            server, accepted = await self.start_server()
            address = server.sockets[0].getsockname()
            client = socket.socket()
            self.addCleanup(client.close)
            with exhausted:
                client.connect(address)  # the kernel completes it; accept() will fail
                await wait_until(lambda: self.loop_errors, 5, "the accept failure")
                await asyncio.sleep(0.1)
                exhausted.release()
            # (asyncio reports once per accept() it tries in that iteration.)
            contexts = list(self.loop_errors)
            self.loop_errors.clear()
            for context in contexts:
                self.assertEqual(context["message"], "socket.accept() out of system resource")
                self.assertIsInstance(context["exception"], OSError)
                self.assertEqual(context["exception"].errno, errno.EMFILE)
            self.assertFalse(accepted)
            # The server tries again later and then accepts the connection.
            await wait_until(lambda: accepted, 5, "the accept after the retry")
            await accepted[0].made
            client.sendall(b"late")
            self.assertEqual(await accepted[0].received(4), b"late")
        self.run_coro(test())
