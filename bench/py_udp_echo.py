"""Python UDP echo server for the benchmark: py_udp_echo.py PORT LOOP

LOOP is tapio, uvloop or asyncio. Binds 127.0.0.1:PORT and sends every
datagram back to its sender. Prints 'ready' once bound (or 'unavailable' and
exits 0 when the loop cannot be imported here or has no datagram endpoints),
runs until SIGTERM or SIGINT, then exits 0.
"""
import asyncio
import signal
import sys


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def loop_factory(name):
    if name == "tapio":
        import tapio
        return tapio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def serve(port):
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            EchoDatagramProtocol, local_addr=("127.0.0.1", port))
    except NotImplementedError:
        print("unavailable", flush=True)
        return
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print("ready", flush=True)
    await stop
    transport.close()


def main():
    port, loop_name = int(sys.argv[1]), sys.argv[2]
    try:
        factory = loop_factory(loop_name)
    except ImportError:
        print("unavailable", flush=True)
        return
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(port))


if __name__ == "__main__":
    main()
