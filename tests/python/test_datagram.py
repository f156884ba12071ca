"""Datagram endpoints: loop.create_datagram_endpoint over UDP (IPv4, IPv6)
and Unix datagram sockets, the transport's flow control and closing, the
argument checks asyncio makes, and the loop's sock_sendto/sock_recvfrom/
sock_recvfrom_into.

Where asyncio's behaviour depends on the Python version (empty datagrams,
the per-datagram header counted in the write buffer, reuse_address), the
tests expect what the running Python's asyncio does, on both loops."""

import asyncio
import errno
import os
import shutil
import socket
import sys
import tempfile
from asyncio import selector_events

from .loops import loop_tests
from .support import ExhaustedFds, nonblocking, pair_on_fd_number, wait_until

LOOPS = ("asyncio", "tapio")

# The largest UDP payload over IPv4: 65,535 - 8 (UDP header) - 20 (IP header).
MAX_UDP_IPV4_PAYLOAD = 65_507

# asyncio's transport sends an empty datagram for sendto(b"") from Python
# 3.13 on (gh-113812, not backported); before, it sends nothing.
SENDS_EMPTY_DATAGRAMS = sys.version_info >= (3, 13)

# What asyncio's datagram transport adds to get_write_buffer_size() for each
# queued datagram (newer versions count a header; 3.11 counts none).
# From 3.13 on, asyncio counts a UDP header per queued datagram.
DATAGRAM_HEADER_SIZE = 8 if sys.version_info >= (3, 13) else 0

ASYNCIO_TRANSPORT_IS_DATAGRAM_TRANSPORT = issubclass(
    selector_events._SelectorDatagramTransport, asyncio.DatagramTransport)
# Python 3.11.2's asyncio datagram transport cannot pause reading (its
# pause_reading is ReadTransport's, raising NotImplementedError); later
# versions can, and tapio follows the running asyncio.
ASYNCIO_DATAGRAM_PAUSES_READING = (
    selector_events._SelectorDatagramTransport.pause_reading
    is not asyncio.ReadTransport.pause_reading)

DEFAULT_TIMEOUT = 5.0


def have_ipv6_loopback():
    """Whether a UDP socket can be bound to ::1 on this machine."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def closed_udp_port(host="127.0.0.1"):
    """A UDP port nothing is bound to (it was bound a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def numbered(index, size=16):
    """A datagram of size bytes that starts with its 8-digit index."""
    head = b"%08d" % index
    return head + b"." * (size - len(head))


class DatagramRecorder(asyncio.DatagramProtocol):
    """Records callbacks in events, datagrams as (data, addr) and the
    exceptions error_received got; made/lost are futures (lost resolves with
    connection_lost's argument; a second call shows up in events)."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.events = []
        self.datagrams = []
        self.errors = []
        self.transport = None
        self.made = self.loop.create_future()
        self.lost = self.loop.create_future()
        self._waiters = []  # (predicate, future)

    def _wake(self):
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    def connection_made(self, transport):
        self.events.append("connection_made")
        self.transport = transport
        self.made.set_result(None)

    def datagram_received(self, data, addr):
        self.events.append("datagram_received")
        self.datagrams.append((data, addr))
        self._wake()

    def error_received(self, exc):
        self.events.append("error_received")
        self.errors.append(exc)
        self._wake()

    def pause_writing(self):
        self.events.append("pause_writing")
        self._wake()

    def resume_writing(self):
        self.events.append("resume_writing")
        self._wake()

    def connection_lost(self, exc):
        self.events.append("connection_lost")
        if not self.lost.done():
            self.lost.set_result(exc)
        self._wake()

    async def wait_for(self, predicate, what, timeout=DEFAULT_TIMEOUT):
        if predicate():
            return
        future = self.loop.create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None
        finally:
            self._waiters.remove(entry)

    async def received(self, count, timeout=DEFAULT_TIMEOUT):
        """Wait for count datagrams in all; return the first count of them."""
        await self.wait_for(lambda: len(self.datagrams) >= count,
                            f"{count} datagrams (have {len(self.datagrams)})", timeout)
        return self.datagrams[:count]

    async def error(self, timeout=DEFAULT_TIMEOUT):
        await self.wait_for(lambda: self.errors, "error_received", timeout)
        return self.errors[0]


class EchoDatagramProtocol(DatagramRecorder):
    """Sends every datagram back where it came from."""

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


class RaisingDatagramProtocol(DatagramRecorder):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if data == b"boom":
            raise RuntimeError("boom")


class DatagramCases:
    """Helpers of the datagram tests (a mixin for LoopTestCase)."""

    def temp_dir(self):
        path = tempfile.mkdtemp(prefix="tapio-test-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def require_ipv6(self):
        if not have_ipv6_loopback():
            self.skipTest("this machine has no IPv6 loopback address (::1)")

    def plain_socket(self, family=socket.AF_INET, address=("127.0.0.1", 0)):
        """A non-blocking datagram socket bound to address (None: unbound),
        closed when the test ends."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.setblocking(False)
        if address is not None:
            sock.bind(address)
        return sock

    async def endpoint(self, protocol_class=DatagramRecorder, **kwargs):
        """create_datagram_endpoint; the endpoint is aborted when the test ends."""
        transport, protocol = await self.loop.create_datagram_endpoint(protocol_class, **kwargs)
        self.addCleanup(self._abort, transport, protocol)
        return transport, protocol

    def _abort(self, transport, protocol):
        if self.loop.is_closed():
            return
        if not protocol.lost.done():
            transport.abort()
        self.run_briefly()

    async def recvfrom(self, sock, size=65536, timeout=DEFAULT_TIMEOUT):
        return await asyncio.wait_for(self.loop.sock_recvfrom(sock, size), timeout)

    def assert_nothing_to_read(self, sock):
        with self.assertRaises(BlockingIOError):
            sock.recvfrom(65536)

    def unwritable_pair(self):
        """(sock, peer): a connected Unix datagram socket pair whose sock
        soon stops being writable, as its SO_SNDBUF is as small as the kernel
        allows and nobody reads peer until the test does. peer is bound to a
        path: asyncio sends with send() only when the peer has a name."""
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)  # after the endpoint's cleanup (LIFO)
        self.addCleanup(peer.close)
        peer.bind(os.path.join(self.temp_dir(), "peer.sock"))
        peer.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        return sock, peer

    def fill_until_buffered(self, transport, size=1000, limit=10_000):
        """Send numbered datagrams until the transport has to queue one;
        return them all (the last is the first one queued)."""
        sent = []
        while transport.get_write_buffer_size() == 0:
            self.assertLess(len(sent), limit, "the socket never stopped being writable")
            sent.append(numbered(len(sent), size))
            transport.sendto(sent[-1])
        return sent

    def left_after_sending(self, queued):
        """get_write_buffer_size() once `queued` queued datagrams went out:
        0, but stock asyncio 3.13.0 adds a header's size per queued datagram
        and never takes it off again (fixed in 3.13.1)."""
        if self.loop_name == "asyncio" and sys.version_info[:3] == (3, 13, 0):
            return queued * DATAGRAM_HEADER_SIZE
        return 0

    def drain(self, sock):
        """Every datagram waiting on sock, without waiting for more."""
        datagrams = []
        while True:
            try:
                datagrams.append(sock.recv(65536))
            except BlockingIOError:
                return datagrams

    def start_draining(self, sock, into):
        """Read sock from the loop from now on, appending datagrams to into."""
        self.loop.add_reader(sock, lambda: into.extend(self.drain(sock)))
        self.addCleanup(self.loop.remove_reader, sock)


