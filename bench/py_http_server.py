"""A hello-world HTTP server for bench/http_run.py: aiohttp, or uvicorn with
httptools, on the tapio, uvloop or asyncio loop.

Usage: python3 bench/py_http_server.py PORT FRAMEWORK LOOP BODY_BYTES

Prints 'ready' once listening ('unavailable' if the framework or the loop is
not installed for this interpreter) and serves until SIGTERM, then exits 0.
"""
import asyncio
import signal
import sys


def new_loop(name):
    if name == "tapio":
        import tapio
        return tapio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def serve_aiohttp(port, body):
    from aiohttp import web

    async def hello(request):
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    return runner.cleanup


async def serve_uvicorn(port, body):
    import uvicorn

    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="none", http="httptools",
                            lifespan="off", access_log=False, log_level="warning",
                            backlog=1024)
    server = uvicorn.Server(config)
    config.setup_event_loop = lambda: None
    server.install_signal_handlers = lambda: None
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)

    async def stop():
        server.should_exit = True
        await task
    return stop


def main():
    port, framework, loop_name, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    try:
        loop = new_loop(loop_name)
        serve = {"aiohttp": serve_aiohttp, "uvicorn": serve_uvicorn}[framework]
        if framework == "uvicorn":
            import httptools  # noqa: F401
    except ImportError:
        print("unavailable", flush=True)
        return 0
    asyncio.set_event_loop(loop)
    stop = loop.run_until_complete(serve(port, b"x" * size))
    stopping = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stopping.set_result, None)
    print("ready", flush=True)
    loop.run_until_complete(stopping)
    loop.run_until_complete(stop())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
