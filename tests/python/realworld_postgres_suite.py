"""asyncpg (Debian's python3-asyncpg) against a real PostgreSQL cluster
(Debian's postgresql) that this module makes with initdb in a temporary
directory, reached over its Unix socket and over 127.0.0.1. The client runs
on the loop under test; each test checks that its connections are that
loop's transports. The test script runs this module with Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py realworld_postgres_suite
"""
import asyncio
import contextlib
import io

import asyncpg

from .loops import loop_tests
from .realworld_services import PostgresCluster, kind_of

LOOPS = ("asyncio", "tapio")
cluster = None


def setUpModule():
    global cluster
    cluster = PostgresCluster().start()


def tearDownModule():
    cluster.stop()


@loop_tests(LOOPS)
class PostgresTests:

    @contextlib.asynccontextmanager
    async def connection(self, unix=True):
        connection = await asyncpg.connect(**cluster.connect_kwargs(unix))
        try:
            self.check_transport(connection)
            yield connection
        finally:
            await connection.close()

    def check_transport(self, connection):
        self.assertEqual(kind_of(asyncio.get_running_loop()), self.loop_name)
        self.assertEqual(kind_of(connection._transport), self.loop_name, connection._transport)

    def table(self, name):
        """A table name of this test's own (both loops share the cluster)."""
        return f"{name}_{self.loop_name}"

    def test_queries_with_parameters_over_unix_socket_and_tcp(self):
        async def test():
            for unix in (True, False):
                async with self.connection(unix) as connection:
                    self.assertEqual(await connection.fetchval("SELECT $1::int + $2", 40, 2), 42)
                    row = await connection.fetchrow(
                        "SELECT $1::text AS name, $2::float8[] AS values", "tapio", [1.5, 2.5])
                    self.assertEqual((row["name"], row["values"]), ("tapio", [1.5, 2.5]))
                    rows = await connection.fetch(
                        "SELECT n, repeat('x', n) AS s FROM generate_series(1, $1) AS n", 2000)
                    self.assertEqual(len(rows), 2000)
                    self.assertEqual(rows[-1]["s"], "x" * 2000)  # ~2 MB of results
                    with self.assertRaises(asyncpg.UndefinedTableError):
                        await connection.fetch("SELECT * FROM no_such_table")
                    self.assertEqual(await connection.fetchval("SELECT 1"), 1)  # still usable
        self.run_coro(test())

    def test_prepared_statements(self):
        async def test():
            async with self.connection() as connection:
                statement = await connection.prepare("SELECT $1::int * $2::int AS product")
                self.assertEqual([a.name for a in statement.get_attributes()], ["product"])
                for n in range(50):
                    self.assertEqual(await statement.fetchval(n, 3), n * 3)
                cursor_rows = []
                async with connection.transaction():
                    series = await connection.prepare("SELECT generate_series(1, $1::int)")
                    async for record in series.cursor(500, prefetch=64):
                        cursor_rows.append(record[0])
                self.assertEqual(cursor_rows, list(range(1, 501)))
        self.run_coro(test())

    def test_transaction_rollback(self):
        table = self.table("accounts")

        async def test():
            async with self.connection() as connection:
                await connection.execute(f"CREATE TEMP TABLE {table} (id int, balance int)")
                await connection.execute(f"INSERT INTO {table} VALUES (1, 100)")
                with self.assertRaises(ZeroDivisionError):
                    async with connection.transaction():
                        await connection.execute(f"UPDATE {table} SET balance = 0")
                        self.assertEqual(await connection.fetchval(
                            f"SELECT balance FROM {table}"), 0)
                        1 / 0
                self.assertEqual(await connection.fetchval(f"SELECT balance FROM {table}"), 100)
                async with connection.transaction():
                    await connection.execute(f"UPDATE {table} SET balance = 50")
                self.assertEqual(await connection.fetchval(f"SELECT balance FROM {table}"), 50)
        self.run_coro(test())

    def test_copy_in_and_out(self):
        table = self.table("measurements")
        records = [(n, f"sensor {n}", n / 4) for n in range(20_000)]

        async def test():
            async with self.connection() as connection:
                await connection.execute(
                    f"CREATE TEMP TABLE {table} (id int, name text, value float8)")
                result = await connection.copy_records_to_table(table, records=records)
                self.assertEqual(result, f"COPY {len(records)}")
                self.assertEqual(await connection.fetchval(f"SELECT sum(id) FROM {table}"),
                                 sum(r[0] for r in records))

                out = io.BytesIO()
                await connection.copy_from_query(
                    f"SELECT id, name FROM {table} WHERE id < $1 ORDER BY id", 1000,
                    output=out, format="csv")
                expected = "".join(f"{n},sensor {n}\n" for n in range(1000))
                self.assertEqual(out.getvalue().decode(), expected)

                # COPY FROM STDIN fed from an async iterable of chunks.
                async def chunks():
                    for start in range(0, 5000, 1000):
                        yield "".join(f"{n}\tcopied {n}\t0\n"
                                      for n in range(start, start + 1000)).encode()
                await connection.copy_to_table(table, source=chunks())
                self.assertEqual(await connection.fetchval(
                    f"SELECT count(*) FROM {table} WHERE name LIKE 'copied %'"), 5000)
        self.run_coro(test())

    def test_listen_notify_between_connections(self):
        async def test():
            received = asyncio.Queue()
            channel = self.table("events")
            async with self.connection() as listener, self.connection(unix=False) as notifier:
                def on_notification(connection, pid, chan, payload):
                    received.put_nowait((pid, chan, payload))
                await listener.add_listener(channel, on_notification)
                for n in range(10):
                    await notifier.execute(f"NOTIFY {channel}, 'event {n}'")
                # pg_notify() inside a transaction is delivered at commit.
                async with notifier.transaction():
                    await notifier.execute("SELECT pg_notify($1, 'committed')", channel)
                    await asyncio.sleep(0.1)
                    self.assertEqual(received.qsize(), 10)
                notifier_pid = notifier.get_server_pid()
                for expected in [f"event {n}" for n in range(10)] + ["committed"]:
                    pid, chan, payload = await asyncio.wait_for(received.get(), 5)
                    self.assertEqual((pid, chan, payload), (notifier_pid, channel, expected))
                await listener.remove_listener(channel, on_notification)
                await notifier.execute(f"NOTIFY {channel}, 'unheard'")
                self.assertEqual(await listener.fetchval("SELECT 1"), 1)  # a round trip
                self.assertTrue(received.empty())
        self.run_coro(test())

    def test_pool_under_concurrency(self):
        table = self.table("pool_counter")

        async def task(pool, n):
            async with pool.acquire() as connection:
                async with connection.transaction():
                    await connection.execute(f"UPDATE {table} SET n = n + 1")
                    await asyncio.sleep(0.001)
                return await connection.fetchval("SELECT $1::int", n)

        async def test():
            async with asyncpg.create_pool(**cluster.connect_kwargs(), min_size=5,
                                           max_size=5) as pool:
                await pool.execute(f"DROP TABLE IF EXISTS {table}")
                await pool.execute(f"CREATE TABLE {table} (n int)")
                await pool.execute(f"INSERT INTO {table} VALUES (0)")
                results = await asyncio.gather(*(task(pool, n) for n in range(50)))
                self.assertEqual(results, list(range(50)))
                self.assertEqual(await pool.fetchval(f"SELECT n FROM {table}"), 50)
                self.assertEqual(pool.get_size(), 5)
                pids = set()
                async with pool.acquire() as first, pool.acquire() as second:
                    self.check_transport(first)
                    self.check_transport(second)
                    pids = {first.get_server_pid(), second.get_server_pid()}
                self.assertEqual(len(pids), 2)
                await pool.execute(f"DROP TABLE {table}")
        self.run_coro(test(), timeout=30)
