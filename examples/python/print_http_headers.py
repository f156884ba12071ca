# Source: the Python documentation, asyncio "Streams",
# Examples > "Get HTTP headers".
# The code below is the document's, verbatim. (The seed's text extraction lost
# the indentation, the blank lines and the line ")" that closes "query = (";
# they are restored as in the document.)
# It takes the URL from the command line, as the document shows; the tests pass
# the URL of an HTTP server they start on 127.0.0.1 port 80 (the port the code
# uses for http:).

import asyncio
import urllib.parse
import sys

async def print_http_headers(url):
    url = urllib.parse.urlsplit(url)
    if url.scheme == 'https':
        reader, writer = await asyncio.open_connection(
            url.hostname, 443, ssl=True)
    else:
        reader, writer = await asyncio.open_connection(
            url.hostname, 80)

    query = (
        f"HEAD {url.path or '/'} HTTP/1.0\r\n"
        f"Host: {url.hostname}\r\n"
        f"\r\n"
    )

    writer.write(query.encode('latin-1'))
    while True:
        line = await reader.readline()
        if not line:
            break

        line = line.decode('latin1').rstrip()
        if line:
            print(f'HTTP header> {line}')

    # Ignore the body, close the socket
    writer.close()

url = sys.argv[1]
asyncio.run(print_http_headers(url))
