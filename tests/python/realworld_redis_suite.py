"""redis-py's asyncio client (Debian's python3-redis) against a real
redis-server (Debian's redis-server) started for this module in a temporary
directory, over its Unix socket and over 127.0.0.1. The client runs on the
loop under test; each test checks that its connections are that loop's
transports. The test script runs this module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py realworld_redis_suite
"""
import asyncio
import contextlib

import redis.asyncio as aioredis

from .loops import loop_tests
from .realworld_services import RedisServer, kind_of

LOOPS = ("asyncio", "tapio")
server = None


def setUpModule():
    global server
    server = RedisServer().start()


def tearDownModule():
    server.stop()


@loop_tests(LOOPS)
class RedisTests:

    @contextlib.asynccontextmanager
    async def client(self, unix=True, check=True):
        """A client of the module's server; its connections are closed at the
        end, after a check that they belong to the loop under test (unless
        check is false: a pub/sub client's connection is its PubSub's)."""
        if unix:
            client = aioredis.Redis(unix_socket_path=server.unix_path)
        else:
            client = aioredis.Redis(host="127.0.0.1", port=server.port)
        try:
            yield client
            if check:
                self.check_transports(client.connection_pool)
        finally:
            await client.close()
            await client.connection_pool.disconnect()

    def check_transports(self, pool_or_connection):
        self.assertEqual(kind_of(asyncio.get_running_loop()), self.loop_name)
        connections = getattr(pool_or_connection, "_available_connections",
                              [pool_or_connection])
        transports = [c._writer.transport for c in connections if c._writer is not None]
        self.assertTrue(transports, "no connection was made")
        for transport in transports:
            self.assertEqual(kind_of(transport), self.loop_name, transport)

    def test_get_set_over_unix_socket_and_tcp(self):
        async def test():
            for unix in (True, False):
                async with self.client(unix) as client:
                    key = f"greeting:{self.loop_name}:{unix}"
                    self.assertTrue(await client.set(key, "hello", ex=60))
                    self.assertEqual(await client.get(key), b"hello")
                    self.assertEqual(await client.incrby(key + ":n", 5), 5)
                    self.assertEqual(await client.delete(key, key + ":n"), 2)
                    self.assertIsNone(await client.get(key))
                    big = bytes(range(256)) * 4096  # 1 MiB, more than a socket buffer
                    await client.set(key, big)
                    self.assertEqual(await client.get(key), big)
                    await client.delete(key)
        self.run_coro(test())

    def test_pipelines_with_and_without_transaction(self):
        async def test():
            async with self.client() as client:
                key = f"pipeline:{self.loop_name}"
                async with client.pipeline(transaction=True) as pipe:
                    pipe.set(key, 1).incr(key).incrby(key, 10).get(key)
                    self.assertEqual(await pipe.execute(), [True, 2, 12, b"12"])
                async with client.pipeline(transaction=False) as pipe:
                    for n in range(1000):
                        pipe.rpush(key + ":list", n)
                    pipe.lrange(key + ":list", 0, 2).delete(key, key + ":list")
                    results = await pipe.execute()
                self.assertEqual(results[:1000], list(range(1, 1001)))
                self.assertEqual(results[1000:], [[b"0", b"1", b"2"], 2])

                # A WATCHed key changed by another connection aborts the transaction.
                await client.set(key, "before")
                async with client.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    async with self.client() as other:
                        await other.set(key, "changed")
                    pipe.multi()
                    pipe.set(key, "from the transaction")
                    with self.assertRaises(aioredis.WatchError):
                        await pipe.execute()
                self.assertEqual(await client.get(key), b"changed")
                await client.delete(key)
        self.run_coro(test())

    def test_pubsub_receives_what_another_connection_publishes(self):
        async def test():
            channel = f"news:{self.loop_name}"
            async with self.client(check=False) as subscriber, \
                    self.client(unix=False) as publisher:
                pubsub = subscriber.pubsub()
                await pubsub.subscribe(channel)
                confirmation = await pubsub.get_message(timeout=5)
                self.assertEqual(confirmation["type"], "subscribe")
                sent = [f"message {n}".encode() for n in range(20)]
                for message in sent:
                    self.assertEqual(await publisher.publish(channel, message), 1)
                received = []
                while len(received) < len(sent):
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=5)
                    self.assertIsNotNone(message, f"only {received} arrived")
                    received.append(message["data"])
                self.assertEqual(received, sent)
                self.check_transports(pubsub.connection)
                await pubsub.unsubscribe(channel)
                await pubsub.close()
        self.run_coro(test())

    def test_many_tasks_share_a_pool(self):
        async def worker(client, n):
            key = f"task:{self.loop_name}:{n}"
            for value in range(10):
                await client.set(key, value)
                self.assertEqual(await client.get(key), str(value).encode())
            await client.incr(f"counter:{self.loop_name}")
            await client.delete(key)

        async def test():
            async with self.client() as client:
                counter = f"counter:{self.loop_name}"
                await client.delete(counter)
                await asyncio.gather(*(worker(client, n) for n in range(200)))
                self.assertEqual(await client.get(counter), b"200")
                opened = len(client.connection_pool._available_connections)
                self.assertGreater(opened, 1, "the tasks did not run concurrently")
                await client.delete(counter)
        self.run_coro(test(), timeout=30)
