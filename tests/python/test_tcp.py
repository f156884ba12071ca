"""TCP: create_server/create_connection with protocols. The transport tests
shared with Unix sockets are in stream_transport_cases.py; the TCP-only ones
(addresses, options, errors) are here."""

import errno
import socket
import struct

from .loops import loop_tests
from .stream_transport_cases import StreamTransportCases
from .support import (EchoProtocol, RecordingProtocol, TcpEndpoints, closed_tcp_port,
                      tcp_socket_pair, wait_until)

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
