import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

__version__: str

class Loop(asyncio.AbstractEventLoop):
    """An asyncio event loop on libtapio."""
    slow_callback_duration: float
    def __init__(self) -> None: ...

class EventLoopPolicy(asyncio.events.BaseDefaultEventLoopPolicy):
    def new_event_loop(self) -> Loop: ...

def new_event_loop() -> Loop: ...
def install() -> None: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...
