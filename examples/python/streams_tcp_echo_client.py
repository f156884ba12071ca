# Source: the Python documentation, asyncio "Streams",
# Examples > "TCP echo client using streams".
# The code below is the document's, verbatim. (The seed's text extraction lost
# the indentation, the blank lines and the first line, "import asyncio"; they
# are restored as in the document.)

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

asyncio.run(tcp_echo_client('Hello World!'))
