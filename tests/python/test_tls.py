"""TLS: ssl= on create_server/create_connection (TCP and Unix sockets),
streams, connect_accepted_socket, loop.start_tls and StreamWriter.start_tls.

The reference is stock asyncio 3.11 (sslproto.py, base_events.py): where it
raises, the tests assert the same exception type and message; where it
reports a failure through connection_lost, the same argument. Certificates
come from tls_certs.py (made at test time). Peers that must misbehave (never
answer, cut a record in half, require a client certificate with the stdlib's
blocking ssl module) run in a thread on a plain socket, independent of the
loop under test.
"""

import asyncio
import contextlib
import gc
import hashlib
import os
import socket
import ssl
import tempfile
import threading
import time
import weakref
from unittest import mock

from . import tls_certs
from .loops import loop_tests
from .stream_transport_cases import BufferSizeAtResumeProtocol, NonReadingProtocol
from .support import (EchoProtocol, RecordingBufferedProtocol, RecordingProtocol, TcpEndpoints,
                      UnixEndpoints, wait_until)

LOOPS = ("asyncio", "tapio")
KiB = 1 << 10
MiB = 1 << 20
PEER_TIMEOUT = 10.0  # a threaded peer's socket timeout

SERVER_SAN = (("DNS", "localhost"), ("IP Address", "127.0.0.1"),
              ("IP Address", "0:0:0:0:0:0:0:1"))
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_HOSTNAME_MISMATCH = 62


async def fill_until_queued(transport, chunk_size=128 * KiB, most=64 * MiB):
    """Writes random chunks to a transport whose peer does not read until
    bytes stay queued in it: the kernel's buffers grow with TCP autotuning
    (to 32 MiB on recent kernels) while the peer's window is open. Returns
    what was written."""
    written = []
    while len(written) * chunk_size < most:
        written.append(os.urandom(chunk_size))
        transport.write(written[-1])
        if transport.get_write_buffer_size() > 0:
            await asyncio.sleep(0.05)  # the kernel takes what it still can
            if transport.get_write_buffer_size() > 0:
                break
    return b"".join(written)


class ThreadedPeer:
    """A listening TCP socket on 127.0.0.1 whose first connection is handed
    to serve(conn, peer) in a thread. serve may append to peer.results and
    wait on peer.release (set when the test ends). Closed and joined at
    cleanup, before the harness looks for leaked descriptors."""

    def __init__(self, test, serve):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.port = self.address[1]
        self.results = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def _run(self, serve):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed before anyone connected
        with conn:
            conn.settimeout(PEER_TIMEOUT)
            try:
                serve(conn, self)
            except Exception as exc:  # the test looks at results
                self.results.append(exc)

    def close(self):
        self.release.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        except OSError:
            pass
        self.thread.join(PEER_TIMEOUT)
        self.listener.close()

    async def finished(self, timeout=PEER_TIMEOUT):
        """Wait (without blocking the loop) for serve() to return."""
        await wait_until(lambda: not self.thread.is_alive(), timeout, "the peer thread")


