"""add_reader/add_writer and their removal, on socket pairs and pipes."""

import asyncio
import os
import re
import socket

from .loops import loop_tests
from .support import RecordingProtocol, nonblocking, pair_on_fd_number, wait_until

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class FdWatcherTests:
    def setUp(self):
        super().setUp()
        self.a, self.b = nonblocking(*socket.socketpair())
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)

    def fill_send_buffer(self, sock):
        """Send until the kernel takes no more; the socket is then not writable."""
        chunk = b"x" * 65536
        try:
            while True:
                sock.send(chunk)
        except BlockingIOError:
            pass

    def drain(self, sock):
        try:
            while sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass

    def test_reader_fires_when_data_arrives(self):
        fired = self.loop.create_future()
        self.loop.add_reader(self.a, lambda: fired.set_result(self.a.recv(100)))
        self.loop.call_later(0.01, self.b.send, b"ping")
        self.assertEqual(self.run_coro(fired), b"ping")
        self.assertTrue(self.loop.remove_reader(self.a))

    def test_reader_arguments_are_passed(self):
        fired = self.loop.create_future()
        self.loop.add_reader(self.a.fileno(), lambda *args: fired.done() or fired.set_result(args),
                             1, "two")
        self.b.send(b"x")
        self.assertEqual(self.run_coro(fired), (1, "two"))
        self.loop.remove_reader(self.a.fileno())

    def test_remove_reader_reports_whether_one_was_registered(self):
        self.assertFalse(self.loop.remove_reader(self.a))
        self.loop.add_reader(self.a, print)
        self.assertTrue(self.loop.remove_reader(self.a))
        self.assertFalse(self.loop.remove_reader(self.a))

    def test_remove_writer_reports_whether_one_was_registered(self):
        self.assertFalse(self.loop.remove_writer(self.a))
        self.loop.add_writer(self.a, print)
        self.assertTrue(self.loop.remove_writer(self.a))
        self.assertFalse(self.loop.remove_writer(self.a))

    def test_socket_object_and_fd_number_name_the_same_watcher(self):
        self.loop.add_reader(self.a, print)
        self.assertTrue(self.loop.remove_reader(self.a.fileno()))

    def test_removed_reader_does_not_fire(self):
        calls = []
        self.loop.add_reader(self.a, calls.append, 1)
        self.loop.remove_reader(self.a)
        self.b.send(b"x")
        self.loop.run_until_complete(asyncio.sleep(0.02))
        self.assertEqual(calls, [])

    def test_adding_a_reader_again_replaces_the_callback(self):
        calls = []
        self.loop.add_reader(self.a, calls.append, "old")
        self.loop.add_reader(self.a, lambda: (calls.append("new"), self.loop.remove_reader(self.a)))
        self.b.send(b"x")
        self.run_coro(wait_until(lambda: calls))
        self.run_briefly()
        self.assertEqual(calls, ["new"])

    def test_reader_is_level_triggered(self):
        calls = []

        def unread():  # leaves the data in the socket
            calls.append(1)
            if len(calls) == 3:
                self.loop.remove_reader(self.a)

        self.loop.add_reader(self.a, unread)
        self.b.send(b"stays unread")
        self.run_coro(wait_until(lambda: len(calls) == 3))
        self.run_briefly()
        self.assertEqual(len(calls), 3)

    def test_reader_that_removes_itself_fires_once(self):
        calls = []
        self.loop.add_reader(self.a, lambda: (calls.append(1), self.loop.remove_reader(self.a)))
        self.b.send(b"x")
        self.loop.run_until_complete(asyncio.sleep(0.02))
        self.assertEqual(calls, [1])

    def test_reader_fires_on_end_of_file(self):
        fired = self.loop.create_future()
        self.loop.add_reader(self.a, lambda: fired.done() or fired.set_result(self.a.recv(100)))
        self.b.close()
        self.assertEqual(self.run_coro(fired), b"")
        self.loop.remove_reader(self.a)

    def test_writer_fires_when_writable(self):
        fired = self.loop.create_future()
        self.loop.add_writer(self.a, lambda: fired.done() or fired.set_result("writable"))
        self.assertEqual(self.run_coro(fired), "writable")
        self.assertTrue(self.loop.remove_writer(self.a))

    def test_writer_waits_until_the_peer_reads(self):
        self.fill_send_buffer(self.a)
        calls = []
        self.loop.add_writer(self.a, lambda: (calls.append(1), self.loop.remove_writer(self.a)))
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.assertEqual(calls, [])
        self.drain(self.b)
        self.run_coro(wait_until(lambda: calls, what="the writer"))

    def test_reader_and_writer_on_one_fd_are_independent(self):
        reads, writes = [], []
        self.loop.add_reader(self.a, lambda: reads.append(self.a.recv(100)))
        self.loop.add_writer(self.a, writes.append, 1)
        self.assertTrue(self.loop.remove_writer(self.a))
        writes.clear()
        self.b.send(b"still reading")
        self.run_coro(wait_until(lambda: reads))
        self.assertEqual(reads, [b"still reading"])
        self.assertEqual(writes, [])
        self.assertTrue(self.loop.remove_reader(self.a))

    def test_exception_in_reader_reaches_handler_and_reader_stays(self):
        calls = []

        def failing():
            calls.append(1)
            if len(calls) == 2:
                self.loop.remove_reader(self.a)
            raise ValueError("reader failed")

        self.loop.add_reader(self.a, failing)
        self.b.send(b"x")
        self.run_coro(wait_until(lambda: len(calls) == 2))
        self.assertEqual(len(self.loop_errors), 2)
        self.assertIsInstance(self.loop_errors[0]["exception"], ValueError)
        self.loop_errors.clear()

    def test_pipe(self):
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        self.addCleanup(os.close, write_fd)
        fired = self.loop.create_future()
        self.loop.add_reader(read_fd, lambda: fired.set_result(os.read(read_fd, 100)))
        os.write(write_fd, b"through a pipe")
        self.assertEqual(self.run_coro(fired), b"through a pipe")
        self.assertTrue(self.loop.remove_reader(read_fd))

    def test_many_fds_at_once(self):
        pairs = [nonblocking(*socket.socketpair()) for _ in range(50)]
        for pair in pairs:
            self.addCleanup(pair[0].close)
            self.addCleanup(pair[1].close)
        received = {}
        for i, (reader, _) in enumerate(pairs):
            self.loop.add_reader(reader, lambda i=i, sock=reader: received.setdefault(i, sock.recv(10)))
        for i, (_, writer) in enumerate(pairs):
            writer.send(str(i).encode())
        self.run_coro(wait_until(lambda: len(received) == len(pairs)))
        for i, (reader, _) in enumerate(pairs):
            self.assertTrue(self.loop.remove_reader(reader))
        self.assertEqual(received, {i: str(i).encode() for i in range(len(pairs))})

    def test_invalid_file_objects_are_refused(self):
        with self.assertRaises(ValueError):
            self.loop.add_reader(-1, print)
        with self.assertRaises(ValueError):
            self.loop.add_writer("not a file", print)

    def test_closed_loop(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.add_reader(self.a, print)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.add_writer(self.a, print)
        self.assertFalse(self.loop.remove_reader(self.a))
        self.assertFalse(self.loop.remove_writer(self.a))

    def test_fd_owned_by_a_transport_is_refused(self):
        async def attach():
            return await self.loop.create_connection(RecordingProtocol, sock=self.a)
        transport, protocol = self.run_coro(attach())
        for add in (self.loop.add_reader, self.loop.add_writer):
            with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                add(self.a.fileno(), print)
        for remove in (self.loop.remove_reader, self.loop.remove_writer):
            for fd in (self.a, self.a.fileno()):
                with self.assertRaisesRegex(
                        RuntimeError, f"^File descriptor {re.escape(repr(fd))} is used by "
                                      f"transport {re.escape(repr(transport))}$"):
                    remove(fd)
        transport.close()  # a closing transport's fd no longer counts
        self.assertFalse(self.loop.remove_reader(self.a))
        self.run_coro(protocol.lost)

    def test_sock_ops_on_a_socket_a_transport_owns_are_refused(self):
        async def test():
            transport, protocol = await self.loop.create_connection(RecordingProtocol,
                                                                    sock=self.a)
            with self.assertRaisesRegex(RuntimeError, f"^File descriptor {self.a.fileno()} "
                                                      f"is used by transport"):
                await self.loop.sock_recv(self.a, 10)
            transport.close()
            await protocol.lost
        self.run_coro(test())

    def test_reused_number_of_a_closed_sock_is_another_socket(self):
        # The user closed the socket it gave a transport and the number now
        # belongs to another socket. tapio compares the sockets themselves:
        # the new one is free to watch. asyncio goes by the number and still
        # takes it for the transport's.
        async def test():
            transport, protocol = await self.loop.create_connection(RecordingProtocol,
                                                                    sock=self.a)
            fd = self.a.fileno()
            self.a.close()
            first, second = pair_on_fd_number(fd)
            self.addCleanup(first.close)
            self.addCleanup(second.close)
            if self.loop_name == "tapio":
                self.loop.add_reader(first, print)
                self.assertTrue(self.loop.remove_reader(first))
            else:
                with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                    self.loop.add_reader(first, print)
            transport.close()
            await protocol.lost
            os.fstat(fd)
        self.run_coro(test())

    def test_fd_owned_by_a_datagram_transport_is_refused(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))

        async def attach():
            return await self.loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                            sock=sock)
        transport, _ = self.run_coro(attach())
        with self.assertRaisesRegex(RuntimeError, "is used by transport"):
            self.loop.add_reader(sock, print)
        with self.assertRaisesRegex(RuntimeError, "is used by transport"):
            self.loop.remove_writer(sock.fileno())
        transport.close()
        self.run_briefly()
