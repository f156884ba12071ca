"""Frameworks on the loop: an aiohttp server and client, a websockets echo,
both also over TLS with the test certificate authority.
The packages come from Debian (python3-aiohttp, python3-websockets), so the
test script runs this module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py frameworks_suite
"""
import contextlib

import aiohttp
import websockets
from aiohttp import web

from . import tls_certs
from .loops import loop_tests

LOOPS = ("asyncio", "tapio")


@contextlib.asynccontextmanager
async def serving(app, ssl_context=None):
    """Run an aiohttp app on a free port of 127.0.0.1; yields its base URL
    (https with a TLS context)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@loop_tests(LOOPS)
class FrameworkTests:
    def test_aiohttp_server_and_client(self):
        async def hello(request):
            return web.Response(text="hello " + request.match_info["name"])

        async def test():
            app = web.Application()
            app.router.add_get("/{name}", hello)
            async with serving(app) as url, aiohttp.ClientSession() as session:
                async with session.get(f"{url}/tapio") as response:
                    self.assertEqual(response.status, 200)
                    self.assertEqual(await response.text(), "hello tapio")
                # a second request reuses the keep-alive connection
                async with session.get(f"{url}/again") as response:
                    self.assertEqual(await response.text(), "hello again")
        self.run_coro(test())

    def test_aiohttp_large_body_both_ways(self):
        body = bytes(range(256)) * 4096  # 1 MiB

        async def echo(request):
            return web.Response(body=await request.read())

        async def test():
            app = web.Application(client_max_size=2 * len(body))
            app.router.add_post("/echo", echo)
            async with serving(app) as url, aiohttp.ClientSession() as session:
                async with session.post(f"{url}/echo", data=body) as response:
                    self.assertEqual(await response.read(), body)
        self.run_coro(test())

    def test_websockets_echo(self):
        async def echo(websocket, *_):
            async for message in websocket:
                await websocket.send(message)

        async def test():
            async with websockets.serve(echo, "127.0.0.1", 0) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
                    for message in ("ping", "x" * 100_000, b"\x00\x01binary"):
                        await ws.send(message)
                        self.assertEqual(await ws.recv(), message)
        self.run_coro(test())

    def test_aiohttp_over_tls(self):
        body = bytes(range(256)) * 1024

        async def echo(request):
            return web.Response(body=await request.read(),
                                headers={"X-Cipher": request.transport.get_extra_info("cipher")[0]})

        async def test():
            app = web.Application()
            app.router.add_post("/echo", echo)
            async with serving(app, tls_certs.server_context()) as url, \
                    aiohttp.ClientSession() as session:
                async with session.post(f"{url}/echo", data=body,
                                        ssl=tls_certs.client_context()) as response:
                    self.assertEqual(response.status, 200)
                    self.assertEqual(await response.read(), body)
                    self.assertTrue(response.headers["X-Cipher"])
                # an unverifiable server is refused
                with self.assertRaises(aiohttp.ClientConnectorCertificateError):
                    await session.get(f"{url}/echo", ssl=tls_certs.client_context(
                        trust_test_ca=False))
        self.run_coro(test())

    def test_websockets_over_tls(self):
        async def echo(websocket, *_):
            async for message in websocket:
                await websocket.send(message)

        async def test():
            async with websockets.serve(echo, "127.0.0.1", 0,
                                        ssl=tls_certs.server_context()) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                async with websockets.connect(f"wss://localhost:{port}",
                                              ssl=tls_certs.client_context()) as ws:
                    for message in ("ping", "x" * 100_000):
                        await ws.send(message)
                        self.assertEqual(await ws.recv(), message)
        self.run_coro(test())
