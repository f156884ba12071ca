"""contextvars: protocol factories and callbacks run in a copy of the context
that was current when the transport was made (create_connection,
create_unix_connection, connect_accepted_socket, create_datagram_endpoint,
connect_read_pipe, connect_write_pipe, subprocess_exec, subprocess_shell,
start_tls) or, for a server, a copy per accepted connection of the context
current when serving started (create_server, create_unix_server, streams'
start_server), as in asyncio.

What the tests hold both loops to is what a program can see: a ContextVar set
before the call is seen by every callback, and a ContextVar set inside one
connection's callbacks is seen neither by another connection nor by the
caller nor by the code that runs the loop. Which of one transport's
callbacks share a context object is asyncio's implementation detail (a var
set in its connection_made is not seen by its data_received, for one) and
is not tested. pause_writing inside write() runs in write()'s caller's
context, as in asyncio.
"""

import asyncio
import contextvars
import os
import shutil
import socket
import sys
import tempfile

from . import tls_certs
from .loops import loop_tests
from .support import wait_until

LOOPS = ("asyncio", "tapio")
KiB = 1 << 10
MiB = 1 << 20

# Set by a test before the call that makes a transport or a server: every
# callback must see that value.
REQUEST = contextvars.ContextVar("request", default="outer")
# Set by every callback, after noting what it saw, to its connection's name:
# no other connection, and not the caller, may see it.
MARK = contextvars.ContextVar("mark", default=None)


class Log:
    """What the callbacks of one connection saw: (callback, REQUEST, MARK)."""

    def __init__(self, name):
        self.name = name
        self.calls = []

    def note(self, callback, mark=True):
        self.calls.append((callback, REQUEST.get(), MARK.get()))
        if mark:
            MARK.set(self.name)

    def callbacks(self):
        return [callback for callback, _, _ in self.calls]


