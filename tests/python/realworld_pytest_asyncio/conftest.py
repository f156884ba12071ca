"""With TAPIO_TEST_LOOP_FROM=policy, pytest-asyncio's own event_loop fixture
makes the loops, from the policy set here."""
import asyncio
import os

if os.environ.get("TAPIO_TEST_LOOP_FROM") == "policy":
    if os.environ["TAPIO_TEST_LOOP"] == "tapio":
        import tapio
        asyncio.set_event_loop_policy(tapio.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
