"""A process that forks while its loop serves: the child may use or close
the loop it inherited, and the parent's loop goes on serving. (asyncio's
own loop shares its epoll set with the child, whose removals then remove
the parent's watchers too: these tests run on tapio only.)"""

import asyncio
import os
import unittest

from .loops import loop_tests

LOOPS = ("tapio",)


async def echo(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()


async def echoed(port, message=b"ping"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(message)
        return await reader.readexactly(len(message))
    finally:
        writer.close()
        await writer.wait_closed()


@loop_tests(LOOPS)
class ForkTests:
    def serve(self):
        server = self.run_coro(asyncio.start_server(echo, "127.0.0.1", 0))
        self.addCleanup(lambda: self.run_coro(server.wait_closed()))
        self.addCleanup(server.close)
        return server, server.sockets[0].getsockname()[1]

    def fork(self, in_child):
        """Runs in_child() in a forked child, which exits 0 if it returns
        true; the child's exit status."""
        pid = os.fork()
        if pid == 0:
            try:
                status = 0 if in_child() else 1
            except BaseException:
                status = 2
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def check_parent_serves(self, port):
        for message in (b"after", b"and again"):
            self.assertEqual(self.run_coro(echoed(port, message)), message)

    def test_a_child_serves_on_the_loop_it_inherited(self):
        server, port = self.serve()
        self.assertEqual(self.run_coro(echoed(port)), b"ping")

        def in_child():
            return self.loop.run_until_complete(
                asyncio.wait_for(echoed(port, b"child"), 5)) == b"child"

        # the parent waits without running its loop meanwhile
        self.assertEqual(self.fork(in_child), 0)
        self.check_parent_serves(port)

    def test_a_child_closing_the_loop_it_inherited_leaves_the_parents(self):
        server, port = self.serve()
        self.assertEqual(self.run_coro(echoed(port)), b"ping")

        def in_child():
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()
            return True

        self.assertEqual(self.fork(in_child), 0)
        self.check_parent_serves(port)


if __name__ == "__main__":
    unittest.main()
