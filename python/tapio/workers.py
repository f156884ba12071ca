"""Gunicorn worker classes whose event loop is tapio's:

    gunicorn -k tapio.workers.UvicornWorker app:app    # an ASGI app, through uvicorn
    gunicorn -k tapio.workers.AiohttpWorker app:app    # an aiohttp.web Application

`import tapio` does not import this module, and this module imports a
framework (and gunicorn) only when its class is first looked up, so each
class needs only its own framework installed.
"""
import asyncio

import tapio

__all__ = ["AiohttpWorker", "UvicornWorker"]


def __getattr__(name):
    # gunicorn's -k looks the class up with getattr(module, name).
    factories = {"AiohttpWorker": _aiohttp_worker, "UvicornWorker": _uvicorn_worker}
    if name not in factories:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = factories[name]()
    globals()[name] = cls
    return cls


def _aiohttp_worker():
    from aiohttp.worker import GunicornWebWorker as base

    class AiohttpWorker(base):
        """aiohttp's gunicorn worker (aiohttp.worker.GunicornWebWorker) on a
        tapio loop, as aiohttp's GunicornUVLoopWebWorker is on uvloop's."""

        def init_process(self):
            # Close the loop inherited from the arbiter before the policy
            # changes; aiohttp's init_process then makes a new (tapio) loop.
            asyncio.get_event_loop().close()
            tapio.install()
            super().init_process()

    return _public(AiohttpWorker)


def _uvicorn_worker():
    from uvicorn.workers import UvicornWorker as base

    class UvicornWorker(base):
        """uvicorn's gunicorn worker (uvicorn.workers.UvicornWorker) on a
        tapio loop: uvicorn leaves the loop alone ("none") and its
        asyncio.run() takes a tapio loop from tapio's policy."""

        CONFIG_KWARGS = {**base.CONFIG_KWARGS, "loop": "none"}

        def init_process(self):
            tapio.install()
            super().init_process()

    return _public(UvicornWorker)


def _public(cls):
    """cls named as the module attribute it becomes (reprs, pickling, logs)."""
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    return cls
