"""HTTP servers and clients of the real world on the loop under test:

- uvicorn (Debian's python3-uvicorn) running in the test's own loop
  (`uvicorn.Server(Config(app, loop="none")).serve()`), serving a Starlette
  and a FastAPI app (realworld_apps) over TCP and over a Unix socket, with
  its httptools and h11 HTTP implementations and its websockets
  implementation; and uvicorn.run() in a process of its own, after
  tapio.install(), stopped by SIGTERM;
- gunicorn with two workers of tapio's classes (tapio.workers.UvicornWorker
  serving the Starlette and FastAPI apps, tapio.workers.AiohttpWorker an
  aiohttp.web app), and, for the asyncio run, the same with the stock
  workers on asyncio's loop;
- as the client, httpx's AsyncClient (keep-alive, a streamed download, a
  streamed POST upload) and websockets, on the loop under test;
- aiohttp's client against aiohttp.web in the same loop, for what
  frameworks_suite leaves out: keep-alive seen from the server, chunked
  uploads, a streamed download and aiohttp's own websockets.

Each answer names the server's loop class, which the test checks. The test
script runs this module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py realworld_http_suite
"""
import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import aiohttp
import httpx
import uvicorn
import websockets
from aiohttp import web

from . import realworld_apps
from .loops import loop_tests
from .realworld_services import (DEADLINE, HERE, PACKAGE_DIR, Gunicorn, free_port, kind_of,
                                 read_file)

LOOPS = ("asyncio", "tapio")

# /stream's shape: 64 chunks of 64 KiB (4 MiB), more than socket buffers hold.
STREAM_CHUNKS, STREAM_CHUNK_SIZE = 64, 64 * 1024
UPLOAD_CHUNKS, UPLOAD_CHUNK_SIZE = 40, 100_000

# gunicorn's worker class per loop under test: tapio's, or the stock ones
# on asyncio's own loop.
UVICORN_WORKER = {"tapio": "tapio.workers.UvicornWorker",
                  "asyncio": "realworld_apps.AsyncioUvicornWorker"}
AIOHTTP_WORKER = {"tapio": "tapio.workers.AiohttpWorker",
                  "asyncio": "aiohttp.worker.GunicornWebWorker"}


async def upload_body():
    """A request body sent as a stream of chunks (chunked encoding)."""
    for index in range(UPLOAD_CHUNKS):
        yield bytes([index]) * UPLOAD_CHUNK_SIZE
        await asyncio.sleep(0)


def upload_digest():
    digest = hashlib.sha256()
    for index in range(UPLOAD_CHUNKS):
        digest.update(bytes([index]) * UPLOAD_CHUNK_SIZE)
    return digest.hexdigest()


