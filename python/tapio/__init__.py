"""tapio: a drop-in asyncio event loop on libtapio, asyncio's transports and
protocols implemented in C.

    import tapio
    tapio.install()            # plain asyncio.run() now runs on tapio
    tapio.run(main())          # or run one coroutine on a tapio loop
    asyncio.Runner(loop_factory=tapio.new_event_loop)
"""
import asyncio as _asyncio

from . import _helpers, _tapio
from ._loop import Loop

_tapio._set_helpers(_helpers.format_callback, _helpers.handle_repr,
                    _helpers.log_slow_callback)

__all__ = ["Loop", "EventLoopPolicy", "new_event_loop", "install", "run"]
__version__ = "0.1.0"


def new_event_loop():
    """A new tapio event loop."""
    return Loop()


class EventLoopPolicy(_asyncio.events.BaseDefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are tapio loops."""

    def new_event_loop(self):
        return Loop()


def install():
    """Make tapio the event loop of asyncio.run() and asyncio.new_event_loop()."""
    _asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run a coroutine on a new tapio loop, as asyncio.run() does."""
    if _asyncio._get_running_loop() is not None:
        raise RuntimeError("tapio.run() cannot be called from a running event loop")
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
