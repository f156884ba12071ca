"""tapio: a drop-in asyncio event loop on libtapio, asyncio's transports and
protocols implemented in C.

    import tapio
    tapio.install()            # plain asyncio.run() now runs on tapio
    tapio.run(main())          # or run one coroutine on a tapio loop
    asyncio.Runner(loop_factory=tapio.new_event_loop)
"""
import asyncio as _asyncio
import sys as _sys
import warnings as _warnings

from . import _helpers, _tapio
from ._loop import Loop

_tapio._set_helpers(_helpers.format_callback, _helpers.handle_repr,
                    _helpers.log_slow_callback, _helpers.extract_stack)

__all__ = ["Loop", "EventLoopPolicy", "new_event_loop", "install", "run"]
__version__ = _tapio.LIBTAPIO_VERSION


def new_event_loop():
    """A new tapio event loop."""
    return Loop()


def _policy_base():
    """The stock policy to derive from: on Unix before 3.14 the default one
    (so asyncio.set_child_watcher() and friends keep working after
    install(); tapio's loops watch their children themselves), from 3.14 on
    the base class the deprecated public names stand for."""
    if _sys.version_info >= (3, 14):
        return _asyncio.events._BaseDefaultEventLoopPolicy
    return _asyncio.DefaultEventLoopPolicy


class EventLoopPolicy(_policy_base()):
    """An asyncio event loop policy whose loops are tapio loops (the stock
    policy's new_event_loop() calls _loop_factory)."""

    _loop_factory = Loop


def install():
    """Make tapio the event loop of asyncio.run() and asyncio.new_event_loop().

    From Python 3.14 on asyncio deprecates policies, and so this function:
    prefer tapio.run(main()) or asyncio.run(main(), loop_factory=tapio.new_event_loop).
    """
    if _sys.version_info >= (3, 14):
        _warnings.warn("tapio.install() sets an event loop policy, which asyncio deprecates "
                       "from Python 3.14 on; use tapio.run() or asyncio.run(..., "
                       "loop_factory=tapio.new_event_loop)", DeprecationWarning, stacklevel=2)
        _asyncio.events._set_event_loop_policy(EventLoopPolicy())
    else:
        _asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run a coroutine on a new tapio loop, as asyncio.run() does."""
    if _asyncio._get_running_loop() is not None:
        raise RuntimeError("tapio.run() cannot be called from a running event loop")
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