async def wait_until_answering(process, client, log_path):
    """Poll GET /loop until the server in process answers."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        if process.poll() is not None:
            raise AssertionError("the server exited:\n" + read_file(log_path))
        with contextlib.suppress(httpx.TransportError):
            return await client.get("/loop")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the server did not answer:\n" + read_file(log_path))
        await asyncio.sleep(0.05)


class ApiChecks:
    """The client side shared by every server: realworld_apps' API through
    httpx and websockets, on the loop under test."""

    def check_server_loop(self, name):
        """name (module.class of the server's loop) is the loop under test's."""
        self.assertEqual(name.split(".")[0], self.loop_name, name)

    async def check_api(self, client, ws_connect, upload=True):
        """client: an httpx.AsyncClient with the server as base_url;
        ws_connect(path): a websockets connection to the server. upload
        false leaves out the streamed upload: over a Unix socket, httpx
        0.23 writes through anyio 3.6's Unix stream, which after a partial
        write sends its buffer again from the start (on any loop; fixed in
        anyio 3.7), so a large body arrives corrupted."""
        self.assertEqual(kind_of(asyncio.get_running_loop()), self.loop_name)
        response = await client.get("/loop")
        self.assertEqual(response.status_code, 200, response.text)
        self.check_server_loop(response.json()["loop"])
        await self.check_json_over_keep_alive(client)
        await self.check_streamed_download(client)
        if upload:
            await self.check_streamed_upload(client)
        await self.check_websocket(ws_connect)

    async def check_json_over_keep_alive(self, client):
        for n in range(20):
            response = await client.get(f"/items/{n}")
            self.assertEqual(response.json(), {"n": n, "square": n * n})
            self.assertEqual(response.http_version, "HTTP/1.1")
        # Every request went over the one kept-alive connection.
        self.assertEqual(len(client._transport._pool.connections), 1)
        response = await client.get("/items/not-a-number")
        self.assertIn(response.status_code, (404, 422))

    async def check_streamed_download(self, client):
        received, chunks = bytearray(), 0
        async with client.stream("GET", "/stream", params={
                "chunks": STREAM_CHUNKS, "size": STREAM_CHUNK_SIZE}) as response:
            self.assertEqual(response.status_code, 200)
            self.assertEqual(response.headers.get("transfer-encoding"), "chunked")
            async for data in response.aiter_bytes():
                received += data
                chunks += 1
        expected = b"".join(realworld_apps.chunk(i, STREAM_CHUNK_SIZE)
                            for i in range(STREAM_CHUNKS))
        self.assertEqual(len(received), len(expected))
        self.assertTrue(received == expected, "the streamed body differs")
        self.assertGreater(chunks, 1, "the body did not arrive as a stream")

    async def check_streamed_upload(self, client):
        response = await client.post("/upload", content=upload_body())
        self.assertEqual(response.status_code, 200, response.text)
        summary = response.json()
        self.assertEqual(summary["size"], UPLOAD_CHUNKS * UPLOAD_CHUNK_SIZE)
        self.assertEqual(summary["sha256"], upload_digest())
        self.assertGreater(summary["chunks"], 1, "the server did not read a stream")

    async def check_websocket(self, ws_connect):
        async with ws_connect("/ws") as ws:
            self.check_server_loop(await ws.recv())
            for message in ("hello", "x" * 200_000, b"\x00\xffbinary"):
                await ws.send(message)
                self.assertEqual(await ws.recv(), message)


@loop_tests(LOOPS)
class UvicornInProcessTests(ApiChecks):
    """uvicorn serving in the loop under test, which also runs the client."""

    @contextlib.asynccontextmanager
    async def uvicorn_serving(self, app, http, sock):
        config = uvicorn.Config(app, loop="none", http=http, ws="websockets",
                                lifespan="on", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            self.assertFalse(task.done(), "uvicorn stopped while starting")
            await asyncio.sleep(0.01)
        self.assertEqual(kind_of(server.servers[0]), self.loop_name, server.servers[0])
        try:
            yield
        finally:
            server.should_exit = True
            await task

    def test_starlette_app_over_tcp_with_httptools(self):
        sock = socket.create_server(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]

        async def test():
            async with self.uvicorn_serving(realworld_apps.starlette_app(), "httptools", sock), \
                    httpx.AsyncClient(base_url=url) as client:
                await self.check_api(
                    client, lambda path: websockets.connect(url.replace("http", "ws") + path))
        self.run_coro(test(), timeout=30)
        self.check_signal_handlers_restored()

    def test_fastapi_app_over_unix_socket_with_h11(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "uvicorn.sock")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)

        async def test():
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with self.uvicorn_serving(realworld_apps.fastapi_app(), "h11", sock), \
                    httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                await self.check_api(
                    client, lambda ws_path: websockets.unix_connect(path, "ws://app" + ws_path),
                    upload=False)
                response = await client.post("/items", json={"name": "bolts",
                                                             "quantities": [3, 4]})
                self.assertEqual(response.json(), {"name": "bolts", "total": 7})
                response = await client.post("/items", json={"name": "bolts"})
                self.assertEqual(response.status_code, 422)  # FastAPI's validation
        self.run_coro(test(), timeout=30)
        self.check_signal_handlers_restored()

    def check_signal_handlers_restored(self):
        """uvicorn set SIGINT/SIGTERM handlers on the loop (loop.add_signal_
        handler); closing the loop gives the process its own back."""
        self.loop.close()
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        self.assertEqual(signal.getsignal(signal.SIGTERM), signal.SIG_DFL)


# uvicorn.run() as a program calls it: on tapio after tapio.install(), with
# loop="none" so that uvicorn keeps the policy's loop; on asyncio with
# loop="asyncio" (uvicorn's default, "auto", would pick uvloop).
UVICORN_RUN = """
import sys
import uvicorn
loop_name, port = sys.argv[1:]
if loop_name == "tapio":
    import tapio
    tapio.install()
uvicorn.run("realworld_apps:fastapi_app", factory=True, host="127.0.0.1", port=int(port),
            loop="none" if loop_name == "tapio" else "asyncio")
"""


@loop_tests(LOOPS)
class UvicornRunTests(ApiChecks):
    """uvicorn.run() in its own process, stopped by SIGTERM through the
    signal handlers it sets on its loop."""

    def test_uvicorn_run_serves_until_sigterm(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        log_path = os.path.join(directory, "uvicorn.log")
        url = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_DIR, HERE]))
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-c", UVICORN_RUN, self.loop_name,
                                        url.rsplit(":", 1)[1]],
                                       env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)

        async def test():
            async with httpx.AsyncClient(base_url=url) as client:
                await wait_until_answering(process, client, log_path)
            async with httpx.AsyncClient(base_url=url) as client:
                await self.check_api(
                    client, lambda path: websockets.connect(url.replace("http", "ws") + path))
        self.run_coro(test(), timeout=30)

        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(DEADLINE), 0, read_file(log_path))
        log = read_file(log_path)
        self.assertIn("Finished server process", log)
        self.assertNotIn("Traceback", log)


@loop_tests(LOOPS)
class GunicornTests(ApiChecks):
    """gunicorn with two workers whose loop is the loop under test; the httpx
    client runs on the loop under test too."""

    def serve(self, worker, app):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        gunicorn = Gunicorn(worker, app, directory, pythonpath=[HERE])
        self.addCleanup(gunicorn.kill)
        return gunicorn, f"http://127.0.0.1:{gunicorn.port}"

    def check_stops_cleanly(self, gunicorn):
        returncode, log = gunicorn.stop()
        self.assertEqual(returncode, 0, log)
        self.assertNotIn("Traceback", log)

    def run_api_checks(self, worker, app):
        gunicorn, url = self.serve(worker, app)

        async def test():
            async with httpx.AsyncClient(base_url=url) as client:
                await wait_until_answering(gunicorn.process, client, gunicorn.log_path)
            # A new client: the first may have left refused attempts behind.
            async with httpx.AsyncClient(base_url=url) as client:
                await self.check_api(
                    client, lambda path: websockets.connect(url.replace("http", "ws") + path))
        self.run_coro(test(), timeout=45)
        self.check_stops_cleanly(gunicorn)

    def test_uvicorn_worker_serving_starlette(self):
        self.run_api_checks(UVICORN_WORKER[self.loop_name], "realworld_apps:starlette_app()")

    def test_uvicorn_worker_serving_fastapi(self):
        self.run_api_checks(UVICORN_WORKER[self.loop_name], "realworld_apps:fastapi_app()")

    def test_aiohttp_worker(self):
        self.run_api_checks(AIOHTTP_WORKER[self.loop_name], "realworld_apps:aiohttp_app()")


@loop_tests(LOOPS)
class AiohttpClientTests:
    """aiohttp's client and server (realworld_apps.aiohttp_app) in the loop
    under test."""

    @contextlib.asynccontextmanager
    async def serving(self):
        async def peer(request):
            return web.json_response({"port": request.transport.get_extra_info("peername")[1]})

        app = realworld_apps.aiohttp_app()
        app.router.add_get("/peer", peer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    def test_keep_alive_seen_by_the_server(self):
        async def test():
            async with self.serving() as url, aiohttp.ClientSession() as session:
                ports = set()
                for _ in range(10):
                    async with session.get(f"{url}/peer") as response:
                        ports.add((await response.json())["port"])
                self.assertEqual(len(ports), 1, "the connection was not kept alive")
                async with session.get(f"{url}/loop") as response:
                    self.assertEqual((await response.json())["loop"].split(".")[0],
                                     self.loop_name)
                # The server's keep-alive timeout has not closed it either.
                await asyncio.sleep(0.2)
                async with session.get(f"{url}/peer") as response:
                    self.assertEqual({(await response.json())["port"]}, ports)
        self.run_coro(test())

    def test_chunked_upload_and_streamed_download(self):
        async def test():
            async with self.serving() as url, aiohttp.ClientSession() as session:
                async with session.post(f"{url}/upload", data=upload_body()) as response:
                    self.assertEqual(response.request_info.headers["Transfer-Encoding"],
                                     "chunked")
                    summary = await response.json()
                self.assertEqual(summary["size"], UPLOAD_CHUNKS * UPLOAD_CHUNK_SIZE)
                self.assertEqual(summary["sha256"], upload_digest())
                self.assertGreater(summary["chunks"], 1)

                received = bytearray()
                params = {"chunks": STREAM_CHUNKS, "size": STREAM_CHUNK_SIZE}
                async with session.get(f"{url}/stream", params=params) as response:
                    self.assertEqual(response.headers["Transfer-Encoding"], "chunked")
                    async for data in response.content.iter_chunked(10_000):
                        received += data
                expected = b"".join(realworld_apps.chunk(i, STREAM_CHUNK_SIZE)
                                    for i in range(STREAM_CHUNKS))
                self.assertTrue(received == expected, "the streamed body differs")
        self.run_coro(test())

    def test_aiohttp_websockets(self):
        async def test():
            async with self.serving() as url, aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{url}/ws") as ws:
                    self.assertEqual((await ws.receive_str()).split(".")[0], self.loop_name)
                    for message in ("hello", "y" * 300_000):
                        await ws.send_str(message)
                        self.assertEqual(await ws.receive_str(), message)
                    await ws.send_bytes(b"\x00\x01")
                    self.assertEqual(await ws.receive_bytes(), b"\x00\x01")
                    await ws.close()
                    self.assertTrue(ws.closed)
        self.run_coro(test())
