"""Python echo server for the benchmark:
    py_echo_server.py PORT LOOP MODE [--tls CERT KEY]

LOOP is tapio, uvloop or asyncio; MODE is protocol, buffered or streams.
With --tls the server speaks TLS with that certificate chain and key.
Prints 'ready' once listening (or 'unavailable' and exits 0 when the loop
cannot be imported here), runs until SIGTERM or SIGINT, then exits 0.
"""
import asyncio
import signal
import ssl
import sys

READ_SIZE = 256 * 1024


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint):
        return self.buffer

    def buffer_updated(self, nbytes):
        self.transport.write(self.buffer[:nbytes])


async def echo_stream(reader, writer):
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load client resets its connections when it is done
    writer.close()


def loop_factory(name):
    if name == "tapio":
        import tapio
        return tapio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def serve(port, mode, context):
    loop = asyncio.get_running_loop()
    if mode == "streams":
        server = await asyncio.start_server(echo_stream, "127.0.0.1", port, ssl=context)
    else:
        protocol = EchoBufferedProtocol if mode == "buffered" else EchoProtocol
        server = await loop.create_server(protocol, "127.0.0.1", port, ssl=context)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print("ready", flush=True)
    await stop
    server.close()


def main():
    port, loop_name, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = None
    if sys.argv[4:5] == ["--tls"]:
        context = tls_context(sys.argv[5], sys.argv[6])
    try:
        factory = loop_factory(loop_name)
    except ImportError:
        print("unavailable", flush=True)
        return
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(port, mode, context))


if __name__ == "__main__":
    main()
