"""tapio's gunicorn workers (tapio.workers): gunicorn runs a tiny app with two
workers of each class; the test checks the answers come from tapio loops in
two distinct workers, over keep-alive connections, and that SIGTERM stops
gunicorn cleanly. gunicorn, aiohttp and uvicorn come from Debian
(gunicorn, python3-aiohttp, python3-uvicorn), so the test script runs this
module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py workers_suite
"""
import http.client
import os
import shutil
import tempfile
import textwrap
import unittest

from .realworld_services import DEADLINE, Gunicorn, wait_until

# Each answer names the running loop's class and the worker's pid. /hold
# marks its start with a file, then blocks its worker's loop until the test
# makes the file "release" (at most 20 s, within gunicorn's 30 s worker
# timeout), so that a connection made meanwhile can only be accepted by the
# other worker, however slowly that one boots.
APP_MODULE = textwrap.dedent('''
    import asyncio, os, time

    HERE = os.path.dirname(os.path.abspath(__file__))

    def answer(path):
        if path == "/hold":
            open(os.path.join(HERE, "holding"), "w").close()
            deadline = time.monotonic() + 20
            while not os.path.exists(os.path.join(HERE, "release")):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        loop = type(asyncio.get_running_loop())
        return f"{loop.__module__}.{loop.__qualname__} {os.getpid()}".encode()

    def aiohttp_app():
        from aiohttp import web

        async def handle(request):
            return web.Response(body=answer(request.path))

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        return app

    async def asgi_app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = answer(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
''')


class GunicornWorkerTests:
    """Mixed into a TestCase per worker class: WORKER (tapio.workers.X) and
    APP (the module:attribute gunicorn loads from APP_MODULE)."""

    WORKER = APP = None

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        with open(os.path.join(self.dir, "workers_app.py"), "w") as f:
            f.write(APP_MODULE)
        self.gunicorn = Gunicorn(self.WORKER, self.APP, self.dir)
        self.addCleanup(self.gunicorn.kill)  # on failure too: nothing outlives the test
        self.port = self.gunicorn.port

    def log(self):
        return self.gunicorn.log()

    def get(self, connection, path="/"):
        """(loop class, worker pid) of the answer to GET path."""
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        self.assertEqual(response.status, 200, body)
        loop_name, pid = body.split()
        return loop_name, int(pid)

    def connect(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        self.addCleanup(connection.close)
        return connection

    def wait_until_answering(self):
        def answers():
            self.assertIsNone(self.gunicorn.process.poll(), "gunicorn exited:\n" + self.log())
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
            try:
                self.get(connection)
            except (OSError, http.client.HTTPException):
                return False
            finally:
                connection.close()
            return True
        wait_until(answers, "gunicorn to answer")

    def test_two_tapio_workers_answer_over_keep_alive(self):
        self.wait_until_answering()
        holder = self.connect()
        holder.request("GET", "/hold")
        wait_until(lambda: os.path.exists(os.path.join(self.dir, "holding")),
                   "the held request to start")

        # The holding worker's loop is blocked: the other worker answers.
        other = self.connect()
        answers = [self.get(other, f"/request/{n}") for n in range(5)]
        first_socket = other.sock
        answers += [self.get(other) for _ in range(5)]
        self.assertIs(other.sock, first_socket, "the connection was not kept alive")

        open(os.path.join(self.dir, "release"), "w").close()
        response = holder.getresponse()
        self.assertEqual(response.status, 200)
        held_loop, held_pid = response.read().decode().split()
        for loop_name, _ in answers + [(held_loop, held_pid)]:
            self.assertTrue(loop_name.startswith("tapio."), loop_name)
        self.assertEqual(len({pid for _, pid in answers}), 1, answers)
        self.assertNotEqual(answers[0][1], int(held_pid))

        holder.close()
        other.close()
        self.stop_gunicorn(worker_pids=[answers[0][1], int(held_pid)])

    def stop_gunicorn(self, worker_pids):
        returncode, log = self.gunicorn.stop()  # SIGTERM; waits for every worker
        self.assertEqual(returncode, 0, log)
        self.assertNotIn("Traceback", log)
        for pid in worker_pids:  # each exited by itself, not by SIGKILL
            self.assertIn(f"Worker exiting (pid: {pid})", log)


class AiohttpWorkerTests(GunicornWorkerTests, unittest.TestCase):
    WORKER = "tapio.workers.AiohttpWorker"
    APP = "workers_app:aiohttp_app()"


class UvicornWorkerTests(GunicornWorkerTests, unittest.TestCase):
    WORKER = "tapio.workers.UvicornWorker"
    APP = "workers_app:asgi_app"
