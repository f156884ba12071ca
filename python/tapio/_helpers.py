"""Slow-path helpers the C extension calls: callback formatting for reprs and
error messages, and the debug-mode slow callback warning."""
import functools
import inspect
import logging
import reprlib
from asyncio import trsock

logger = logging.getLogger("asyncio")  # asyncio's logger, so user config applies


def _source_of(func):
    func = inspect.unwrap(func)
    if inspect.isfunction(func):
        code = func.__code__
        return code.co_filename, code.co_firstlineno
    if isinstance(func, functools.partial):
        return _source_of(func.func)
    if isinstance(func, functools.partialmethod):
        return _source_of(func.func)
    return None


def _describe(func, args):
    """'name(arg, ...)', unwrapping functools.partial as asyncio does."""
    if isinstance(func, functools.partial):
        inner_args = tuple(func.args) + tuple(args or ())
        return _describe(func.func, inner_args) + (
            "" if not func.keywords else
            "(" + ", ".join(f"{k}={reprlib.repr(v)}" for k, v in func.keywords.items()) + ")")
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    if args is None:
        return name
    return name + "(" + ", ".join(reprlib.repr(arg) for arg in args) + ")"


def format_callback(func, args):
    """How asyncio names a callback in messages: 'f(1, 2) at file.py:10'."""
    text = _describe(func, args)
    source = _source_of(func)
    if source:
        text += f" at {source[0]}:{source[1]}"
    return text


def handle_repr(handle):
    parts = [type(handle).__name__]
    if handle.cancelled():
        parts.append("cancelled")
    if hasattr(handle, "when"):
        parts.append(f"when={handle.when()}")
    if handle._callback is not None:
        parts.append(format_callback(handle._callback, handle._args))
    return "<" + " ".join(parts) + ">"


def log_slow_callback(handle, seconds):
    logger.warning("Executing %s took %.3f seconds", handle_repr(handle), seconds)


def socket_extra(sock):
    """A transport's extra info for its socket, as asyncio fills it in."""
    extra = {"socket": trsock.TransportSocket(sock)}
    for key, call in (("sockname", sock.getsockname), ("peername", sock.getpeername)):
        try:
            extra[key] = call()
        except OSError:
            extra[key] = None
    return extra


def set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


async def connection_made(loop, transport, protocol):
    """Wait until the new transport's connection_made (already queued) has
    run, as asyncio's create_* return only then; close it if cancelled."""
    waiter = loop.create_future()
    loop.call_soon(set_result_unless_cancelled, waiter, None)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol
