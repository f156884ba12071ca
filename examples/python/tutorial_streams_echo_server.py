# Source: the asyncio protocols tutorial ("探索Python3.4中新引入的asyncio模块"),
# section "使用 Clients and Servers": the streams echo server on localhost
# port 2222.
# The tutorial is written for Python 3.4 and decorates its generators with
# @asyncio.coroutine, which Python 3.11 removed (and from 3.12 on, asyncio no
# longer takes a bare generator as a coroutine): the lines below restore it as
# a coroutine function driving the generator, because the document's code
# cannot run at all without it. Everything after them is the document's code,
# verbatim. (The seed's text extraction joined the lines; the line breaks and
# indentation are restored.)
import asyncio, types


def _coroutine(generator_function):
    as_awaitable = types.coroutine(generator_function)

    async def run(*args, **kwargs):
        return await as_awaitable(*args, **kwargs)
    return run


asyncio.coroutine = _coroutine

import asyncio

@asyncio.coroutine
def simple_echo_server():
    # Start a socket server, call back for each client connected.
    # The client_connected_handler coroutine will be automatically converted to a Task
    yield from asyncio.start_server(client_connected_handler, 'localhost', 2222)

@asyncio.coroutine
def client_connected_handler(client_reader, client_writer):
    # Runs for each client connected
    # client_reader is a StreamReader object
    # client_writer is a StreamWriter object
    print("Connection received!")
    while True:
        data = yield from client_reader.read(8192)
        if not data:
            break
        print(data)
        client_writer.write(data)

loop = asyncio.get_event_loop()
loop.run_until_complete(simple_echo_server())
try:
    loop.run_forever()
finally:
    loop.close()