@loop_tests(LOOPS)
class DatagramEndpointTests(DatagramCases):

    # ---- unconnected and connected UDP endpoints --------------------------

    def test_unconnected_endpoint_receives_and_replies(self):
        async def test():
            transport, protocol = await self.endpoint(EchoDatagramProtocol,
                                                      local_addr=("127.0.0.1", 0))
            address = transport.get_extra_info("sockname")
            self.assertEqual(address[0], "127.0.0.1")
            self.assertNotEqual(address[1], 0)
            self.assertIsNone(transport.get_extra_info("peername"))
            client = self.plain_socket()
            client.sendto(b"ping", address)
            [(data, addr)] = await protocol.received(1)
            self.assertIs(type(data), bytes)
            self.assertEqual((data, addr), (b"ping", client.getsockname()))
            self.assertEqual(await self.recvfrom(client), (b"ping", address))
        self.run_coro(test())

    def test_a_connect_that_fails_raises_and_leaves_no_socket(self):
        # Connecting a UDP socket to a broadcast address without
        # allow_broadcast is refused by the kernel (EACCES).
        fds = len(os.listdir("/proc/self/fd"))

        async def test():
            with self.assertRaises(PermissionError) as caught:
                await self.loop.create_datagram_endpoint(
                    DatagramRecorder, remote_addr=("255.255.255.255", 9))
            self.assertEqual(caught.exception.errno, errno.EACCES)
            transport, _ = await self.loop.create_datagram_endpoint(
                DatagramRecorder, local_addr=("127.0.0.1", 0),
                remote_addr=("255.255.255.255", 9), allow_broadcast=True)
            self.assertIsNone(transport.get_extra_info("peername"))
            transport.close()
        self.run_coro(test())
        self.assertEqual(len(os.listdir("/proc/self/fd")), fds)

    def test_connection_made_runs_before_the_endpoint_is_returned(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            self.assertEqual(protocol.events, ["connection_made"])
            self.assertIs(protocol.transport, transport)
            self.assertIs(transport.get_protocol(), protocol)
            self.assertFalse(transport.is_closing())
        self.run_coro(test())

    def test_datagrams_from_several_senders_carry_their_addresses(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            address = transport.get_extra_info("sockname")
            senders = [self.plain_socket() for _ in range(3)]
            for index, sender in enumerate(senders):
                sender.sendto(b"from %d" % index, address)
            received = await protocol.received(3)
            expected = [(b"from %d" % i, s.getsockname()) for i, s in enumerate(senders)]
            self.assertEqual(sorted(received), sorted(expected))
        self.run_coro(test())

    def test_connected_endpoint(self):
        async def test():
            peer = self.plain_socket()
            transport, protocol = await self.endpoint(remote_addr=peer.getsockname())
            sockname = transport.get_extra_info("sockname")
            self.assertEqual(transport.get_extra_info("peername"), peer.getsockname())
            self.assertEqual(sockname[0], "127.0.0.1")
            sock = transport.get_extra_info("socket")
            self.assertEqual((sock.family, sock.type), (socket.AF_INET, socket.SOCK_DGRAM))
            self.assertEqual(sock.getsockname(), sockname)
            self.assertEqual(sock.getpeername(), peer.getsockname())

            transport.sendto(b"no address")
            transport.sendto(b"its own address", peer.getsockname())
            self.assertEqual(await self.recvfrom(peer), (b"no address", sockname))
            self.assertEqual(await self.recvfrom(peer), (b"its own address", sockname))

            peer.sendto(b"reply", sockname)
            self.assertEqual(await protocol.received(1), [(b"reply", peer.getsockname())])
        self.run_coro(test())

    def test_connected_endpoint_refuses_another_address(self):
        async def test():
            peer = self.plain_socket()
            other = self.plain_socket()
            transport, _ = await self.endpoint(remote_addr=peer.getsockname())
            with self.assertRaises(ValueError) as caught:
                transport.sendto(b"x", other.getsockname())
            self.assertEqual(str(caught.exception),
                             f"Invalid address: must be None or {peer.getsockname()}")
            transport.sendto(b"after")
            self.assertEqual((await self.recvfrom(peer))[0], b"after")
            self.assert_nothing_to_read(other)
        self.run_coro(test())

    def test_connected_endpoint_ignores_other_senders(self):
        async def test():
            peer = self.plain_socket()
            stranger = self.plain_socket()
            transport, protocol = await self.endpoint(remote_addr=peer.getsockname())
            sockname = transport.get_extra_info("sockname")
            stranger.sendto(b"stranger", sockname)
            peer.sendto(b"peer", sockname)
            self.assertEqual(await protocol.received(1), [(b"peer", peer.getsockname())])
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.datagrams, [(b"peer", peer.getsockname())])
        self.run_coro(test())

    def test_local_and_remote_address(self):
        async def test():
            peer = self.plain_socket()
            local = ("127.0.0.1", closed_udp_port())
            transport, _ = await self.endpoint(local_addr=local, remote_addr=peer.getsockname())
            self.assertEqual(transport.get_extra_info("sockname"), local)
            self.assertEqual(transport.get_extra_info("peername"), peer.getsockname())
            transport.sendto(b"x")
            self.assertEqual(await self.recvfrom(peer), (b"x", local))
        self.run_coro(test())

    def test_endpoint_with_a_given_socket(self):
        async def test():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sock.close)
            sock.bind(("127.0.0.1", 0))
            transport, protocol = await self.endpoint(EchoDatagramProtocol, sock=sock)
            self.assertEqual(sock.gettimeout(), 0, "the socket is made non-blocking")
            self.assertEqual(transport.get_extra_info("sockname"), sock.getsockname())
            self.assertEqual(transport.get_extra_info("socket").fileno(), sock.fileno())
            client = self.plain_socket()
            client.sendto(b"given", sock.getsockname())
            self.assertEqual(await self.recvfrom(client), (b"given", sock.getsockname()))
        self.run_coro(test())

    def test_sendto_after_the_user_closed_its_sock_spares_the_reused_fd(self):
        # asyncio sends through the user's socket object: once the user has
        # closed it, sendto() gives error_received(EBADF); no datagram goes
        # to the socket that got the number back, and close() leaves it open.
        async def test():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            transport, protocol = await self.endpoint(sock=sock)
            fd = sock.fileno()
            sock.close()
            first, second = pair_on_fd_number(fd)
            self.addCleanup(first.close)
            self.addCleanup(second.close)
            client = self.plain_socket()
            transport.sendto(b"not for the new socket", client.getsockname())
            self.assertEqual([type(e) for e in protocol.errors], [OSError])
            self.assertEqual(protocol.errors[0].errno, errno.EBADF)
            transport.close()
            await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT)
            self.assertEqual(first.fileno(), fd)
            nonblocking(first, second, client)
            for s in (first, second, client):
                with self.assertRaises(BlockingIOError):
                    s.recv(100)
            first.sendall(b"still mine")
            self.assertEqual(second.recv(100), b"still mine")
        self.run_coro(test())

    def test_users_sock_is_closed_with_the_endpoint(self):
        async def test():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sock.close)
            sock.bind(("127.0.0.1", 0))
            transport, protocol = await self.endpoint(sock=sock)
            transport.close()
            await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT)
            self.assertEqual(sock.fileno(), -1)
        self.run_coro(test())

    def test_transport_classes(self):
        async def test():
            transport, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            self.assertIsInstance(transport, asyncio.BaseTransport)
            self.assertIsInstance(transport, asyncio.Transport)
            # asyncio's own transport derives from DatagramTransport only in
            # newer Pythons (not 3.11); tapio's always does (issue 4).
            if self.loop_name == "tapio" or ASYNCIO_TRANSPORT_IS_DATAGRAM_TRANSPORT:
                self.assertIsInstance(transport, asyncio.DatagramTransport)
            else:
                self.assertNotIsInstance(transport, asyncio.DatagramTransport)
        self.run_coro(test())

    def test_exception_in_datagram_received_is_reported_and_reading_goes_on(self):
        async def test():
            transport, protocol = await self.endpoint(RaisingDatagramProtocol,
                                                      local_addr=("127.0.0.1", 0))
            client = self.plain_socket()
            client.sendto(b"boom", transport.get_extra_info("sockname"))
            await protocol.received(1)
            await wait_until(lambda: self.loop_errors, what="the exception handler")
            client.sendto(b"after", transport.get_extra_info("sockname"))
            self.assertEqual((await protocol.received(2))[1][0], b"after")
            self.assertFalse(transport.is_closing())
        self.run_coro(test())
        [context] = self.loop_errors
        self.assertIsInstance(context.get("exception"), RuntimeError)
        self.loop_errors.clear()

    # ---- pausing reading ----------------------------------------------------

    def test_pause_reading_holds_datagrams_until_resumed(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            address = transport.get_extra_info("sockname")
            client = self.plain_socket()
            if not ASYNCIO_DATAGRAM_PAUSES_READING:
                for method in (transport.pause_reading, transport.resume_reading,
                               transport.is_reading):
                    with self.assertRaises(NotImplementedError):
                        method()
                return
            self.assertTrue(transport.is_reading())
            transport.pause_reading()
            transport.pause_reading()
            self.assertFalse(transport.is_reading())
            client.sendto(b"one", address)
            client.sendto(b"two", address)
            await asyncio.sleep(0.05)
            self.assertEqual(protocol.datagrams, [])
            transport.resume_reading()
            transport.resume_reading()
            self.assertTrue(transport.is_reading())
            received = await protocol.received(2)
            self.assertEqual([data for data, _ in received], [b"one", b"two"])
            transport.close()
            self.assertFalse(transport.is_reading())
            transport.resume_reading()
            self.assertFalse(transport.is_reading())
        self.run_coro(test())

    # ---- addresses sendto cannot use ----------------------------------------

    def test_sendto_an_address_of_the_wrong_type_ends_the_endpoint(self):
        # asyncio hands the address to socket.sendto; its TypeError is fatal
        # for the endpoint: reported, then connection_lost(exc).
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            self.assertIsNone(transport.sendto(b"x", 42))
            self.assertTrue(transport.is_closing())
            exc = await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT)
            self.assertIsInstance(exc, TypeError)
            return exc
        exc = self.run_coro(test())
        [context] = self.loop_errors
        self.assertIs(context["exception"], exc)
        self.assertEqual(context["message"], "Fatal write error on datagram transport")
        self.loop_errors.clear()

    def test_sendto_without_an_address_when_unconnected_ends_the_endpoint(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            transport.sendto(b"x")
            self.assertIsInstance(await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT),
                                  TypeError)
        self.run_coro(test())
        self.assertEqual(len(self.loop_errors), 1)
        self.loop_errors.clear()

    def test_sendto_an_address_the_socket_refuses_goes_to_error_received(self):
        # An OSError from the address (a Unix path too long) is a send error.
        async def test():
            path = os.path.join(self.temp_dir(), "e.sock")
            transport, protocol = await self.endpoint(family=socket.AF_UNIX, local_addr=path)
            transport.sendto(b"x", "/" + "x" * 200)
            self.assertIsInstance(await protocol.error(), OSError)
            self.assertFalse(transport.is_closing())
        self.run_coro(test())

    # ---- IPv6 --------------------------------------------------------------

    def test_ipv6_unconnected_endpoint(self):
        self.require_ipv6()

        async def test():
            transport, protocol = await self.endpoint(EchoDatagramProtocol, local_addr=("::1", 0))
            address = transport.get_extra_info("sockname")
            self.assertEqual(len(address), 4)
            self.assertEqual(address[0], "::1")
            self.assertEqual(transport.get_extra_info("socket").family, socket.AF_INET6)
            client = self.plain_socket(socket.AF_INET6, ("::1", 0))
            client.sendto(b"six", address)
            [(data, addr)] = await protocol.received(1)
            self.assertEqual(len(addr), 4)
            self.assertEqual((data, addr), (b"six", client.getsockname()))
            self.assertEqual(await self.recvfrom(client), (b"six", address))
        self.run_coro(test())

    def test_ipv6_sendto_accepts_a_2_tuple(self):
        self.require_ipv6()

        async def test():
            transport, _ = await self.endpoint(local_addr=("::1", 0))
            client = self.plain_socket(socket.AF_INET6, ("::1", 0))
            transport.sendto(b"short address", client.getsockname()[:2])
            self.assertEqual(await self.recvfrom(client),
                             (b"short address", transport.get_extra_info("sockname")))
        self.run_coro(test())

    def test_ipv6_connected_endpoint(self):
        self.require_ipv6()

        async def test():
            peer = self.plain_socket(socket.AF_INET6, ("::1", 0))
            transport, protocol = await self.endpoint(remote_addr=peer.getsockname()[:2])
            sockname = transport.get_extra_info("sockname")
            self.assertEqual(transport.get_extra_info("peername"), peer.getsockname())
            self.assertEqual(len(sockname), 4)
            transport.sendto(b"connected six")
            self.assertEqual(await self.recvfrom(peer), (b"connected six", sockname))
            # The remote address kept is the resolved one, a 4-tuple.
            transport.sendto(b"4-tuple", peer.getsockname())
            self.assertEqual((await self.recvfrom(peer))[0], b"4-tuple")
            with self.assertRaises(ValueError):
                transport.sendto(b"2-tuple", peer.getsockname()[:2])
            peer.sendto(b"back", sockname)
            self.assertEqual(await protocol.received(1), [(b"back", peer.getsockname())])
        self.run_coro(test())

    # ---- Unix datagram sockets ---------------------------------------------

    def test_unix_unconnected_endpoint(self):
        directory = self.temp_dir()
        path = os.path.join(directory, "endpoint.sock")

        async def test():
            transport, protocol = await self.endpoint(EchoDatagramProtocol,
                                                      family=socket.AF_UNIX, local_addr=path)
            self.assertEqual(transport.get_extra_info("sockname"), path)
            self.assertIsNone(transport.get_extra_info("peername"))
            self.assertEqual(transport.get_extra_info("socket").family, socket.AF_UNIX)
            client_path = os.path.join(directory, "client.sock")
            client = self.plain_socket(socket.AF_UNIX, client_path)
            client.sendto(b"unix", path)
            self.assertEqual(await protocol.received(1), [(b"unix", client_path)])
            self.assertEqual(await self.recvfrom(client), (b"unix", path))
        self.run_coro(test())

    def test_unix_datagram_from_an_unbound_socket(self):
        directory = self.temp_dir()
        path = os.path.join(directory, "endpoint.sock")
        reference = self.plain_socket(socket.AF_UNIX, os.path.join(directory, "reference.sock"))
        unbound = self.plain_socket(socket.AF_UNIX, None)
        unbound.sendto(b"ref", reference.getsockname())
        _, expected = reference.recvfrom(100)  # the address the socket module gives

        async def test():
            _, protocol = await self.endpoint(family=socket.AF_UNIX, local_addr=path)
            unbound.sendto(b"anonymous", path)
            self.assertEqual(await protocol.received(1), [(b"anonymous", expected)])
        self.run_coro(test())

    def test_unix_endpoint_answers_autobound_and_abstract_senders(self):
        # An autobound socket's address is an abstract name (bytes with a
        # leading NUL): the endpoint must be able to reply to it, and to an
        # abstract name given as str.
        directory = self.temp_dir()
        path = os.path.join(directory, "endpoint.sock")
        autobound = self.plain_socket(socket.AF_UNIX, "")
        abstract = self.plain_socket(socket.AF_UNIX, f"\0tapio-test-{os.getpid()}-{id(self)}")

        async def test():
            transport, protocol = await self.endpoint(family=socket.AF_UNIX, local_addr=path)
            autobound.sendto(b"who", path)
            [(_, sender)] = await protocol.received(1)
            self.assertEqual(sender, autobound.getsockname())
            transport.sendto(b"you", sender)
            self.assertEqual((await self.recvfrom(autobound))[0], b"you")
            transport.sendto(b"named", abstract.getsockname().decode())
            self.assertEqual((await self.recvfrom(abstract))[0], b"named")
        self.run_coro(test())

    def test_unix_connected_endpoint(self):
        directory = self.temp_dir()
        path = os.path.join(directory, "endpoint.sock")
        peer_path = os.path.join(directory, "peer.sock")
        peer = self.plain_socket(socket.AF_UNIX, peer_path)

        async def test():
            transport, protocol = await self.endpoint(family=socket.AF_UNIX, local_addr=path,
                                                      remote_addr=peer_path)
            self.assertEqual(transport.get_extra_info("sockname"), path)
            self.assertEqual(transport.get_extra_info("peername"), peer_path)
            transport.sendto(b"to peer")
            self.assertEqual(await self.recvfrom(peer), (b"to peer", path))
            with self.assertRaises(ValueError):
                transport.sendto(b"x", os.path.join(directory, "other.sock"))
            peer.sendto(b"to endpoint", path)
            self.assertEqual(await protocol.received(1), [(b"to endpoint", peer_path)])
        self.run_coro(test())

    def test_unix_connected_endpoint_without_a_local_address(self):
        peer_path = os.path.join(self.temp_dir(), "peer.sock")
        peer = self.plain_socket(socket.AF_UNIX, peer_path)

        async def test():
            transport, _ = await self.endpoint(family=socket.AF_UNIX, remote_addr=peer_path)
            self.assertEqual(transport.get_extra_info("peername"), peer_path)
            self.assertEqual(transport.get_extra_info("sockname"), "")
            transport.sendto(b"nameless")
            self.assertEqual((await self.recvfrom(peer))[0], b"nameless")
        self.run_coro(test())

    def test_unix_stale_socket_file_is_replaced(self):
        directory = self.temp_dir()
        path = os.path.join(directory, "endpoint.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stale:
            stale.bind(path)  # the file stays behind
        self.assertTrue(os.path.exists(path))

        async def test():
            _, protocol = await self.endpoint(family=socket.AF_UNIX, local_addr=path)
            client = self.plain_socket(socket.AF_UNIX, os.path.join(directory, "client.sock"))
            client.sendto(b"fresh", path)
            self.assertEqual((await protocol.received(1))[0][0], b"fresh")
        self.run_coro(test())

    def test_unix_regular_file_is_not_replaced(self):
        path = os.path.join(self.temp_dir(), "not-a-socket")
        with open(path, "w") as file:
            file.write("keep me")

        async def test():
            with self.assertRaises(OSError) as caught:
                await self.loop.create_datagram_endpoint(DatagramRecorder, family=socket.AF_UNIX,
                                                         local_addr=path)
            self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.run_coro(test())
        with open(path) as file:
            self.assertEqual(file.read(), "keep me")

    # ---- sizes -------------------------------------------------------------

    def test_largest_udp_datagram_both_ways(self):
        payload = os.urandom(MAX_UDP_IPV4_PAYLOAD)

        async def test():
            transport, protocol = await self.endpoint(EchoDatagramProtocol,
                                                      local_addr=("127.0.0.1", 0))
            client = self.plain_socket()
            client.sendto(payload, transport.get_extra_info("sockname"))
            [(data, addr)] = await protocol.received(1)
            self.assertEqual((len(data), addr), (len(payload), client.getsockname()))
            self.assertEqual(data, payload)
            data, _ = await self.recvfrom(client, 65536)
            self.assertEqual(len(data), len(payload))
            self.assertEqual(data, payload)
        self.run_coro(test())

    def test_too_large_datagram_goes_to_error_received(self):
        async def test():
            client = self.plain_socket()
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            transport.sendto(b"x" * (MAX_UDP_IPV4_PAYLOAD + 1), client.getsockname())
            exc = await protocol.error()
            self.assertIsInstance(exc, OSError)
            self.assertEqual(exc.errno, errno.EMSGSIZE)
            self.assertFalse(transport.is_closing())
            transport.sendto(b"still open", client.getsockname())
            self.assertEqual((await self.recvfrom(client))[0], b"still open")
        self.run_coro(test())

    def test_empty_datagram_is_received(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            client = self.plain_socket()
            client.sendto(b"", transport.get_extra_info("sockname"))
            self.assertEqual(await protocol.received(1), [(b"", client.getsockname())])
        self.run_coro(test())

    def test_sendto_empty_bytes(self):
        # Before Python 3.13 asyncio's transport sends nothing for b"".
        async def test():
            transport, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            client = self.plain_socket()
            transport.sendto(b"", client.getsockname())
            transport.sendto(b"marker", client.getsockname())
            expected = [b"", b"marker"] if SENDS_EMPTY_DATAGRAMS else [b"marker"]
            received = [(await self.recvfrom(client))[0] for _ in expected]
            self.assertEqual(received, expected)
            self.assert_nothing_to_read(client)
        self.run_coro(test())

    def test_sendto_bytearray_and_memoryview(self):
        async def test():
            transport, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            client = self.plain_socket()
            transport.sendto(bytearray(b"array"), client.getsockname())
            transport.sendto(memoryview(b"--view--")[2:6], client.getsockname())
            self.assertEqual((await self.recvfrom(client))[0], b"array")
            self.assertEqual((await self.recvfrom(client))[0], b"view")
        self.run_coro(test())

    def test_sendto_refuses_other_types(self):
        async def test():
            transport, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            with self.assertRaises(TypeError) as caught:
                transport.sendto("text", ("127.0.0.1", 9))
            self.assertEqual(str(caught.exception),
                             "data argument must be a bytes-like object, not 'str'")
        self.run_coro(test())

    # ---- many datagrams ----------------------------------------------------

    def test_burst_of_10000_datagrams_arrives_whole_and_in_order(self):
        count, batch = 10_000, 250

        async def test():
            receiver, received = await self.endpoint(local_addr=("127.0.0.1", 0))
            receiver.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                         socket.SO_RCVBUF, 1 << 20)
            address = receiver.get_extra_info("sockname")
            sender, _ = await self.endpoint(remote_addr=address)
            for start in range(0, count, batch):
                for index in range(start, start + batch):
                    sender.sendto(numbered(index))
                await received.received(start + batch)
            await asyncio.sleep(0.01)
            self.assertEqual(len(received.datagrams), count)
            source = sender.get_extra_info("sockname")
            self.assertEqual(received.datagrams, [(numbered(i), source) for i in range(count)])
            self.assertEqual(received.errors, [])
        self.run_coro(test(), timeout=30)

    # ---- errors ------------------------------------------------------------

    def test_error_received_on_connection_refused(self):
        port = closed_udp_port()

        async def test():
            transport, protocol = await self.endpoint(remote_addr=("127.0.0.1", port))
            transport.sendto(b"anyone there?")
            exc = await protocol.error()
            self.assertIsInstance(exc, ConnectionRefusedError)
            self.assertFalse(transport.is_closing())
            self.assertNotIn("connection_lost", protocol.events)
            # The endpoint goes on working once someone listens there.
            listener = self.plain_socket(address=("127.0.0.1", port))
            transport.sendto(b"now?")
            self.assertEqual((await self.recvfrom(listener))[0], b"now?")
        self.run_coro(test())

    # ---- closing -----------------------------------------------------------

    def test_close_without_queued_datagrams(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            transport.close()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT))
            transport.close()
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_closed_endpoint_receives_nothing(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            address = transport.get_extra_info("sockname")
            client = self.plain_socket()
            transport.close()
            client.sendto(b"too late", address)
            await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT)
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.datagrams, [])
        self.run_coro(test())

    def test_close_delivers_queued_datagrams_first(self):
        sock, peer = self.unwritable_pair()

        async def test():
            transport, protocol = await self.endpoint(sock=sock)
            sent = self.fill_until_buffered(transport)
            for _ in range(20):
                sent.append(numbered(len(sent), 1000))
                transport.sendto(sent[-1])
            transport.close()
            self.assertTrue(transport.is_closing())
            await asyncio.sleep(0.02)
            self.assertFalse(protocol.lost.done(), "connection_lost before the queue was sent")
            delivered = []
            self.start_draining(peer, delivered)
            self.assertIsNone(await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT))
            self.loop.remove_reader(peer)
            delivered.extend(self.drain(peer))
            self.assertEqual(len(delivered), len(sent))
            self.assertEqual(delivered, sent)
            self.assertEqual(transport.get_write_buffer_size(), self.left_after_sending(21))
            self.assertEqual(protocol.events.count("connection_lost"), 1)
        self.run_coro(test())

    def test_abort_calls_connection_lost_once(self):
        async def test():
            transport, protocol = await self.endpoint(local_addr=("127.0.0.1", 0))
            transport.abort()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT))
            transport.abort()
            transport.close()
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_abort_drops_queued_datagrams(self):
        sock, peer = self.unwritable_pair()

        async def test():
            transport, protocol = await self.endpoint(sock=sock)
            sent = self.fill_until_buffered(transport)
            transport.sendto(b"queued too")
            transport.abort()
            self.assertIsNone(await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT))
            await asyncio.sleep(0.01)
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertEqual(self.drain(peer), sent[:-1])  # only what went out at once
        self.run_coro(test())

    def test_connected_sendto_after_close_is_dropped(self):
        async def test():
            peer = self.plain_socket()
            transport, protocol = await self.endpoint(remote_addr=peer.getsockname())
            transport.close()
            transport.sendto(b"after close")
            await asyncio.wait_for(protocol.lost, DEFAULT_TIMEOUT)
            transport.sendto(b"after connection_lost")
            await asyncio.sleep(0.01)
            self.assert_nothing_to_read(peer)
            self.assertEqual(protocol.errors, [])
        self.run_coro(test())

    # ---- flow control ------------------------------------------------------

    def test_write_buffer_limits(self):
        async def test():
            transport, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            self.assertEqual(transport.get_write_buffer_limits(), (16384, 65536))
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.set_write_buffer_limits(high=4000)
            self.assertEqual(transport.get_write_buffer_limits(), (1000, 4000))
            transport.set_write_buffer_limits(high=3000, low=1000)
            self.assertEqual(transport.get_write_buffer_limits(), (1000, 3000))
            with self.assertRaises(ValueError):
                transport.set_write_buffer_limits(high=1, low=2)
        self.run_coro(test())

    def test_write_buffer_size_and_pause_resume_writing(self):
        sock, peer = self.unwritable_pair()
        high, low, size = 3000, 1000, 1000
        per_datagram = size + DATAGRAM_HEADER_SIZE

        async def test():
            transport, protocol = await self.endpoint(sock=sock)
            transport.set_write_buffer_limits(high=high, low=low)
            sent = self.fill_until_buffered(transport, size)
            queued = 1
            self.assertEqual(transport.get_write_buffer_size(), per_datagram)
            while transport.get_write_buffer_size() <= high:
                self.assertNotIn("pause_writing", protocol.events)
                sent.append(numbered(len(sent), size))
                transport.sendto(sent[-1])
                queued += 1
                self.assertEqual(transport.get_write_buffer_size(), queued * per_datagram)
            self.assertEqual(protocol.events.count("pause_writing"), 1)
            for _ in range(5):
                sent.append(numbered(len(sent), size))
                transport.sendto(sent[-1])
            self.assertEqual(protocol.events.count("pause_writing"), 1)
            self.assertEqual(transport.get_write_buffer_size(), (queued + 5) * per_datagram)
            self.assertNotIn("resume_writing", protocol.events)

            delivered = []
            self.start_draining(peer, delivered)
            await protocol.wait_for(lambda: "resume_writing" in protocol.events, "resume_writing")
            left = self.left_after_sending(queued + 5)
            self.assertLessEqual(transport.get_write_buffer_size() - left, low)
            await wait_until(lambda: transport.get_write_buffer_size() == left,
                             what="the queue to empty")
            await wait_until(lambda: len(delivered) >= len(sent), what="every datagram")
            self.assertEqual(delivered, sent)
            self.assertEqual(protocol.events.count("pause_writing"), 1)
            self.assertEqual(protocol.events.count("resume_writing"), 1)
        self.run_coro(test())

    def test_queued_bytearray_and_memoryview_are_copied(self):
        sock, peer = self.unwritable_pair()

        async def test():
            transport, _ = await self.endpoint(sock=sock)
            sent = self.fill_until_buffered(transport)
            array = bytearray(b"array, as sent")
            viewed = bytearray(b"view, as sent")
            transport.sendto(array)
            transport.sendto(memoryview(viewed))
            array[:] = b"array, changed"
            viewed[:] = b"view, changed"
            delivered = []
            self.start_draining(peer, delivered)
            await wait_until(lambda: len(delivered) >= len(sent) + 2, what="every datagram")
            self.assertEqual(delivered, sent + [b"array, as sent", b"view, as sent"])
        self.run_coro(test())

    # ---- socket options ----------------------------------------------------

    def test_allow_broadcast_sets_so_broadcast(self):
        async def test():
            plain, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            broadcast, _ = await self.endpoint(local_addr=("127.0.0.1", 0), allow_broadcast=True)
            self.assertEqual(plain.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_BROADCAST), 0)
            self.assertNotEqual(broadcast.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_BROADCAST), 0)
        self.run_coro(test())

    def test_allow_broadcast_with_remote_addr_leaves_the_socket_unconnected(self):
        async def test():
            peer = self.plain_socket()
            transport, _ = await self.endpoint(remote_addr=peer.getsockname(),
                                               allow_broadcast=True)
            self.assertIsNone(transport.get_extra_info("peername"))
            transport.sendto(b"to remote_addr")
            data, addr = await self.recvfrom(peer)
            self.assertEqual(data, b"to remote_addr")
            # Unbound and unconnected, the socket took a port on every address.
            self.assertEqual(transport.get_extra_info("socket").getsockname()[0], "0.0.0.0")
            self.assertEqual(addr[1], transport.get_extra_info("socket").getsockname()[1])
        self.run_coro(test())

    def test_reuse_port_lets_two_endpoints_share_a_port(self):
        async def test():
            first, _ = await self.endpoint(local_addr=("127.0.0.1", 0), reuse_port=True)
            address = first.get_extra_info("sockname")
            second, _ = await self.endpoint(local_addr=address, reuse_port=True)
            self.assertEqual(second.get_extra_info("sockname"), address)
            for transport in (first, second):
                self.assertNotEqual(transport.get_extra_info("socket").getsockopt(
                    socket.SOL_SOCKET, socket.SO_REUSEPORT), 0)
        self.run_coro(test())

    def test_same_port_without_reuse_port_is_in_use(self):
        async def test():
            first, _ = await self.endpoint(local_addr=("127.0.0.1", 0))
            with self.assertRaises(OSError) as caught:
                await self.loop.create_datagram_endpoint(
                    DatagramRecorder, local_addr=first.get_extra_info("sockname"))
            self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
        self.run_coro(test())