def memory_bio_handshake(conn, context):
    """The server side of a TLS handshake over memory BIOs on the blocking
    socket conn; returns (ssl_object, outgoing_bio, incoming_bio) so that the
    caller decides which encrypted bytes go on the wire."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                conn.sendall(outgoing.read())
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("the client closed during the handshake")
            incoming.write(data)
    if outgoing.pending:
        conn.sendall(outgoing.read())
    return tls, outgoing, incoming


async def echo_one_line(reader, writer):
    """A streams server's handler: answers one line with b"echo: " + it, then
    closes."""
    writer.write(b"echo: " + await reader.readline())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


class FlowControlledProtocol(RecordingProtocol):
    """can_write is set while the transport does not ask to pause."""

    def __init__(self):
        super().__init__()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def pause_writing(self):
        super().pause_writing()
        self.can_write.clear()

    def resume_writing(self):
        super().resume_writing()
        self.can_write.set()


class HashingProtocol(RecordingProtocol):
    """Keeps a sha256 and a count of what it receives instead of the bytes."""

    def __init__(self):
        super().__init__()
        self.sha256 = hashlib.sha256()
        self.count = 0

    def data_received(self, data):
        self.sha256.update(data)
        self.count += len(data)


class TlsEndpointsMixin:
    """Helpers shared by the TCP and Unix TLS tests."""

    async def tls_pair(self, server_protocol=RecordingProtocol, client_protocol=RecordingProtocol,
                       server_ssl=None, client_ssl=None, **client_kwargs):
        """(client_transport, client_protocol, server_protocol), handshake done
        on both sides."""
        server, accepted = await self.start_server(
            server_protocol, ssl=server_ssl or tls_certs.server_context())
        client_kwargs.setdefault("server_hostname", "localhost")
        transport, protocol = await self.connect(
            server, client_protocol, ssl=client_ssl or tls_certs.client_context(), **client_kwargs)
        await wait_until(lambda: accepted, what="the server to accept")
        await accepted[0].made
        return transport, protocol, accepted[0]

    async def assert_echo(self, transport, protocol, payload=b"ping over TLS"):
        transport.write(payload)
        self.assertEqual(await protocol.received(len(payload)), payload)

    async def assert_line_echo(self, server, reader, writer, line):
        """Streams against echo_one_line: the echo of `line`, then
        close_streams."""
        writer.write(line)
        self.assertEqual(await reader.readline(), b"echo: " + line)
        await self.close_streams(server, reader, writer)

    async def close_streams(self, server, reader, writer):
        """The server closed its end: the reader reads EOF. Then the writer
        and the server are closed and waited for."""
        self.assertEqual(await reader.read(), b"")
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


@loop_tests(LOOPS)
class TlsTests(TlsEndpointsMixin, TcpEndpoints):

    async def connect_tls(self, host, port, **kwargs):
        """create_connection(RecordingProtocol, host, port) with the test's
        client context: (transport, protocol), aborted at cleanup."""
        transport, protocol = await self.loop.create_connection(
            RecordingProtocol, host, port, ssl=tls_certs.client_context(), **kwargs)
        self.addCleanup(self._abort, [protocol])
        return transport, protocol

    # -- connecting and data

    def test_echo_round_trip(self):
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(server_protocol=EchoProtocol)
            self.assertIsInstance(transport, asyncio.Transport)
            self.assertIsInstance(server_protocol.transport, asyncio.Transport)
            await self.assert_echo(transport, protocol)
            self.assertEqual(bytes(server_protocol.data), b"ping over TLS")
            self.assertEqual(protocol.chunk_types, {bytes})
            self.assertEqual(protocol.events[0], "connection_made")
        self.run_coro(test())

    def test_server_hostname_defaults_to_the_host(self):
        # Without server_hostname the host is checked: 127.0.0.1 against the
        # certificate's IP address, "localhost" against its DNS name.
        async def test():
            server, _ = await self.start_server(EchoProtocol, ssl=tls_certs.server_context())
            port = server.sockets[0].getsockname()[1]
            for host in ("127.0.0.1", "localhost"):
                with self.subTest(host=host):
                    transport, protocol = await self.connect_tls(host, port)
                    self.assertEqual(transport.get_extra_info("ssl_object").server_hostname, host)
                    await self.assert_echo(transport, protocol)
        self.run_coro(test())

    def test_ipv6(self):
        async def test():
            server, _ = await self.start_server(EchoProtocol, host="::1",
                                                ssl=tls_certs.server_context())
            transport, protocol = await self.connect(server, ssl=tls_certs.client_context())
            self.assertEqual(transport.get_extra_info("peername")[0], "::1")
            await self.assert_echo(transport, protocol)
        self.run_coro(test())

    def test_buffered_protocol(self):
        async def test():
            transport, protocol, _ = await self.tls_pair(
                server_protocol=EchoProtocol, client_protocol=RecordingBufferedProtocol)
            payload = bytes(range(256)) * 64
            transport.write(payload)
            self.assertEqual(await protocol.received(len(payload)), payload)
            self.assertTrue(protocol.hints)
        self.run_coro(test())

    def test_100_mib_transfer_arrives_whole(self):
        # The client writes 100 MiB in 256 KiB pieces, waiting whenever the
        # transport says pause_writing, then closes: close() flushes it all
        # before close_notify, and the server's sha256 matches.
        total = 100 * MiB
        piece = 256 * KiB

        async def test():
            transport, protocol, server_protocol = await self.tls_pair(
                server_protocol=HashingProtocol, client_protocol=FlowControlledProtocol)
            sent = hashlib.sha256()
            block = bytearray(os.urandom(MiB))
            for index in range(total // MiB):
                block[:8] = index.to_bytes(8, "big")  # each MiB differs
                sent.update(block)
                for offset in range(0, MiB, piece):
                    await protocol.can_write.wait()
                    transport.write(bytes(block[offset:offset + piece]))
            transport.close()
            self.assertIsNone(await server_protocol.lost)
            self.assertEqual(server_protocol.count, total)
            self.assertEqual(server_protocol.sha256.hexdigest(), sent.hexdigest())
            self.assertIsNone(await protocol.lost)
            # The server only reads while the client waits, so the client paused.
            flow = [e for e in protocol.events if e in ("pause_writing", "resume_writing")]
            self.assertGreaterEqual(flow.count("pause_writing"), 1)
            self.assertEqual(flow, ["pause_writing", "resume_writing"] * (len(flow) // 2))
        self.run_coro(test(), timeout=50)

    # -- flow control

    def test_write_buffer_limits(self):
        # asyncio's SSL transport: 512 KiB high, a quarter of it low.
        async def test():
            transport, _, _ = await self.tls_pair()
            self.assertEqual(transport.get_write_buffer_limits(), (128 * KiB, 512 * KiB))
            self.assertEqual(transport.get_write_buffer_size(), 0)
            transport.set_write_buffer_limits(high=1000)
            self.assertEqual(transport.get_write_buffer_limits(), (250, 1000))
            transport.set_write_buffer_limits(high=1000, low=10)
            self.assertEqual(transport.get_write_buffer_limits(), (10, 1000))
            with self.assertRaisesRegex(ValueError, r"^high \(10\) must be >= low \(20\) must be >= 0$"):
                transport.set_write_buffer_limits(high=10, low=20)
        self.run_coro(test())

    def test_back_pressure_pauses_and_resumes_writing(self):
        # A server that does not read: the client's transport asks to pause
        # once its buffer reaches the high-water mark, the buffer then stays
        # put (nothing drains), and when the server reads again the client
        # is told to resume at the low-water mark and every byte arrives.
        # The kernel's socket buffers may still grow (TCP autotuning) just
        # after the first pause and take more: the client then resumes and
        # fills them again, until a pause holds.
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(
                server_protocol=NonReadingProtocol, client_protocol=BufferSizeAtResumeProtocol)
            low, high = transport.get_write_buffer_limits()
            chunks = []
            for _ in range(10):
                while protocol.events[-1] != "pause_writing":
                    self.assertLess(len(chunks), 4096, "no pause_writing after 256 MiB")
                    chunks.append(len(chunks).to_bytes(4, "big") + b"x" * (64 * KiB - 4))
                    transport.write(chunks[-1])
                    await asyncio.sleep(0)  # let the transport flush what it can
                paused_size = transport.get_write_buffer_size()
                self.assertGreaterEqual(paused_size, high)
                await asyncio.sleep(0.2)
                if protocol.events[-1] == "pause_writing":
                    break  # the kernel's buffers are full: the pause holds
            self.assertEqual(protocol.events[-1], "pause_writing", "the pause never held")
            size = transport.get_write_buffer_size()
            self.assertGreater(size, 0)
            self.assertLessEqual(size, paused_size)  # bounded: no writes, no growth
            pauses = protocol.events.count("pause_writing")
            server_protocol.transport.resume_reading()
            await wait_until(lambda: protocol.events[-1] == "resume_writing", 30, "resume_writing")
            self.assertLessEqual(protocol.size_at_resume, low)
            expected = b"".join(chunks)
            self.assertEqual(await server_protocol.received(len(expected), timeout=30), expected)
            self.assertEqual(protocol.events.count("pause_writing"), pauses)
            self.assertEqual(protocol.events.count("resume_writing"), pauses)
        self.run_coro(test(), timeout=50)

    def test_pause_and_resume_reading(self):
        async def test():
            transport, protocol, server_protocol = await self.tls_pair()
            self.assertTrue(transport.is_reading())
            transport.pause_reading()
            self.assertFalse(transport.is_reading())
            server_protocol.transport.write(b"held back")
            await asyncio.sleep(0.2)
            self.assertEqual(bytes(protocol.data), b"")
            transport.resume_reading()
            self.assertTrue(transport.is_reading())
            self.assertEqual(await protocol.received(9), b"held back")
        self.run_coro(test())

    # -- extra info

    def test_extra_info_client_side(self):
        async def test():
            context = tls_certs.client_context()
            server, _ = await self.start_server(ssl=tls_certs.server_context())
            transport, _ = await self.connect(server, ssl=context, server_hostname="localhost")
            self.assertIs(transport.get_extra_info("sslcontext"), context)
            ssl_object = transport.get_extra_info("ssl_object")
            self.assertIsInstance(ssl_object, ssl.SSLObject)
            self.assertFalse(ssl_object.server_side)
            self.assertEqual(ssl_object.server_hostname, "localhost")
            peercert = transport.get_extra_info("peercert")
            self.assertIsInstance(peercert, dict)
            self.assertEqual(peercert["subjectAltName"], SERVER_SAN)
            self.assertEqual(peercert["subject"], ((("commonName", "localhost"),),))
            self.assertEqual(peercert, ssl_object.getpeercert())
            cipher = transport.get_extra_info("cipher")
            self.assertIsInstance(cipher, tuple)
            self.assertEqual(len(cipher), 3)
            self.assertEqual(cipher, ssl_object.cipher())
            self.assertEqual(cipher[1], ssl_object.version())
            self.assertIsNone(transport.get_extra_info("compression"))
            sock = transport.get_extra_info("socket")
            self.assertGreaterEqual(sock.fileno(), 0)
            self.assertEqual((sock.family, sock.type), (socket.AF_INET, socket.SOCK_STREAM))
            self.assertEqual(transport.get_extra_info("peername"), server.sockets[0].getsockname())
            self.assertEqual(transport.get_extra_info("peername"), sock.getpeername())
            self.assertEqual(transport.get_extra_info("sockname"), sock.getsockname())
            self.assertEqual(transport.get_extra_info("no such key", "default"), "default")
            self.assertIsNone(transport.get_extra_info("no such key"))
        self.run_coro(test())

    def test_extra_info_server_side(self):
        async def test():
            context = tls_certs.server_context()
            transport, _, server_protocol = await self.tls_pair(server_ssl=context)
            server_transport = server_protocol.transport
            self.assertIs(server_transport.get_extra_info("sslcontext"), context)
            ssl_object = server_transport.get_extra_info("ssl_object")
            self.assertIsInstance(ssl_object, ssl.SSLObject)
            self.assertTrue(ssl_object.server_side)
            self.assertIsNone(server_transport.get_extra_info("peercert"))  # none asked for
            self.assertEqual(server_transport.get_extra_info("cipher"), transport.get_extra_info("cipher"))
            self.assertEqual(server_transport.get_extra_info("peername"),
                             transport.get_extra_info("sockname"))
            self.assertEqual(server_transport.get_extra_info("sockname"),
                             transport.get_extra_info("peername"))
            self.assertEqual(server_transport.get_extra_info("socket").getpeername(),
                             transport.get_extra_info("sockname"))
        self.run_coro(test())

    def test_unverified_peercert_is_empty(self):
        # With CERT_NONE nothing is validated, and getpeercert() says {}.
        async def test():
            transport, protocol, _ = await self.tls_pair(
                server_protocol=EchoProtocol, server_ssl=tls_certs.server_context("wrong_host"),
                client_ssl=tls_certs.client_context(verify=False))
            self.assertEqual(transport.get_extra_info("peercert"), {})
            await self.assert_echo(transport, protocol)
        self.run_coro(test())

    # -- certificates

    async def assert_verification_fails(self, server_ssl, client_ssl, verify_code, message):
        server, accepted = await self.start_server(ssl=server_ssl)
        with self.assertRaises(ssl.SSLCertVerificationError) as caught:
            await self.connect(server, ssl=client_ssl, server_hostname="localhost")
        self.assertEqual(caught.exception.verify_code, verify_code)
        self.assertEqual(caught.exception.reason, "CERTIFICATE_VERIFY_FAILED")
        self.assertIn(message, caught.exception.verify_message)
        await asyncio.sleep(0.1)
        self.assertFalse(any(p.made.done() for p in accepted),
                         "the server side completed a handshake its client refused")

    def test_wrong_host_certificate_is_refused(self):
        self.run_coro(self.assert_verification_fails(
            tls_certs.server_context("wrong_host"), tls_certs.client_context(),
            X509_V_ERR_HOSTNAME_MISMATCH,
            "Hostname mismatch, certificate is not valid for 'localhost'."))

    def test_untrusted_ca_is_refused(self):
        self.run_coro(self.assert_verification_fails(
            tls_certs.server_context(), tls_certs.client_context(trust_test_ca=False),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "unable to get local issuer certificate"))

    def test_client_certificate_accepted(self):
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(
                server_protocol=EchoProtocol,
                server_ssl=tls_certs.server_context(require_client_cert=True),
                client_ssl=tls_certs.client_context(with_client_cert=True))
            peercert = server_protocol.transport.get_extra_info("peercert")
            self.assertEqual(peercert["subject"],
                             ((("commonName", tls_certs.CLIENT_COMMON_NAME),),))
            self.assertEqual(peercert["issuer"], ((("commonName", "tapio test CA"),),))
            await self.assert_echo(transport, protocol)
        self.run_coro(test())

    def test_client_certificate_missing_same_loop(self):
        # TLS 1.3: the client's handshake ends before the server checks the
        # client's certificate, so create_connection succeeds; the server
        # refuses, never calls connection_made, and the client's connection
        # ends without data.
        async def test():
            server, accepted = await self.start_server(
                ssl=tls_certs.server_context(require_client_cert=True))
            transport, protocol = await self.connect(server, ssl=tls_certs.client_context(),
                                                     server_hostname="localhost")
            transport.write(b"no certificate")
            await asyncio.wait_for(protocol.lost, 10)
            self.assertEqual(bytes(protocol.data), b"")
            self.assertEqual(protocol.events.count("connection_lost"), 1)
            self.assertTrue(accepted)
            self.assertFalse(any(p.made.done() for p in accepted))
        self.run_coro(test(), timeout=20)

    def peer_requiring_client_certificate(self):
        def serve(conn, peer):
            try:
                tls_certs.server_context(require_client_cert=True).wrap_socket(
                    conn, server_side=True).close()
            except ssl.SSLError as exc:
                peer.results.append(exc.reason)
        return ThreadedPeer(self, serve)

    def test_client_certificate_missing_tls13(self):
        # The server's alert arrives after the client's handshake: the
        # connection is made, then lost with the alert as an SSLError.
        peer = self.peer_requiring_client_certificate()

        async def test():
            transport, protocol = await self.connect_tls("127.0.0.1", peer.port)
            self.assertEqual(transport.get_extra_info("ssl_object").version(), "TLSv1.3")
            exc = await asyncio.wait_for(protocol.lost, 10)
            self.assertIs(type(exc), ssl.SSLError)
            self.assertEqual(exc.reason, "TLSV13_ALERT_CERTIFICATE_REQUIRED")
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
            await peer.finished()
        self.run_coro(test(), timeout=20)
        self.assertEqual(peer.results, ["PEER_DID_NOT_RETURN_A_CERTIFICATE"])

    def test_client_certificate_missing_tls12(self):
        # In TLS 1.2 the alert comes during the handshake: create_connection raises it.
        peer = self.peer_requiring_client_certificate()
        context = tls_certs.client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError) as caught:
            self.run_coro(self.loop.create_connection(
                RecordingProtocol, "127.0.0.1", peer.port, ssl=context))
        self.assertIs(type(caught.exception), ssl.SSLError)
        self.assertEqual(caught.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE")

    # -- ALPN and SNI

    def test_alpn(self):
        cases = [  # client, server, selected (the server's preference wins)
            (["http/1.1", "h2"], ["h2", "http/1.1"], "h2"),
            (["http/1.1"], ["h2", "http/1.1"], "http/1.1"),
            (["a"], ["b"], None),
            (None, ["h2"], None),
            (["h2"], None, None),
        ]

        async def test():
            for client_alpn, server_alpn, selected in cases:
                with self.subTest(client=client_alpn, server=server_alpn):
                    transport, _, server_protocol = await self.tls_pair(
                        server_ssl=tls_certs.server_context(alpn=server_alpn),
                        client_ssl=tls_certs.client_context(alpn=client_alpn))
                    for t in (transport, server_protocol.transport):
                        self.assertEqual(
                            t.get_extra_info("ssl_object").selected_alpn_protocol(), selected)
        self.run_coro(test())

    def test_sni_callback_sees_server_hostname_and_picks_the_certificate(self):
        # The server's default certificate is for wrong.example; its
        # sni_callback switches to the localhost one when asked for it.
        localhost = tls_certs.server_context()
        context = tls_certs.server_context("wrong_host")
        calls = []

        def sni_callback(ssl_object, server_name, ssl_context):
            calls.append((type(ssl_object), server_name, ssl_context))
            if server_name == "localhost":
                ssl_object.context = localhost
            return None

        context.sni_callback = sni_callback

        async def test():
            transport, protocol, _ = await self.tls_pair(
                server_protocol=EchoProtocol, server_ssl=context, server_hostname="localhost")
            self.assertEqual(transport.get_extra_info("peercert")["subjectAltName"], SERVER_SAN)
            await self.assert_echo(transport, protocol)
        self.run_coro(test())
        self.assertEqual(calls, [(ssl.SSLObject, "localhost", context)])

    # -- closing

    async def assert_close_notify(self, closing, other, words):
        """The protocol `closing` writes `words` and closes its transport: the
        protocol `other` gets them, then eof_received (the close_notify) and
        connection_lost(None); `closing` loses the connection cleanly, once,
        without data."""
        closing.transport.write(words)
        closing.transport.close()
        self.assertTrue(closing.transport.is_closing())
        self.assertIsNone(await other.lost)
        self.assertEqual(other.events,
                         ["connection_made", "data_received", "eof_received", "connection_lost"])
        self.assertEqual(bytes(other.data), words)
        self.assertIsNone(await closing.lost)
        await asyncio.sleep(0.05)
        self.assertEqual(closing.events.count("connection_lost"), 1)
        self.assertNotIn("data_received", closing.events)

    def test_close_flushes_queued_data_before_shutdown(self):
        # The peer is not reading: bytes stay queued in the transport when
        # close() is called; all of them reach the peer before close_notify.
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(NonReadingProtocol)
            payload = await fill_until_queued(transport)
            self.assertGreater(transport.get_write_buffer_size(), 0)
            transport.close()
            await asyncio.sleep(0.1)
            server_protocol.transport.resume_reading()
            await asyncio.wait_for(server_protocol.eof, PEER_TIMEOUT)
            self.assertEqual(len(server_protocol.data), len(payload))
            self.assertTrue(server_protocol.data == payload)
            self.assertIsNone(await asyncio.wait_for(protocol.lost, PEER_TIMEOUT))
        self.run_coro(test(), timeout=30)

    def test_client_close_sends_close_notify(self):
        async def test():
            _, protocol, server_protocol = await self.tls_pair()
            await self.assert_close_notify(protocol, server_protocol, b"last words")
        self.run_coro(test())

    def test_server_close_sends_close_notify(self):
        async def test():
            _, protocol, server_protocol = await self.tls_pair()
            await self.assert_close_notify(server_protocol, protocol, b"goodbye")
        self.run_coro(test())

    def test_eof_received_true_is_ignored_with_a_warning(self):
        # TLS has no half-close: a protocol that asks to stay open after the
        # peer's close_notify is closed all the same, and asyncio says so.
        class KeepOpen(RecordingProtocol):
            keep_open_on_eof = True

        async def test():
            transport, protocol, server_protocol = await self.tls_pair(server_protocol=KeepOpen)
            with self.assertLogs("asyncio", "WARNING") as logs:
                transport.close()
                self.assertIsNone(await server_protocol.lost)
                self.assertIsNone(await protocol.lost)
            self.assertIn("returning true from eof_received() has no effect when using ssl",
                          "\n".join(logs.output))
            self.assertEqual(server_protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_close_notify_on_the_wire(self):
        # The stdlib's ssl socket, with ragged EOFs reported, sees a clean
        # close_notify from close() and answers it; the client's
        # connection_lost then gets None.
        def serve(conn, peer):
            with tls_certs.server_context().wrap_socket(
                    conn, server_side=True, suppress_ragged_eofs=False) as tls:
                tls.sendall(b"hello")
                while tls.recv(1024):
                    pass
                peer.results.append("close_notify received")
                tls.unwrap().close()
                peer.results.append("close_notify sent")
        peer = ThreadedPeer(self, serve)

        async def test():
            transport, protocol = await self.connect_tls("localhost", peer.port)
            self.assertEqual(await protocol.received(5), b"hello")
            transport.close()
            self.assertIsNone(await protocol.lost)
            await peer.finished()
        self.run_coro(test())
        self.assertEqual(peer.results, ["close_notify received", "close_notify sent"])

    def test_peer_close_notify_is_answered(self):
        # The peer's unwrap() returns only once our close_notify arrived.
        def serve(conn, peer):
            tls = tls_certs.server_context().wrap_socket(conn, server_side=True)
            tls.sendall(b"bye")
            tls.unwrap().close()
            peer.results.append("unwrapped")
        peer = ThreadedPeer(self, serve)

        async def test():
            transport, protocol = await self.connect_tls("localhost", peer.port)
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events,
                             ["connection_made", "data_received", "eof_received", "connection_lost"])
            self.assertEqual(bytes(protocol.data), b"bye")
            await peer.finished()
        self.run_coro(test())
        self.assertEqual(peer.results, ["unwrapped"])

    def test_data_queued_when_the_peer_closes_still_reaches_it(self):
        # The peer stops reading while we queue 32 MiB (more than the
        # sockets' buffers hold), then sends its close_notify without waiting
        # for ours and reads on: everything we queued arrives before our
        # close_notify (CPython's
        # test_remote_shutdown_receives_trailing_data, without its private
        # backlog hook).
        size = 32 * MiB

        def serve(conn, peer):
            tls, outgoing, incoming = memory_bio_handshake(conn, tls_certs.server_context())
            tls.write(b"ready")
            conn.sendall(outgoing.read())
            time.sleep(0.3)  # the client queues its data meanwhile
            with self.assertRaises(ssl.SSLWantReadError):
                tls.unwrap()  # our close_notify, theirs not yet received
            conn.sendall(outgoing.read())
            received = 0
            while True:
                try:
                    received += len(tls.read(65536))
                except ssl.SSLWantReadError:
                    data = conn.recv(65536)
                    if not data:
                        break
                    incoming.write(data)
                except ssl.SSLZeroReturnError:
                    peer.results.append("close_notify")
                    break
            peer.results.append(received)
        peer = ThreadedPeer(self, serve)

        async def test():
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", peer.port, ssl=tls_certs.client_context(),
                server_hostname="localhost")
            self.assertEqual(await reader.readexactly(5), b"ready")
            writer.write(b"x" * size)
            self.assertEqual(await reader.read(), b"")
            await peer.finished()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        self.run_coro(test(), timeout=20)
        self.assertEqual(peer.results, ["close_notify", size])

    def test_context_is_freed_after_the_peer_closes(self):
        # The peer's close_notify ends the connection; the protocol keeps its
        # transport, closes it after eof_received and goes. Once the loop
        # stops, nothing holds the client's SSLContext any more: no garbage
        # collection is needed (asyncio's test_create_connection_memory_leak).
        def serve(conn, peer):
            tls = tls_certs.server_context().wrap_socket(conn, server_side=True)
            tls.sendall(b"O")
            peer.results.append(tls.recv(1024))
            tls.unwrap().close()
        peer = ThreadedPeer(self, serve)

        class KeepsTransport(asyncio.Protocol):
            def __init__(self, data, eof):
                self.data, self.eof = data, eof

            def connection_made(self, transport):
                self.transport = transport  # a cycle once the protocol is lost

            def data_received(self, data):
                self.data.set_result(data)

            def eof_received(self):
                self.eof.set_result(True)

        context = tls_certs.client_context()

        async def client():
            async with asyncio.timeout(PEER_TIMEOUT):
                data, eof = self.loop.create_future(), self.loop.create_future()
                transport, _ = await self.loop.create_connection(
                    lambda: KeepsTransport(data, eof), "127.0.0.1", peer.port, ssl=context,
                    server_hostname="localhost")
                self.assertEqual(await data, b"O")
                transport.write(b"hello")
                await eof
                transport.close()

        gc.disable()
        try:
            # Not run_coro: the loop stops as soon as client() returns.
            self.loop.run_until_complete(client())
            context = weakref.ref(context)
            self.assertIsNone(context())
        finally:
            gc.enable()
        self.assertEqual(peer.results, [b"hello"])

    def test_extra_info_after_connection_lost(self):
        # What stays once the connection is over: the TLS session's facts,
        # not the socket's; a second close() lets go of the context even
        # while the transport is kept.
        async def test():
            context = tls_certs.client_context()
            transport, protocol, server_protocol = await self.tls_pair(
                server_protocol=EchoProtocol, client_ssl=context)
            await self.assert_echo(transport, protocol)
            transport.close()
            self.assertIsNone(await protocol.lost)
            await asyncio.sleep(0)
            self.assertIs(transport.get_extra_info("sslcontext"), context)
            self.assertIsInstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)
            self.assertEqual(transport.get_extra_info("peercert")["subjectAltName"], SERVER_SAN)
            self.assertIsNotNone(transport.get_extra_info("cipher"))
            for name in ("socket", "peername", "sockname"):
                self.assertIsNone(transport.get_extra_info(name), name)
            self.assertTrue(transport.is_closing())
            transport.close()
            context = weakref.ref(context)
            self.assertIsNone(context())
            self.assertIsNone(await server_protocol.lost)
        gc.disable()
        try:
            self.run_coro(test())
        finally:
            gc.enable()

    def test_abort(self):
        # No close_notify: the server takes the end of the stream for EOF.
        # (The echo first, so that the client has read everything: closing
        # a socket with unread data would send a reset instead.)
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(server_protocol=EchoProtocol)
            await self.assert_echo(transport, protocol)
            transport.abort()
            self.assertTrue(transport.is_closing())
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "data_received", "connection_lost"])
            self.assertIsNone(await server_protocol.lost)
            self.assertEqual(server_protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_ssl_shutdown_timeout(self):
        # A peer that never reads never answers close_notify: after
        # ssl_shutdown_timeout the transport is closed anyway, and
        # connection_lost gets asyncio's TimeoutError.
        def serve(conn, peer):
            with tls_certs.server_context().wrap_socket(conn, server_side=True):
                peer.release.wait(PEER_TIMEOUT)
        peer = ThreadedPeer(self, serve)

        async def test():
            transport, protocol = await self.connect_tls("localhost", peer.port,
                                                         ssl_shutdown_timeout=0.5)
            started = time.monotonic()
            transport.close()
            exc = await protocol.lost
            elapsed = time.monotonic() - started
            self.assertIs(type(exc), TimeoutError)
            self.assertEqual(str(exc), "SSL shutdown timed out")
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 5)
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_write_eof_is_not_supported(self):
        async def test():
            transport, protocol, _ = await self.tls_pair(server_protocol=EchoProtocol)
            self.assertFalse(transport.can_write_eof())
            with self.assertRaises(NotImplementedError):
                transport.write_eof()
            await self.assert_echo(transport, protocol)  # still usable
        self.run_coro(test())

    # -- failures

    def test_handshake_timeout(self):
        # A peer that accepts (the kernel's backlog does) and never answers.
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]

        async def test():
            started = time.monotonic()
            with self.assertRaises(ConnectionAbortedError) as caught:
                await self.loop.create_connection(
                    RecordingProtocol, "127.0.0.1", port, ssl=tls_certs.client_context(),
                    ssl_handshake_timeout=0.5)
            elapsed = time.monotonic() - started
            self.assertEqual(str(caught.exception), "SSL handshake is taking longer than 0.5 "
                                                    "seconds: aborting the connection")
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 5)
        self.run_coro(test())

    def test_server_handshake_timeout(self):
        # A client that connects and says nothing is dropped after the
        # server's ssl_handshake_timeout, its protocol never made.
        async def test():
            server, accepted = await self.start_server(ssl=tls_certs.server_context(),
                                                       ssl_handshake_timeout=0.5)
            sock = socket.socket()
            self.addCleanup(sock.close)
            sock.setblocking(False)
            await self.loop.sock_connect(sock, server.sockets[0].getsockname())
            started = time.monotonic()
            self.assertEqual(await self.loop.sock_recv(sock, 100), b"")
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 5)
            self.assertFalse(any(p.made.done() for p in accepted))
        self.run_coro(test())

    def test_peer_closes_during_the_handshake(self):
        def serve(conn, peer):
            peer.results.append(len(conn.recv(65536)))  # the ClientHello, then close
        peer = ThreadedPeer(self, serve)
        with self.assertRaises(ConnectionResetError):
            self.run_coro(self.loop.create_connection(
                RecordingProtocol, "127.0.0.1", peer.port, ssl=tls_certs.client_context()))
        self.assertGreater(peer.results[0], 0)

    def peer_sending_after_handshake(self, what):
        """A peer that completes the handshake, then sends what(record) -
        record being 1000 bytes of application data encrypted - and closes."""
        def serve(conn, peer):
            tls, outgoing, _ = memory_bio_handshake(conn, tls_certs.server_context())
            tls.write(b"A" * 1000)
            conn.sendall(what(outgoing.read()))
            peer.release.wait(0.2)
        return ThreadedPeer(self, serve)

    def test_partial_record_then_close(self):
        # asyncio does not tell a truncated record from a clean close: the
        # half record is never delivered, then EOF and connection_lost(None).
        peer = self.peer_sending_after_handshake(lambda record: record[:len(record) // 2])

        async def test():
            _, protocol = await self.connect_tls("127.0.0.1", peer.port)
            self.assertIsNone(await protocol.lost)
            self.assertEqual(protocol.events, ["connection_made", "eof_received", "connection_lost"])
        self.run_coro(test())

    def test_whole_record_then_close(self):
        peer = self.peer_sending_after_handshake(lambda record: record)

        async def test():
            _, protocol = await self.connect_tls("127.0.0.1", peer.port)
            self.assertIsNone(await protocol.lost)
            self.assertEqual(bytes(protocol.data), b"A" * 1000)
            self.assertEqual(protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_corrupted_record(self):
        # An application-data record that does not decrypt: connection_lost
        # gets the SSLError, no data and no EOF come first.
        bogus = b"\x17\x03\x03\x00\x20" + bytes(32)
        peer = self.peer_sending_after_handshake(lambda record: bogus)

        async def test():
            _, protocol = await self.connect_tls("127.0.0.1", peer.port)
            exc = await protocol.lost
            self.assertIs(type(exc), ssl.SSLError)
            self.assertEqual(exc.reason, "DECRYPTION_FAILED_OR_BAD_RECORD_MAC")
            self.assertEqual(protocol.events, ["connection_made", "connection_lost"])
        self.run_coro(test())

    def test_stream_reader_raises_on_a_corrupted_record(self):
        bogus = b"\x17\x03\x03\x00\x20" + bytes(32)
        peer = self.peer_sending_after_handshake(lambda record: bogus)

        async def test():
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", peer.port, ssl=tls_certs.client_context())
            try:
                with self.assertRaises(ssl.SSLError) as caught:
                    await reader.read()
                self.assertEqual(caught.exception.reason, "DECRYPTION_FAILED_OR_BAD_RECORD_MAC")
            finally:
                writer.close()
            with self.assertRaises(ssl.SSLError):
                await writer.wait_closed()
        self.run_coro(test())

    def test_stream_reader_sees_eof_after_a_partial_record(self):
        peer = self.peer_sending_after_handshake(lambda record: record[:len(record) // 2])

        async def test():
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", peer.port, ssl=tls_certs.client_context())
            try:
                self.assertEqual(await reader.read(), b"")
                self.assertTrue(reader.at_eof())
            finally:
                writer.close()
            await writer.wait_closed()
        self.run_coro(test())

    # -- other entry points

    def test_streams(self):
        async def test():
            server = await asyncio.start_server(echo_one_line, "127.0.0.1", 0,
                                                ssl=tls_certs.server_context())
            self.addCleanup(server.close)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls_certs.client_context(), server_hostname="localhost")
            self.assertIsInstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
            await self.assert_line_echo(server, reader, writer, b"over TLS\n")
        self.run_coro(test())

    def test_connect_accepted_socket(self):
        async def test():
            listener = socket.create_server(("127.0.0.1", 0))
            self.addCleanup(listener.close)
            listener.setblocking(False)

            async def serve():
                conn, _ = await self.loop.sock_accept(listener)
                self.addCleanup(conn.close)
                return await self.loop.connect_accepted_socket(
                    EchoProtocol, conn, ssl=tls_certs.server_context())

            (transport, protocol), (server_transport, server_protocol) = await asyncio.gather(
                self.loop.create_connection(RecordingProtocol, "localhost",
                                            listener.getsockname()[1],
                                            ssl=tls_certs.client_context()),
                serve())
            self.addCleanup(self._abort, [protocol, server_protocol])
            ssl_object = server_transport.get_extra_info("ssl_object")
            self.assertIsInstance(ssl_object, ssl.SSLObject)
            self.assertTrue(ssl_object.server_side)
            await self.assert_echo(transport, protocol)
        self.run_coro(test())

    def test_ssl_true_uses_the_default_context(self):
        # ssl=True: ssl.create_default_context(), which trusts the CA file
        # OpenSSL's SSL_CERT_FILE names - the test CA here, nothing otherwise.
        empty_dir = tempfile.mkdtemp(prefix="tapio-no-certs-")
        self.addCleanup(os.rmdir, empty_dir)
        trusted = {"SSL_CERT_FILE": tls_certs.ca_file(), "SSL_CERT_DIR": empty_dir}
        untrusted = {"SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": empty_dir}

        async def test():
            server, _ = await self.start_server(EchoProtocol, ssl=tls_certs.server_context())
            port = server.sockets[0].getsockname()[1]
            with mock.patch.dict(os.environ, trusted):
                transport, protocol = await self.loop.create_connection(
                    RecordingProtocol, "localhost", port, ssl=True)
            self.addCleanup(self._abort, [protocol])
            context = transport.get_extra_info("sslcontext")
            self.assertIsInstance(context, ssl.SSLContext)
            self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
            self.assertTrue(context.check_hostname)
            await self.assert_echo(transport, protocol)
            with mock.patch.dict(os.environ, untrusted):
                with self.assertRaises(ssl.SSLCertVerificationError) as caught:
                    await self.loop.create_connection(RecordingProtocol, "localhost", port, ssl=True)
            self.assertEqual(caught.exception.verify_code,
                             X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
        self.run_coro(test())

    # -- start_tls

    def test_loop_start_tls_upgrades_a_plain_connection(self):
        # Plain text, "STARTTLS", then both sides upgrade with
        # loop.start_tls and keep the same protocol objects.
        loop = self.loop

        class StartTlsServer(RecordingProtocol):
            def __init__(self):
                super().__init__()
                self.upgraded = loop.create_future()

            def data_received(self, data):
                super().data_received(data)
                if self.data == b"plain\nSTARTTLS\n":
                    self.transport.write(b"OK\n")
                    self.plain_data = bytes(self.data)
                    self.data.clear()
                    asyncio.ensure_future(self.upgrade())

            async def upgrade(self):
                try:
                    tls_transport = await loop.start_tls(
                        self.transport, self, tls_certs.server_context(), server_side=True)
                except Exception as exc:
                    self.upgraded.set_exception(exc)
                    return
                self.transport = tls_transport
                tls_transport.write(b"secure hello")
                self.upgraded.set_result(tls_transport)

        async def test():
            server, accepted = await self.start_server(StartTlsServer)
            transport, protocol = await self.connect(server)
            transport.write(b"plain\nSTARTTLS\n")
            self.assertEqual(await protocol.received(3), b"OK\n")
            tls_transport = await loop.start_tls(transport, protocol, tls_certs.client_context(),
                                                 server_hostname="localhost")
            protocol.transport = tls_transport
            server_protocol = accepted[0]
            server_tls_transport = await server_protocol.upgraded
            self.assertEqual(server_protocol.plain_data, b"plain\nSTARTTLS\n")
            self.assertIsNone(transport.get_extra_info("ssl_object"))
            self.assertIsInstance(tls_transport.get_extra_info("ssl_object"), ssl.SSLObject)
            self.assertEqual(tls_transport.get_extra_info("peercert")["subjectAltName"], SERVER_SAN)
            self.assertTrue(server_tls_transport.get_extra_info("ssl_object").server_side)
            self.assertEqual(await protocol.received(3 + 12), b"OK\nsecure hello")
            tls_transport.write(b"secret")
            self.assertEqual(await server_protocol.received(6), b"secret")
            self.assertEqual(protocol.events.count("connection_made"), 1)
            self.assertEqual(server_protocol.events.count("connection_made"), 1)
            tls_transport.close()
            self.assertIsNone(await server_protocol.lost)
            self.assertIsNone(await protocol.lost)
        self.run_coro(test())

    def test_stream_writer_start_tls(self):
        async def handle(reader, writer):
            try:
                self.assertEqual(await reader.readline(), b"STARTTLS\n")
                writer.write(b"OK\n")
                await writer.drain()
                await writer.start_tls(tls_certs.server_context())
                line = await reader.readline()
                writer.write(b"secure " + line)
                await writer.drain()
            finally:
                writer.close()

        async def test():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.addCleanup(server.close)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            self.assertEqual(await reader.readline(), b"OK\n")
            self.assertIsNone(writer.get_extra_info("ssl_object"))
            await writer.start_tls(tls_certs.client_context(), server_hostname="localhost")
            self.assertIsInstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
            self.assertEqual(writer.get_extra_info("peercert")["subjectAltName"], SERVER_SAN)
            writer.write(b"ping\n")
            self.assertEqual(await reader.readline(), b"secure ping\n")
            await self.close_streams(server, reader, writer)
        self.run_coro(test())

    # -- argument checks (asyncio's messages)

    def test_argument_errors_without_ssl(self):
        async def test():
            server, _ = await self.start_server()
            host, port = server.sockets[0].getsockname()
            cases = [
                (dict(server_hostname="localhost"), "server_hostname is only meaningful with ssl"),
                (dict(ssl_handshake_timeout=1.0), "ssl_handshake_timeout is only meaningful with ssl"),
                (dict(ssl_shutdown_timeout=1.0), "ssl_shutdown_timeout is only meaningful with ssl"),
            ]
            for kwargs, message in cases:
                with self.subTest(**kwargs):
                    with self.assertRaisesRegex(ValueError, f"^{message}$"):
                        await self.loop.create_connection(RecordingProtocol, host, port, **kwargs)
            for kwargs, message in cases[1:]:
                with self.subTest("create_server", **kwargs):
                    with self.assertRaisesRegex(ValueError, f"^{message}$"):
                        await self.loop.create_server(RecordingProtocol, "127.0.0.1", 0, **kwargs)
        self.run_coro(test())

    def test_create_server_refuses_ssl_true(self):
        with self.assertRaisesRegex(TypeError, "^ssl argument must be an SSLContext or None$"):
            self.run_coro(self.loop.create_server(RecordingProtocol, "127.0.0.1", 0, ssl=True))

    def test_argument_errors_with_a_connected_socket(self):
        async def test():
            server, _ = await self.start_server()
            cases = [
                (dict(), "You must set server_hostname when using ssl without a host"),
                (dict(server_hostname="localhost", ssl_handshake_timeout=0),
                 "ssl_handshake_timeout should be a positive number, got 0"),
                (dict(server_hostname="localhost", ssl_handshake_timeout=-1.5),
                 "ssl_handshake_timeout should be a positive number, got -1.5"),
                (dict(server_hostname="localhost", ssl_shutdown_timeout=0),
                 "ssl_shutdown_timeout should be a positive number, got 0"),
            ]
            for kwargs, message in cases:
                with self.subTest(**kwargs):
                    sock = socket.create_connection(server.sockets[0].getsockname())
                    self.addCleanup(sock.close)
                    with self.assertRaisesRegex(ValueError, f"^{message}$"):
                        await self.loop.create_connection(
                            RecordingProtocol, sock=sock, ssl=tls_certs.client_context(), **kwargs)
        self.run_coro(test())

    def test_connect_accepted_socket_needs_a_context(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        with self.assertRaisesRegex(ValueError, "^Server side SSL needs a valid SSLContext$"):
            self.run_coro(self.loop.connect_accepted_socket(RecordingProtocol, a, ssl=True))

    def test_start_tls_argument_errors(self):
        async def test():
            transport, protocol, _ = await self.connected_pair(server_protocol=EchoProtocol)
            with self.assertRaisesRegex(TypeError, "^sslcontext is expected to be an instance of "
                                                   "ssl.SSLContext, got None$"):
                await self.loop.start_tls(transport, protocol, None)
            with self.assertRaisesRegex(ValueError, "^ssl_handshake_timeout should be a positive "
                                                    "number, got 0$"):
                await self.loop.start_tls(transport, protocol, tls_certs.client_context(),
                                          server_hostname="localhost", ssl_handshake_timeout=0)
            # Refused before anything changed: the plain connection still works.
            self.assertIs(transport.get_protocol(), protocol)
            await self.assert_echo(transport, protocol, b"still plain")
        self.run_coro(test())


    def test_start_tls_refuses_a_pipe_transport(self):
        async def test():
            rfd, wfd = os.pipe()
            self.addCleanup(os.close, wfd)
            transport, protocol = await self.loop.connect_read_pipe(
                RecordingProtocol, os.fdopen(rfd, "rb", 0))
            with self.assertRaisesRegex(TypeError, r"is not supported by start_tls\(\)$"):
                await self.loop.start_tls(transport, protocol, tls_certs.client_context(),
                                          server_hostname="localhost")
            # Refused before anything changed: the pipe still reads.
            self.assertIs(transport.get_protocol(), protocol)
            os.write(wfd, b"still plain")
            self.assertEqual(await protocol.received(11), b"still plain")
            transport.close()
            self.assertIsNone(await protocol.lost)
        self.run_coro(test())


@loop_tests(LOOPS)
class TlsUnixTests(TlsEndpointsMixin, UnixEndpoints):

    def test_echo_round_trip(self):
        async def test():
            transport, protocol, server_protocol = await self.tls_pair(server_protocol=EchoProtocol)
            await self.assert_echo(transport, protocol)
            self.assertEqual(transport.get_extra_info("socket").family, socket.AF_UNIX)
            self.assertEqual(transport.get_extra_info("peercert")["subjectAltName"], SERVER_SAN)
            self.assertIsInstance(server_protocol.transport.get_extra_info("ssl_object"),
                                  ssl.SSLObject)
            transport.close()
            self.assertIsNone(await server_protocol.lost)
            self.assertEqual(server_protocol.events[-2:], ["eof_received", "connection_lost"])
        self.run_coro(test())

    def test_wrong_host_is_refused(self):
        async def test():
            server, _ = await self.start_server(ssl=tls_certs.server_context())
            with self.assertRaises(ssl.SSLCertVerificationError) as caught:
                await self.connect(server, ssl=tls_certs.client_context(),
                                   server_hostname="wrong.example")
            self.assertEqual(caught.exception.verify_code, X509_V_ERR_HOSTNAME_MISMATCH)
        self.run_coro(test())

    def test_streams(self):
        async def test():
            path = os.path.join(self.temp_dir(), "tls.sock")
            server = await asyncio.start_unix_server(echo_one_line, path,
                                                     ssl=tls_certs.server_context())
            self.addCleanup(server.close)
            reader, writer = await asyncio.open_unix_connection(
                path, ssl=tls_certs.client_context(), server_hostname="localhost")
            await self.assert_line_echo(server, reader, writer, b"unix\n")
        self.run_coro(test())

    def test_argument_errors(self):
        async def test():
            server, _ = await self.start_server()
            path = server.sockets[0].getsockname()
            with self.assertRaisesRegex(ValueError, "^you have to pass server_hostname when using ssl$"):
                await self.loop.create_unix_connection(RecordingProtocol, path,
                                                       ssl=tls_certs.client_context())
            with self.assertRaisesRegex(ValueError, "^server_hostname is only meaningful with ssl$"):
                await self.loop.create_unix_connection(RecordingProtocol, path,
                                                       server_hostname="localhost")
            with self.assertRaisesRegex(TypeError, "^ssl argument must be an SSLContext or None$"):
                await self.loop.create_unix_server(
                    RecordingProtocol, os.path.join(self.temp_dir(), "x.sock"), ssl=True)
        self.run_coro(test())
