# Source: the asyncio protocols tutorial ("探索Python3.4中新引入的asyncio模块"),
# section "使用 Clients and Servers": the streams echo server on localhost
# port 2222.
# The tutorial is written for Python 3.4 and decorates its generators with
# @asyncio.coroutine, which Python 3.11 removed: the two lines below restore it
# as types.coroutine (what it amounted to outside debug mode), because the
# document's code cannot run at all without it. Everything after them is the
# document's code, verbatim. (The seed's text extraction joined the lines; the
# line breaks and indentation are restored.)
import asyncio, types
asyncio.coroutine = types.coroutine

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
