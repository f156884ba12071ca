"""Slow-path helpers the C extension calls: callback formatting for reprs and
error messages, and the debug-mode slow callback warning."""
import asyncio
import functools
import inspect
import logging
import reprlib
import sys
from asyncio import format_helpers, trsock

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


# From 3.13 on asyncio shows a callback's arguments only in debug mode (they
# may be sensitive).
_ARGS_ONLY_IN_DEBUG = sys.version_info >= (3, 13)


def _arguments(args, kwargs, debug):
    if _ARGS_ONLY_IN_DEBUG and not debug:
        return "()"
    items = [reprlib.repr(arg) for arg in args or ()]
    items += [f"{key}={reprlib.repr(value)}" for key, value in (kwargs or {}).items()]
    return "(" + ", ".join(items) + ")"


def _describe(func, args, kwargs, debug):
    """'name(arg, ...)'; a functools.partial shows its own arguments, then
    the call's: 'name(1)(2)', as asyncio names them."""
    if isinstance(func, functools.partial):
        return (_describe(func.func, func.args, func.keywords, debug) +
                _arguments(args, kwargs, debug))
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return name + _arguments(args, kwargs, debug)


def format_callback(func, args, debug=False):
    """How asyncio names a callback in messages: 'f(1, 2) at file.py:10'."""
    text = _describe(func, args, None, debug)
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
        parts.append(format_callback(handle._callback, handle._args,
                                     handle._loop.get_debug()))
    if handle._source_traceback:
        filename, lineno = handle._source_traceback[-1][:2]
        parts.append(f"created at {filename}:{lineno}")
    return "<" + " ".join(parts) + ">"


def log_slow_callback(handle, seconds):
    # A task's step is named by its task, as asyncio names it.
    owner = getattr(handle._callback, "__self__", None)
    what = repr(owner) if isinstance(owner, asyncio.Task) else handle_repr(handle)
    logger.warning("Executing %s took %.3f seconds", what, seconds)


def extract_stack():
    """The stack of the code that called into the loop (the caller of the C
    method that made a handle), as asyncio keeps it in debug mode."""
    return format_helpers.extract_stack(sys._getframe(1))


def socket_extra(sock):
    """A transport's extra info for its socket, as asyncio fills it in."""
    extra = {"socket": trsock.TransportSocket(sock)}
    for key, call in (("sockname", sock.getsockname), ("peername", sock.getpeername)):
        try:
            extra[key] = call()
        except OSError:
            extra[key] = None
    return extra


def check_protocol(protocol, resource):
    """asyncio's transports look up the protocol's connection_made as they
    are made, so a protocol without one (None, a plain object) fails the
    call with AttributeError before any transport exists. resource (the
    socket or pipe it was for) is closed then, as asyncio's half-made
    transport closes it when collected."""
    try:
        protocol.connection_made
    except AttributeError:
        resource.close()
        raise


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
