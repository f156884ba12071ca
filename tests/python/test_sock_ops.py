"""The loop's sock_* coroutines on non-blocking sockets."""

import asyncio
import os
import socket
import struct
import tempfile

from .loops import loop_tests
from .support import closed_tcp_port, nonblocking, tcp_socket_pair

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class SockOpsTests:
    def pair(self, make=socket.socketpair):
        """Two connected non-blocking sockets, closed when the test ends."""
        a, b = nonblocking(*make())
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def udp_pair(self):
        a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        for sock in (a, b):
            self.addCleanup(sock.close)
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
        return a, b

    def listener(self, host="127.0.0.1", family=socket.AF_INET):
        sock = socket.socket(family)
        self.addCleanup(sock.close)
        sock.setblocking(False)
        sock.bind((host, 0))
        sock.listen()
        return sock

    def data_file(self, content):
        file = tempfile.TemporaryFile()
        self.addCleanup(file.close)
        file.write(content)
        file.seek(0)
        return file

    async def recv_all(self, sock, nbytes):
        data = bytearray()
        while len(data) < nbytes:
            chunk = await self.loop.sock_recv(sock, 65536)
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def test_sock_recv_waits_for_data(self):
        a, b = self.pair()
        self.loop.call_later(0.02, b.send, b"later")
        self.assertEqual(self.run_coro(self.loop.sock_recv(a, 100)), b"later")

    def test_sock_recv_respects_the_size(self):
        a, b = self.pair()
        b.send(b"0123456789")
        self.assertEqual(self.run_coro(self.loop.sock_recv(a, 4)), b"0123")
        self.assertEqual(self.run_coro(self.loop.sock_recv(a, 100)), b"456789")

    def test_sock_recv_returns_empty_bytes_at_eof(self):
        a, b = self.pair()
        b.close()
        self.assertEqual(self.run_coro(self.loop.sock_recv(a, 100)), b"")

    def test_sock_recv_into(self):
        a, b = self.pair()
        buffer = bytearray(8)
        self.loop.call_soon(b.send, b"abc")
        self.assertEqual(self.run_coro(self.loop.sock_recv_into(a, buffer)), 3)
        self.assertEqual(buffer, b"abc\0\0\0\0\0")

    def test_sock_recv_into_memoryview_slice(self):
        a, b = self.pair()
        buffer = bytearray(b"........")
        b.send(b"xyz")
        nbytes = self.run_coro(self.loop.sock_recv_into(a, memoryview(buffer)[2:4]))
        self.assertEqual((nbytes, buffer), (2, bytearray(b"..xy....")))

    def test_cancelled_sock_recv_leaves_the_socket_usable(self):
        a, b = self.pair()

        async def cancel_then_receive():
            pending = self.loop.create_task(self.loop.sock_recv(a, 100))
            await asyncio.sleep(0.01)
            pending.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await pending
            self.loop.call_later(0.01, b.send, b"after cancel")
            return await self.loop.sock_recv(a, 100)

        self.assertEqual(self.run_coro(cancel_then_receive()), b"after cancel")
        self.assertFalse(self.loop.remove_reader(a))

    def test_sock_sendall_small(self):
        a, b = self.pair()
        self.assertIsNone(self.run_coro(self.loop.sock_sendall(a, b"hello")))
        self.assertEqual(self.run_coro(self.loop.sock_recv(b, 100)), b"hello")

    def test_sock_sendall_large_data_arrives_whole(self):
        a, b = self.pair(tcp_socket_pair)
        payload = os.urandom(4 << 20)

        async def exchange():
            receiving = self.loop.create_task(self.recv_all(b, len(payload)))
            await self.loop.sock_sendall(a, payload)
            return await receiving

        self.assertEqual(self.run_coro(exchange()), payload)

    def test_sock_sendall_accepts_memoryview_and_bytearray(self):
        a, b = self.pair()
        self.run_coro(self.loop.sock_sendall(a, bytearray(b"ab")))
        self.run_coro(self.loop.sock_sendall(a, memoryview(b"xcdx")[1:3]))
        self.assertEqual(self.run_coro(self.recv_all(b, 4)), b"abcd")

    def test_sock_sendall_to_a_closed_peer_fails(self):
        a, b = self.pair(tcp_socket_pair)
        b.close()

        async def send_until_error():
            while True:
                await self.loop.sock_sendall(a, b"x" * 65536)

        with self.assertRaises((BrokenPipeError, ConnectionResetError)):
            self.run_coro(send_until_error())

    def test_sock_connect_and_sock_accept(self):
        listener = self.listener()
        client = nonblocking(socket.socket())[0]
        self.addCleanup(client.close)

        async def connect_and_accept():
            accepting = self.loop.create_task(self.loop.sock_accept(listener))
            await self.loop.sock_connect(client, listener.getsockname())
            return await accepting

        conn, address = self.run_coro(connect_and_accept())
        self.addCleanup(conn.close)
        self.assertEqual(address, client.getsockname())
        self.assertEqual(conn.getpeername(), client.getsockname())
        self.assertEqual(conn.gettimeout(), 0, "accepted socket must be non-blocking")

    def test_sock_connect_resolves_a_host_name(self):
        listener = self.listener()
        client = nonblocking(socket.socket())[0]
        self.addCleanup(client.close)
        self.run_coro(self.loop.sock_connect(client, ("localhost", listener.getsockname()[1])))
        self.assertEqual(client.getpeername(), listener.getsockname())

    def test_sock_connect_ipv6(self):
        listener = self.listener("::1", socket.AF_INET6)
        client = nonblocking(socket.socket(socket.AF_INET6))[0]
        self.addCleanup(client.close)
        self.run_coro(self.loop.sock_connect(client, listener.getsockname()[:2]))
        self.assertEqual(client.getpeername()[:2], listener.getsockname()[:2])

    def test_sock_connect_refused(self):
        client = nonblocking(socket.socket())[0]
        self.addCleanup(client.close)
        with self.assertRaises(ConnectionRefusedError):
            self.run_coro(self.loop.sock_connect(client, ("127.0.0.1", closed_tcp_port())))

    def test_sock_accept_waits_for_a_client(self):
        listener = self.listener()
        client = socket.socket()
        self.addCleanup(client.close)
        self.loop.call_later(0.02, client.connect, listener.getsockname())
        conn, _ = self.run_coro(self.loop.sock_accept(listener))
        conn.close()

    def test_sock_recvfrom_and_sock_sendto(self):
        a, b = self.udp_pair()
        sent = self.run_coro(self.loop.sock_sendto(a, b"datagram", b.getsockname()))
        self.assertEqual(sent, len(b"datagram"))
        data, address = self.run_coro(self.loop.sock_recvfrom(b, 100))
        self.assertEqual((data, address), (b"datagram", a.getsockname()))

    def test_sock_recvfrom_waits_for_a_datagram(self):
        a, b = self.udp_pair()
        self.loop.call_later(0.02, a.sendto, b"later", b.getsockname())
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 100))[0], b"later")

    def test_sock_recvfrom_into(self):
        a, b = self.udp_pair()
        a.sendto(b"into buffer", b.getsockname())
        buffer = bytearray(32)
        nbytes, address = self.run_coro(self.loop.sock_recvfrom_into(b, buffer))
        self.assertEqual((buffer[:nbytes], address), (b"into buffer", a.getsockname()))

    def test_sock_recvfrom_into_with_nbytes(self):
        a, b = self.udp_pair()
        a.sendto(b"truncated datagram", b.getsockname())
        buffer = bytearray(32)
        nbytes, _ = self.run_coro(self.loop.sock_recvfrom_into(b, buffer, 9))
        self.assertEqual(buffer[:nbytes], b"truncated")

    def test_sock_sendfile(self):
        a, b = self.pair(tcp_socket_pair)
        content = os.urandom(300_000)
        file = self.data_file(content)

        async def send_and_receive():
            receiving = self.loop.create_task(self.recv_all(b, len(content)))
            sent = await self.loop.sock_sendfile(a, file)
            return sent, await receiving

        self.assertEqual(self.run_coro(send_and_receive()), (len(content), content))
        self.assertEqual(file.tell(), len(content))

    def test_sock_sendfile_offset_and_count(self):
        a, b = self.pair(tcp_socket_pair)
        file = self.data_file(b"0123456789")
        self.assertEqual(self.run_coro(self.loop.sock_sendfile(a, file, 2, 5)), 5)
        self.assertEqual(self.run_coro(self.recv_all(b, 5)), b"23456")
        self.assertEqual(file.tell(), 7)

    def test_cancelled_sock_sendfile_leaves_the_socket_usable(self):
        # The peer does not read: sock_sendfile waits for the socket to become
        # writable; cancelling it gives the socket back to the caller.
        a, b = self.pair(tcp_socket_pair)
        file = self.data_file(os.urandom(32 << 20))

        async def test():
            sending = self.loop.create_task(self.loop.sock_sendfile(a, file))
            await asyncio.sleep(0.1)
            self.assertFalse(sending.done())
            sending.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await sending
            b.send(b"still usable")
            self.assertEqual(await self.loop.sock_recv(a, 100), b"still usable")
            # The socket can be waited on for writing again.
            writable = self.loop.create_future()
            self.loop.add_writer(a, lambda: writable.done() or writable.set_result(None))
            try:
                while not writable.done():  # make room
                    self.assertTrue(await self.loop.sock_recv(b, 1 << 20))
                    await asyncio.sleep(0.01)
            finally:
                self.loop.remove_writer(a)
        self.run_coro(test())

    def test_sock_sendfile_to_a_peer_that_resets_raises(self):
        a, b = self.pair(tcp_socket_pair)
        file = self.data_file(os.urandom(32 << 20))

        async def test():
            sending = self.loop.create_task(self.loop.sock_sendfile(a, file))
            await asyncio.sleep(0.1)
            self.assertFalse(sending.done())
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            b.close()  # a reset
            with self.assertRaises((ConnectionResetError, BrokenPipeError)):
                await sending
            self.assertGreater(file.tell(), 0)
            self.assertLess(file.tell(), 32 << 20)
        self.run_coro(test())

    def test_sock_sendfile_refuses_text_files_and_datagram_sockets(self):
        a, _ = self.pair(tcp_socket_pair)
        with open(__file__) as text_file, self.assertRaises(ValueError):
            self.run_coro(self.loop.sock_sendfile(a, text_file))
        udp, _ = self.udp_pair()
        with self.assertRaises(ValueError):
            self.run_coro(self.loop.sock_sendfile(udp, self.data_file(b"x")))

    def test_blocking_sockets_are_refused_in_debug_mode(self):
        self.loop.set_debug(True)
        a, b = socket.socketpair()  # blocking
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        operations = {
            "sock_recv": (a, 1),
            "sock_recv_into": (a, bytearray(1)),
            "sock_recvfrom": (a, 1),
            "sock_recvfrom_into": (a, bytearray(1)),
            "sock_sendall": (a, b"x"),
            "sock_sendto": (a, b"x", None),
            "sock_connect": (a, ("127.0.0.1", 1)),
            "sock_accept": (a,),
            "sock_sendfile": (a, self.data_file(b"x")),
        }
        for name, args in operations.items():
            with self.subTest(operation=name):
                with self.assertRaisesRegex(ValueError, "the socket must be non-blocking"):
                    self.run_coro(getattr(self.loop, name)(*args))
