# Source: the asyncio protocols tutorial ("探索Python3.4中新引入的asyncio模块"),
# section "使用 Clients and Servers": the streams echo client that writes four
# lines to localhost port 2222 and reads them back.
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

LASTLINE = b'Last line.\n'

@asyncio.coroutine
def simple_echo_client():
    # Open a connection and write a few lines by using the StreamWriter object
    reader, writer = yield from asyncio.open_connection('localhost', 2222)
    # reader is a StreamReader object
    # writer is a StreamWriter object
    writer.write(b'First line.\n')
    writer.write(b'Second line.\n')
    writer.write(b'Third line.\n')
    writer.write(LASTLINE)

    # Now, read a few lines by using the StreamReader object
    print("Lines received")
    while True:
        line = yield from reader.readline()
        print(line)
        if line == LASTLINE or not line:
            break
    writer.close()

loop = asyncio.get_event_loop()
loop.run_until_complete(simple_echo_client())