@loop_tests(LOOPS)
class DatagramArgumentTests(DatagramCases):
    """The arguments create_datagram_endpoint refuses, as asyncio refuses them."""

    def create(self, **kwargs):
        """create_datagram_endpoint(**kwargs); an endpoint it should not have
        made is aborted at once, so that the failure is the only report."""
        transport, protocol = self.run_coro(
            self.loop.create_datagram_endpoint(DatagramRecorder, **kwargs))
        self._abort(transport, protocol)
        return transport, protocol

    def test_reuse_address_is_refused(self):
        # Python 3.11 removed the parameter; before, True raised ValueError.
        if sys.version_info >= (3, 11):
            for value in (True, False):
                with self.subTest(reuse_address=value):
                    with self.assertRaisesRegex(TypeError, "reuse_address"):
                        self.create(local_addr=("127.0.0.1", 0), reuse_address=value)
        else:
            with self.assertRaisesRegex(ValueError, "reuse_address"):
                self.create(local_addr=("127.0.0.1", 0), reuse_address=True)

    def test_sock_with_other_options(self):
        sock = self.plain_socket()
        cases = [
            (dict(local_addr=("127.0.0.1", 0)), "local_addr=('127.0.0.1', 0)"),
            (dict(remote_addr=("127.0.0.1", 9)), "remote_addr=('127.0.0.1', 9)"),
            (dict(proto=17, flags=1), "proto=17, flags=1"),
            (dict(reuse_port=True, allow_broadcast=True), "reuse_port=True, allow_broadcast=True"),
        ]
        for kwargs, problems in cases:
            with self.subTest(**kwargs):
                with self.assertRaises(ValueError) as caught:
                    self.create(sock=sock, **kwargs)
                self.assertEqual(str(caught.exception),
                                 "socket modifier keyword arguments can not be used when "
                                 f"sock is specified. ({problems})")
        self.assertNotEqual(sock.fileno(), -1, "the given socket stays the caller's")

    def test_stream_socket_is_refused(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            with self.assertRaises(ValueError) as caught:
                self.create(sock=sock)
            kind = "datagram socket" if sys.version_info >= (3, 13) else "UDP Socket"
            self.assertEqual(str(caught.exception), f"A {kind} was expected, got {sock!r}")

    def test_no_address_and_no_family(self):
        with self.assertRaises(ValueError) as caught:
            self.create()
        self.assertEqual(str(caught.exception), "unexpected address family")

    def test_family_without_addresses_makes_an_unbound_socket(self):
        async def test():
            transport, _ = await self.endpoint(family=socket.AF_INET)
            sock = transport.get_extra_info("socket")
            self.assertEqual((sock.family, sock.type), (socket.AF_INET, socket.SOCK_DGRAM))
            self.assertEqual(transport.get_extra_info("sockname"), ("0.0.0.0", 0))
            self.assertIsNone(transport.get_extra_info("peername"))
        self.run_coro(test())

    def test_unix_family_without_addresses_makes_an_unbound_socket(self):
        async def test():
            transport, protocol = await self.endpoint(family=socket.AF_UNIX)
            sock = transport.get_extra_info("socket")
            self.assertEqual((sock.family, sock.type), (socket.AF_UNIX, socket.SOCK_DGRAM))
            self.assertIsNone(transport.get_extra_info("peername"))
            transport.close()
            self.assertIsNone(await protocol.lost)
        self.run_coro(test())

    def test_local_addr_without_addresses_of_the_family_is_an_oserror(self):
        with self.assertRaises(OSError):
            self.create(local_addr=("127.0.0.1", 0), family=socket.AF_INET6)

    def test_socket_creation_failure_is_raised(self):
        # Out of descriptors: socket() fails with EMFILE; nothing is left open.
        for kwargs in (dict(family=socket.AF_INET), dict(local_addr=("127.0.0.1", 0))):
            with self.subTest(**kwargs):
                with ExhaustedFds():
                    with self.assertRaises(OSError) as caught:
                        self.create(**kwargs)
                self.assertEqual(caught.exception.errno, errno.EMFILE)

    def test_unix_family_needs_string_addresses(self):
        path = os.path.join(self.temp_dir(), "x.sock")
        for kwargs in (dict(local_addr=("127.0.0.1", 0)), dict(remote_addr=path.encode()),
                       dict(local_addr=path, remote_addr=("127.0.0.1", 9))):
            with self.subTest(**kwargs):
                with self.assertRaises(TypeError) as caught:
                    self.create(family=socket.AF_UNIX, **kwargs)
                self.assertEqual(str(caught.exception), "string is expected")

    def test_inet_addresses_must_be_2_tuples(self):
        for kwargs in (dict(local_addr=["127.0.0.1", 0]), dict(local_addr=("127.0.0.1",)),
                       dict(remote_addr=("127.0.0.1", 9, 0)), dict(local_addr="127.0.0.1"),
                       dict(local_addr=("::1", 0, 0, 0), family=socket.AF_INET6)):
            with self.subTest(**kwargs):
                with self.assertRaises(TypeError) as caught:
                    self.create(**kwargs)
                self.assertEqual(str(caught.exception), "2-tuple is expected")


@loop_tests(LOOPS)
class DatagramSockOpsTests(DatagramCases):
    """loop.sock_sendto / sock_recvfrom / sock_recvfrom_into on non-blocking
    datagram sockets (the basic UDP cases are in test_sock_ops)."""

    def test_sock_sendto_and_sock_recvfrom(self):
        a, b = self.plain_socket(), self.plain_socket()
        self.assertEqual(self.run_coro(self.loop.sock_sendto(a, b"udp", b.getsockname())), 3)
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 100)), (b"udp", a.getsockname()))

    def test_sock_recvfrom_waits(self):
        a, b = self.plain_socket(), self.plain_socket()
        self.loop.call_later(0.02, a.sendto, b"later", b.getsockname())
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 100)),
                         (b"later", a.getsockname()))

    def test_sock_recvfrom_truncates_and_discards_the_rest(self):
        a, b = self.plain_socket(), self.plain_socket()
        a.sendto(b"0123456789", b.getsockname())
        a.sendto(b"next", b.getsockname())
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 4))[0], b"0123")
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 100))[0], b"next")

    def test_sock_recvfrom_empty_datagram(self):
        a, b = self.plain_socket(), self.plain_socket()
        self.loop.call_later(0.01, a.sendto, b"", b.getsockname())
        self.assertEqual(self.run_coro(self.loop.sock_recvfrom(b, 100)), (b"", a.getsockname()))

    def test_sock_recvfrom_into_waits(self):
        a, b = self.plain_socket(), self.plain_socket()
        buffer = bytearray(16)
        self.loop.call_later(0.02, a.sendto, b"into", b.getsockname())
        nbytes, addr = self.run_coro(self.loop.sock_recvfrom_into(b, buffer))
        self.assertEqual((nbytes, bytes(buffer[:nbytes]), addr), (4, b"into", a.getsockname()))

    def test_sock_recvfrom_into_a_memoryview_slice(self):
        a, b = self.plain_socket(), self.plain_socket()
        buffer = bytearray(b"..........")
        a.sendto(b"abcdef", b.getsockname())
        nbytes, _ = self.run_coro(self.loop.sock_recvfrom_into(b, memoryview(buffer)[2:5]))
        self.assertEqual((nbytes, buffer), (3, bytearray(b"..abc.....")))

    def test_sock_recvfrom_into_nbytes_larger_than_the_buffer(self):
        a, b = self.plain_socket(), self.plain_socket()
        a.sendto(b"data", b.getsockname())
        with self.assertRaises(ValueError):
            self.run_coro(self.loop.sock_recvfrom_into(b, bytearray(2), 10))

    def test_cancelled_sock_recvfrom_leaves_the_socket_usable(self):
        a, b = self.plain_socket(), self.plain_socket()

        async def test():
            pending = self.loop.create_task(self.loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0.01)
            pending.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await pending
            self.loop.call_later(0.01, a.sendto, b"after cancel", b.getsockname())
            return await self.loop.sock_recvfrom(b, 100)

        self.assertEqual(self.run_coro(test()), (b"after cancel", a.getsockname()))

    def test_sock_ops_ipv6(self):
        self.require_ipv6()
        a = self.plain_socket(socket.AF_INET6, ("::1", 0))
        b = self.plain_socket(socket.AF_INET6, ("::1", 0))
        self.run_coro(self.loop.sock_sendto(a, b"six", b.getsockname()[:2]))
        data, addr = self.run_coro(self.loop.sock_recvfrom(b, 100))
        self.assertEqual((data, addr), (b"six", a.getsockname()))
        self.assertEqual(len(addr), 4)

    def test_sock_ops_unix(self):
        directory = self.temp_dir()
        a = self.plain_socket(socket.AF_UNIX, os.path.join(directory, "a.sock"))
        b = self.plain_socket(socket.AF_UNIX, os.path.join(directory, "b.sock"))
        self.assertEqual(self.run_coro(self.loop.sock_sendto(a, b"unix", b.getsockname())), 4)
        buffer = bytearray(8)
        nbytes, addr = self.run_coro(self.loop.sock_recvfrom_into(b, buffer))
        self.assertEqual((bytes(buffer[:nbytes]), addr), (b"unix", a.getsockname()))

    def test_sock_sendto_waits_until_writable(self):
        sock, peer = nonblocking(*socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
        self.addCleanup(sock.close)
        self.addCleanup(peer.close)
        path = os.path.join(self.temp_dir(), "peer.sock")
        peer.bind(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        sent = 0
        with self.assertRaises(BlockingIOError):
            for sent in range(10_000):
                sock.send(numbered(sent, 1000))
        self.assertGreater(sent, 0)

        async def test():
            sending = self.loop.create_task(self.loop.sock_sendto(sock, b"waited", path))
            await asyncio.sleep(0.02)
            self.assertFalse(sending.done(), "sock_sendto did not wait for room")
            received = self.drain(peer)
            self.assertEqual(received, [numbered(i, 1000) for i in range(sent)])
            self.assertEqual(await sending, len(b"waited"))
            return await self.loop.sock_recv(peer, 100)

        self.assertEqual(self.run_coro(test()), b"waited")
