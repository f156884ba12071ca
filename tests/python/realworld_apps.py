"""The web applications of the real-world HTTP tests: the same small API
written for Starlette, for FastAPI and for aiohttp.web, so one client-side
check (realworld_http_suite.check_api) exercises each of them:

    GET  /loop           {"loop": "<module>.<class> of the running loop", "pid": ...}
    GET  /items/{n}      {"n": n, "square": n * n}
    POST /items          (FastAPI only) a validated JSON body, echoed with its total
    POST /upload         {"size": ..., "sha256": ..., "chunks": ...} of the request body, read as a stream
    GET  /stream?chunks=N&size=S   N chunks of S bytes, streamed (chunked encoding)
    WS   /ws             first sends the loop's name, then echoes each message

gunicorn imports this file as a top-level module (tests/python is put on
its path), so it imports nothing relative. Besides the apps it defines
AsyncioUvicornWorker, uvicorn's worker on the stock asyncio loop (uvicorn's
own picks uvloop when it is installed), the counterpart of tapio's.
"""
import asyncio
import hashlib
import os


def loop_name():
    loop = type(asyncio.get_running_loop())
    return f"{loop.__module__}.{loop.__qualname__}"


def loop_info():
    return {"loop": loop_name(), "pid": os.getpid()}


def chunk(index, size):
    """The index-th chunk of /stream: distinct bytes, so order is checked."""
    return bytes([index % 256]) * size


async def summarise(chunks):
    """What /upload answers about a body read as an async iterable of chunks."""
    digest, size, count = hashlib.sha256(), 0, 0
    async for data in chunks:
        if data:
            digest.update(data)
            size += len(data)
            count += 1
    return {"size": size, "sha256": digest.hexdigest(), "chunks": count}


async def stream_chunks(count, size):
    for index in range(count):
        yield chunk(index, size)
        await asyncio.sleep(0)  # other connections run between chunks


async def websocket_echo(accept, send_text, receive, send, close):
    await accept()
    await send_text(loop_name())
    while True:
        message = await receive()
        if message is None:
            break
        await send(message)
    await close()


async def starlette_websocket_echo(websocket):
    """/ws on a Starlette (or FastAPI: the same class) WebSocket."""
    from starlette.websockets import WebSocketDisconnect

    async def receive():
        try:
            message = await websocket.receive()
        except WebSocketDisconnect:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        return message["text"] if message.get("text") is not None else message["bytes"]

    async def send(message):
        if isinstance(message, str):
            await websocket.send_text(message)
        else:
            await websocket.send_bytes(message)

    async def close():
        pass  # the client closed: its disconnect ended the echo

    await websocket_echo(websocket.accept, websocket.send_text, receive, send, close)


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    async def loop_route(request):
        return JSONResponse(loop_info())

    async def item(request):
        n = request.path_params["n"]
        return JSONResponse({"n": n, "square": n * n})

    async def upload(request):
        return JSONResponse(await summarise(request.stream()))

    async def stream(request):
        count, size = int(request.query_params["chunks"]), int(request.query_params["size"])
        return StreamingResponse(stream_chunks(count, size),
                                 media_type="application/octet-stream")

    return Starlette(routes=[
        Route("/loop", loop_route), Route("/items/{n:int}", item),
        Route("/upload", upload, methods=["POST"]), Route("/stream", stream),
        WebSocketRoute("/ws", starlette_websocket_echo),
    ])


def fastapi_app():
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import StreamingResponse
    from pydantic import BaseModel

    app = FastAPI()

    class Order(BaseModel):
        name: str
        quantities: list[int]

    @app.get("/loop")
    async def loop_route():
        return loop_info()

    @app.get("/items/{n}")
    async def item(n: int):
        return {"n": n, "square": n * n}

    @app.post("/items")
    async def order(body: Order):
        return {"name": body.name, "total": sum(body.quantities)}

    @app.post("/upload")
    async def upload(request: Request):
        return await summarise(request.stream())

    @app.get("/stream")
    async def stream(chunks: int, size: int):
        return StreamingResponse(stream_chunks(chunks, size),
                                 media_type="application/octet-stream")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await starlette_websocket_echo(websocket)

    return app


def aiohttp_app():
    from aiohttp import WSMsgType, web

    async def loop_route(request):
        return web.json_response(loop_info())

    async def item(request):
        n = int(request.match_info["n"])
        return web.json_response({"n": n, "square": n * n})

    async def upload(request):
        return web.json_response(await summarise(request.content.iter_any()))

    async def stream(request):
        count, size = int(request.query["chunks"]), int(request.query["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for data in stream_chunks(count, size):
            await response.write(data)
        await response.write_eof()
        return response

    async def ws(request):
        websocket = web.WebSocketResponse()

        async def accept():
            await websocket.prepare(request)

        async def receive():
            message = await websocket.receive()
            if message.type == WSMsgType.TEXT:
                return message.data
            if message.type == WSMsgType.BINARY:
                return message.data
            return None

        async def send(message):
            if isinstance(message, str):
                await websocket.send_str(message)
            else:
                await websocket.send_bytes(message)

        await websocket_echo(accept, websocket.send_str, receive, send, websocket.close)
        return websocket

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/loop", loop_route)
    app.router.add_get(r"/items/{n:\d+}", item)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", ws)
    return app


def __getattr__(name):
    # Defined on first use: importing uvicorn's worker needs gunicorn, which
    # the in-process tests do not use.
    if name == "AsyncioUvicornWorker":
        from uvicorn.workers import UvicornWorker

        class AsyncioUvicornWorker(UvicornWorker):
            CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "loop": "asyncio"}

        globals()[name] = AsyncioUvicornWorker
        return AsyncioUvicornWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
