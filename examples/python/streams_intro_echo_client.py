# Source: the Python documentation, asyncio "Streams", the page's opening
# example (a TCP echo client written with streams).
# The code below is the document's, verbatim. (The seed's text extraction lost
# the indentation and blank lines; they are restored as in the document.)

import asyncio

async def tcp_echo_client(message):
    reader, writer = await asyncio.open_connection(
        '127.0.0.1', 8888)

    print(f'Send: {message!r}')
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f'Received: {data.decode()!r}')

    print('Close the connection')
    writer.close()
    await writer.wait_closed()

asyncio.run(tcp_echo_client('Hello World!'))