class ContextProtocol(asyncio.Protocol):
    """Notes every callback. `server` protocols are made by a server, whose
    factory runs in the connection's own context (so it marks it too);
    `echo` writes back what arrives."""

    def __init__(self, name, *, server=False, echo=False):
        loop = asyncio.get_running_loop()
        self.log = Log(name)
        self.log.note("factory", mark=server)
        self.echo = echo
        self.transport = None
        self.data = bytearray()
        self.made = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.log.note("connection_made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        self.log.note("data_received")
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.log.note("eof_received")

    def pause_writing(self):
        self.log.note("pause_writing")

    def resume_writing(self):
        self.log.note("resume_writing")

    def connection_lost(self, exc):
        self.log.note("connection_lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class ContextBufferedProtocol(asyncio.BufferedProtocol):
    def __init__(self, name):
        loop = asyncio.get_running_loop()
        self.log = Log(name)
        self.log.note("factory", mark=False)
        self.buffer = bytearray(64 * KiB)
        self.data = bytearray()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.log.note("connection_made")

    def get_buffer(self, sizehint):
        self.log.note("get_buffer")
        return self.buffer

    def buffer_updated(self, nbytes):
        self.log.note("buffer_updated")
        self.data += self.buffer[:nbytes]

    def eof_received(self):
        self.log.note("eof_received")

    def connection_lost(self, exc):
        self.log.note("connection_lost")
        self.lost.set_result(exc)


class ContextDatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, name, *, echo=False):
        loop = asyncio.get_running_loop()
        self.log = Log(name)
        self.log.note("factory", mark=False)
        self.echo = echo
        self.transport = None
        self.received = []
        self.errors = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.log.note("connection_made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self.log.note("datagram_received")
        self.received.append(data)
        if self.echo:
            self.transport.sendto(data, addr)

    def error_received(self, exc):
        self.log.note("error_received")
        self.errors.append(exc)

    def connection_lost(self, exc):
        self.log.note("connection_lost")
        self.lost.set_result(exc)


class ContextSubprocessProtocol(asyncio.SubprocessProtocol):
    def __init__(self, name):
        loop = asyncio.get_running_loop()
        self.log = Log(name)
        self.log.note("factory", mark=False)
        self.output = bytearray()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.log.note("connection_made")

    def pipe_data_received(self, fd, data):
        self.log.note("pipe_data_received")
        self.output += data

    def pipe_connection_lost(self, fd, exc):
        self.log.note("pipe_connection_lost")

    def process_exited(self):
        self.log.note("process_exited")

    def connection_lost(self, exc):
        self.log.note("connection_lost")
        self.lost.set_result(exc)


async def in_context(request, coro_function, *args):
    """Await coro_function(*args) in a task of its own whose REQUEST is
    `request` (so that concurrent calls are made from different contexts)."""
    async def run():
        REQUEST.set(request)
        return await coro_function(*args)
    return await asyncio.create_task(run())


@loop_tests(LOOPS)
class ContextTests:
    def run_isolated(self, coro):
        """Run coro on the loop from a fresh copy of the current context,
        which no callback may change."""
        context = contextvars.copy_context()
        result = context.run(self.run_coro, coro)
        self.assertNotIn(MARK, context, "a callback's context variable reached "
                                        "the context that runs the loop")
        self.assertEqual(context.get(REQUEST, "outer"), "outer")
        return result

    def assertSaw(self, log, request, required=(), exempt=()):
        """Each of log's callbacks saw `request` (but those in `exempt`) and
        no other connection's mark; every callback in `required` ran."""
        for callback in required:
            self.assertIn(callback, log.callbacks(), f"{log.name}: no {callback}")
        for callback, seen_request, seen_mark in log.calls:
            if callback not in exempt:
                self.assertEqual(seen_request, request,
                                 f"{log.name}.{callback} ran in the wrong context")
            self.assertIn(seen_mark, (None, log.name),
                          f"{log.name}.{callback} saw another connection's context")

    def assertCallerUntouched(self, request):
        self.assertIsNone(MARK.get(), "a callback's context variable reached the caller")
        self.assertEqual(REQUEST.get(), request)

    # ---- stream connections and servers -----------------------------------

    async def _server_and_two_clients(self, create_server, connect, tls=False):
        """A server made with REQUEST "server", two connections made
        concurrently from contexts "a" and "b"; each client sends, the
        server echoes, each client then half-closes (closes, over TLS) and
        everything ends."""
        accepted = []

        def factory():
            accepted.append(ContextProtocol(f"server{len(accepted)}", server=True, echo=True))
            return accepted[-1]

        async def talk(name):
            transport, protocol = await connect(server, lambda: ContextProtocol(name))
            transport.write(b"ping")
            await wait_until(lambda: len(protocol.data) == 4)
            transport.close() if tls else transport.write_eof()
            await protocol.lost
            return protocol

        REQUEST.set("server")
        server = await create_server(factory)
        try:
            REQUEST.set("client")
            a, b = await asyncio.gather(in_context("a", talk, "a"), in_context("b", talk, "b"))
            await wait_until(lambda: len(accepted) == 2 and
                             all(p.lost.done() for p in accepted))
        finally:
            server.close()
        self.assertCallerUntouched("client")
        every = ("factory", "connection_made", "data_received", "connection_lost")
        if not tls:
            every += ("eof_received",)
        self.assertSaw(a.log, "a", every)
        self.assertSaw(b.log, "b", every)
        for protocol in accepted:
            self.assertSaw(protocol.log, "server", every)

    def test_create_connection_and_create_server(self):
        async def create_server(factory):
            return await self.loop.create_server(factory, "127.0.0.1", 0)

        async def connect(server, factory):
            return await self.loop.create_connection(factory, *server.sockets[0].getsockname())

        self.run_isolated(self._server_and_two_clients(create_server, connect))

    def test_create_unix_connection_and_create_unix_server(self):
        directory = self.temp_dir()

        async def create_server(factory):
            return await self.loop.create_unix_server(
                factory, os.path.join(directory, "server.sock"))

        async def connect(server, factory):
            return await self.loop.create_unix_connection(factory,
                                                          server.sockets[0].getsockname())

        self.run_isolated(self._server_and_two_clients(create_server, connect))

    async def connect_to_listener(self, factory):
        """(transport, protocol, peer): create_connection to a plain
        listening socket, and the socket it accepted."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            connecting = asyncio.ensure_future(
                self.loop.create_connection(factory, *listener.getsockname()))
            peer, _ = await self.loop.sock_accept(listener)
        try:
            transport, protocol = await connecting
        except BaseException:
            peer.close()
            raise
        return transport, protocol, peer

    def temp_dir(self):
        path = tempfile.mkdtemp(prefix="tapio-test-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def test_server_context_is_the_one_current_when_serving_starts(self):
        async def test():
            accepted = []

            def factory():
                accepted.append(ContextProtocol("server", server=True))
                return accepted[-1]

            REQUEST.set("created")
            server = await self.loop.create_server(factory, "127.0.0.1", 0,
                                                   start_serving=False)
            try:
                REQUEST.set("started")
                await server.start_serving()
                REQUEST.set("client")
                with socket.create_connection(server.sockets[0].getsockname()) as sock:
                    await wait_until(lambda: accepted and accepted[0].made.done())
            finally:
                server.close()
            await wait_until(lambda: accepted[0].lost.done())
            self.assertSaw(accepted[0].log, "started",
                           ("factory", "connection_made", "connection_lost"))
        self.run_isolated(test())

    def test_buffered_protocol(self):
        async def test():
            REQUEST.set("client")
            transport, protocol, peer = await self.connect_to_listener(
                lambda: ContextBufferedProtocol("client"))
            with peer:
                await self.loop.sock_sendall(peer, b"buffered")
                await wait_until(lambda: len(protocol.data) == 8)
                peer.shutdown(socket.SHUT_WR)
                await wait_until(lambda: "eof_received" in protocol.log.callbacks())
                transport.abort()
                await protocol.lost
            self.assertCallerUntouched("client")
            self.assertSaw(protocol.log, "client",
                           ("connection_made", "get_buffer", "buffer_updated", "eof_received",
                            "connection_lost"))
        self.run_isolated(test())

    def test_connect_accepted_socket(self):
        async def test():
            ours, peer = socket.socketpair()
            with peer:
                REQUEST.set("accepted")
                transport, protocol = await self.loop.connect_accepted_socket(
                    lambda: ContextProtocol("accepted"), ours)
                REQUEST.set("later")
                await self.loop.sock_sendall(peer, b"hello")
                await wait_until(lambda: len(protocol.data) == 5)
                peer.shutdown(socket.SHUT_WR)
                await protocol.lost
            self.assertCallerUntouched("later")
            self.assertSaw(protocol.log, "accepted",
                           ("factory", "connection_made", "data_received", "eof_received",
                            "connection_lost"))
        self.run_isolated(test())

    # ---- flow control -------------------------------------------------------

    def test_pause_writing_inside_write_runs_in_the_callers_context(self):
        async def test():
            REQUEST.set("client")
            transport, protocol, peer = await self.connect_to_listener(
                lambda: ContextProtocol("client"))
            with peer:
                transport.set_write_buffer_limits(high=16 * KiB)

                async def write():
                    REQUEST.set("writer")
                    transport.write(b"x" * (8 * MiB))
                    self.assertIn("pause_writing", protocol.log.callbacks())
                    return MARK.get()
                # asyncio calls pause_writing from write() itself.
                self.assertEqual(await asyncio.create_task(write()), "client")
                self.assertEqual(protocol.log.calls[-1][:2], ("pause_writing", "writer"))
                transport.abort()
                await protocol.lost
            self.assertCallerUntouched("client")
        self.run_isolated(test())

    def test_flow_control_from_inside_a_callback(self):
        # The server writes from data_received, so pause_writing runs inside a
        # callback's context; resume_writing comes from the loop.
        async def test():
            accepted = []

            class Flooding(ContextProtocol):
                def connection_made(self, transport):
                    transport.set_write_buffer_limits(high=16 * KiB)
                    super().connection_made(transport)

                def data_received(self, data):
                    super().data_received(data)
                    self.transport.write(b"y" * (4 * MiB))
                    self.transport.write_eof()

            def factory():
                accepted.append(Flooding(f"server{len(accepted)}", server=True))
                return accepted[-1]

            REQUEST.set("server")
            server = await self.loop.create_server(factory, "127.0.0.1", 0)
            try:
                REQUEST.set("client")
                transport, protocol = await self.loop.create_connection(
                    lambda: ContextProtocol("client"), *server.sockets[0].getsockname())
                transport.pause_reading()
                transport.write(b"go")
                await wait_until(lambda: accepted and
                                 "pause_writing" in accepted[0].log.callbacks())
                transport.resume_reading()
                # The server's write_eof, then the client's eof_received
                # closes the connection.
                await asyncio.gather(protocol.lost, accepted[0].lost)
                self.assertEqual(len(protocol.data), 4 * MiB)
            finally:
                server.close()
            self.assertCallerUntouched("client")
            self.assertSaw(accepted[0].log, "server",
                           ("connection_made", "data_received", "pause_writing",
                            "resume_writing", "connection_lost"))
            self.assertSaw(protocol.log, "client",
                           ("connection_made", "data_received", "eof_received",
                            "connection_lost"))
        self.run_isolated(test())

    # ---- datagrams ------------------------------------------------------------

    def test_create_datagram_endpoint(self):
        async def test():
            REQUEST.set("udp-server")
            server_transport, server = await self.loop.create_datagram_endpoint(
                lambda: ContextDatagramProtocol("server", echo=True),
                local_addr=("127.0.0.1", 0))
            address = server_transport.get_extra_info("sockname")

            async def ping(name):
                transport, protocol = await self.loop.create_datagram_endpoint(
                    lambda: ContextDatagramProtocol(name), remote_addr=address)
                transport.sendto(b"ping")
                await wait_until(lambda: protocol.received)
                transport.close()
                await protocol.lost
                return protocol

            REQUEST.set("udp-client")
            a, b = await asyncio.gather(in_context("a", ping, "a"), in_context("b", ping, "b"))
            self.assertCallerUntouched("udp-client")
            # asyncio's connection_lost after close() runs in close()'s
            # caller's context: close from the endpoint's.
            REQUEST.set("udp-server")
            server_transport.close()
            await server.lost
            for protocol, request in ((a, "a"), (b, "b"), (server, "udp-server")):
                self.assertSaw(protocol.log, request,
                               ("connection_made", "datagram_received", "connection_lost"))
        self.run_isolated(test())

    def test_datagram_error_received(self):
        async def test():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                closed = sock.getsockname()  # nobody reads it once closed
            REQUEST.set("udp")
            transport, protocol = await self.loop.create_datagram_endpoint(
                lambda: ContextDatagramProtocol("udp"), remote_addr=closed)
            transport.sendto(b"anyone?")
            await wait_until(lambda: protocol.errors)
            transport.close()
            await protocol.lost
            self.assertCallerUntouched("udp")
            self.assertSaw(protocol.log, "udp",
                           ("connection_made", "error_received", "connection_lost"))
        self.run_isolated(test())

    # ---- pipes ----------------------------------------------------------------

    def test_connect_read_pipe(self):
        async def test():
            r, w = os.pipe()
            REQUEST.set("read-pipe")
            transport, protocol = await self.loop.connect_read_pipe(
                lambda: ContextProtocol("reader"), os.fdopen(r, "rb", 0))
            REQUEST.set("later")
            os.write(w, b"through the pipe")
            os.close(w)
            await protocol.lost
            self.assertEqual(bytes(protocol.data), b"through the pipe")
            self.assertCallerUntouched("later")
            self.assertSaw(protocol.log, "read-pipe",
                           ("factory", "connection_made", "data_received", "eof_received",
                            "connection_lost"))
        self.run_isolated(test())

    def test_connect_write_pipe(self):
        async def test():
            r, w = os.pipe()
            REQUEST.set("write-pipe")
            transport, protocol = await self.loop.connect_write_pipe(
                lambda: ContextProtocol("writer"), os.fdopen(w, "wb", 0))
            transport.set_write_buffer_limits(high=16 * KiB)

            async def write():
                transport.write(b"z" * MiB)  # more than the pipe holds
                self.assertIn("pause_writing", protocol.log.callbacks())
            # In a task: pause_writing runs inside write(), in its caller's
            # context.
            await asyncio.create_task(write())
            REQUEST.set("later")
            os.set_blocking(r, False)
            try:
                got = 0
                while got < MiB:
                    try:
                        got += len(os.read(r, MiB))
                    except BlockingIOError:
                        await asyncio.sleep(0.001)
                await wait_until(lambda: "resume_writing" in protocol.log.callbacks())
            finally:
                os.close(r)
            await protocol.lost  # the reader went away
            self.assertCallerUntouched("later")
            self.assertSaw(protocol.log, "write-pipe",
                           ("factory", "connection_made", "pause_writing", "resume_writing",
                            "connection_lost"))
        self.run_isolated(test())

    # ---- subprocesses ------------------------------------------------------------

    def _exempt_subprocess_callbacks(self):
        # Stock asyncio before 3.12 hears of the exit from its child watcher
        # thread: process_exited, and connection_lost when it comes last,
        # may run in that thread's empty context.
        if self.loop_name == "asyncio" and sys.version_info < (3, 12):
            return ("process_exited", "connection_lost")
        return ()

    def _two_children(self, spawn):
        async def child(name):
            transport, protocol = await spawn(lambda: ContextSubprocessProtocol(name), name)
            await protocol.lost
            self.assertEqual(protocol.output.strip(), name.encode())
            transport.close()
            return protocol

        async def test():
            REQUEST.set("caller")
            a, b = await asyncio.gather(in_context("a", child, "a"), in_context("b", child, "b"))
            self.assertCallerUntouched("caller")
            for protocol, request in ((a, "a"), (b, "b")):
                self.assertSaw(protocol.log, request,
                               ("factory", "connection_made", "pipe_data_received",
                                "pipe_connection_lost", "process_exited", "connection_lost"),
                               exempt=self._exempt_subprocess_callbacks())
        self.run_isolated(test())

    def test_subprocess_exec(self):
        def spawn(factory, name):
            return self.loop.subprocess_exec(factory, sys.executable, "-c", f"print({name!r})")
        self._two_children(spawn)

    def test_subprocess_shell(self):
        def spawn(factory, name):
            return self.loop.subprocess_shell(factory, f"echo {name}")
        self._two_children(spawn)

    # ---- TLS ------------------------------------------------------------------

    def test_tls_create_connection_and_create_server(self):
        async def create_server(factory):
            return await self.loop.create_server(factory, "127.0.0.1", 0,
                                                 ssl=tls_certs.server_context())

        async def connect(server, factory):
            host, port = server.sockets[0].getsockname()
            return await self.loop.create_connection(
                factory, host, port, ssl=tls_certs.client_context(),
                server_hostname="localhost")

        self.run_isolated(self._server_and_two_clients(create_server, connect, tls=True))

    def test_start_tls(self):
        async def test():
            accepted = []

            def factory():
                accepted.append(ContextProtocol("server", server=True, echo=True))
                return accepted[-1]

            REQUEST.set("server")
            server = await self.loop.create_server(factory, "127.0.0.1", 0,
                                                   ssl=tls_certs.server_context())
            try:
                # The plain connection comes from another context than
                # start_tls: the TLS protocol runs in start_tls's caller's.
                raw_transport, raw = await in_context(
                    "raw", self.loop.create_connection, lambda: ContextProtocol("raw"),
                    *server.sockets[0].getsockname())
                REQUEST.set("start_tls")
                protocol = ContextProtocol("tls")
                transport = await self.loop.start_tls(
                    raw_transport, protocol, tls_certs.client_context(),
                    server_hostname="localhost")
                transport.write(b"ping")
                await wait_until(lambda: len(protocol.data) == 4)
                transport.close()
                await protocol.lost
                await wait_until(lambda: accepted and accepted[0].lost.done())
            finally:
                server.close()
            self.assertCallerUntouched("start_tls")
            self.assertSaw(raw.log, "raw", ("factory", "connection_made"))
            self.assertSaw(protocol.log, "start_tls", ("data_received", "connection_lost"))
            self.assertSaw(accepted[0].log, "server",
                           ("factory", "connection_made", "data_received", "connection_lost"))
        self.run_isolated(test())

    # ---- streams ----------------------------------------------------------------

    def test_streams(self):
        async def test():
            handled = []

            async def handler(reader, writer):
                log = Log(f"handler{len(handled)}")
                handled.append(log)
                log.note("client_connected_cb")
                line = await reader.readline()
                log.note("read")
                writer.write(line)
                await writer.drain()
                writer.close()
                await writer.wait_closed()

            REQUEST.set("stream-server")
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            try:
                async def talk(name):
                    reader, writer = await asyncio.open_connection(
                        *server.sockets[0].getsockname())
                    writer.write(name.encode() + b"\n")
                    line = await reader.readline()
                    writer.close()
                    await writer.wait_closed()
                    return line

                REQUEST.set("client")
                lines = await asyncio.gather(in_context("a", talk, "a"),
                                             in_context("b", talk, "b"))
                self.assertEqual(sorted(lines), [b"a\n", b"b\n"])
                await wait_until(lambda: len(handled) == 2 and
                                 all("read" in log.callbacks() for log in handled))
            finally:
                server.close()
            self.assertCallerUntouched("client")
            for log in handled:
                self.assertSaw(log, "stream-server", ("client_connected_cb", "read"))
        self.run_isolated(test())
