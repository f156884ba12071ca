"""Run by realworld_pytest_suite with pytest and pytest-asyncio, not by the
unittest suite. TAPIO_TEST_LOOP names the loop under test ("tapio" or
"asyncio"); TAPIO_TEST_LOOP_FROM says how pytest-asyncio gets it: "fixture"
(this file overrides the event_loop fixture) or "policy" (conftest.py sets
the loop's event loop policy and pytest-asyncio's own fixture asks it).
test_reports_a_failure fails on purpose: the suite checks that pytest saw
exactly that failure.
"""
import asyncio
import os

import pytest
import pytest_asyncio

LOOP = os.environ["TAPIO_TEST_LOOP"]

if os.environ["TAPIO_TEST_LOOP_FROM"] == "fixture":
    @pytest.fixture
    def event_loop():
        if LOOP == "tapio":
            import tapio
            loop = tapio.new_event_loop()
        else:
            loop = asyncio.SelectorEventLoop()
        yield loop
        loop.close()


def loop_kind():
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest_asyncio.fixture
async def echo_server():
    """An asyncio streams echo server on the test's loop; yields its port."""
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio
async def test_runs_on_the_loop_under_test():
    assert loop_kind() == LOOP


@pytest.mark.asyncio
async def test_async_fixture_and_streams(echo_server):
    assert loop_kind() == LOOP
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
    payload = os.urandom(300_000)
    writer.write(payload)
    writer.write_eof()
    assert await reader.read() == payload
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_timeouts_and_tasks():
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.sleep(10), 0.01)
    results = await asyncio.gather(*(asyncio.sleep(0.001 * n, result=n) for n in range(20)))
    assert results == list(range(20))


@pytest.mark.asyncio
async def test_reports_a_failure():
    await asyncio.sleep(0)
    assert loop_kind() == "no such loop", "failing on purpose"
