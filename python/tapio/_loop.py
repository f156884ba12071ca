"""tapio.Loop: asyncio's event loop API over the C core.

The C base class (_tapio.LoopCore) does the per-callback work: scheduling,
timers, fd watchers and the run loop. This class adds what asyncio does
around it: running coroutines, tasks and futures, the exception handler,
executors, async generators, debug mode, signals and socket operations.
"""
import asyncio
import concurrent.futures
import errno
import os
import sys
import threading
import traceback
import warnings
import weakref

from . import _tapio
from ._connections import ConnectionsMixin
from ._datagram import DatagramMixin
from ._helpers import logger
from ._pipes import PipesMixin
from ._sendfile import SendfileMixin
from ._signals import SignalsMixin
from ._subprocess import SubprocessMixin
from ._sockops import SockOpsMixin
from ._tls import TLSMixin


def _debug_from_environment():
    """asyncio's default: dev mode, or PYTHONASYNCIODEBUG set."""
    if sys.flags.dev_mode:
        return True
    return not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))


def _fileobj_to_fd(fileobj):
    """An fd from an int or an object with fileno(), as selectors takes it."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


def _set_exception_unless_cancelled(fut, exc):
    if not fut.cancelled():
        fut.set_exception(exc)


def _set_task_name(task, name):
    """Name a task made by a task factory. Before 3.13 a task without
    set_name is tolerated with a warning; 3.13 requires the method."""
    if sys.version_info >= (3, 13):
        task.set_name(name)
    elif hasattr(task, "set_name"):
        task.set_name(name)
    else:
        warnings.warn("Task.set_name() was added in Python 3.8, the method support will be "
                      "mandatory for third-party task implementations since 3.13.",
                      DeprecationWarning, stacklevel=3)


def _context_of(context):
    """The contextvars context a report belongs to (3.12+): its task's, its
    future's if that is a task, or its handle's."""
    for key in ("task", "future", "handle"):
        thing = context.get(key)
        if thing is not None:
            get_context = getattr(thing, "get_context", None)
            owner_context = get_context() if get_context is not None else None
            return owner_context if hasattr(owner_context, "run") else None
    return None


def _stop_when_done(fut):
    # SystemExit/KeyboardInterrupt already left run_forever on their own.
    if not fut.cancelled() and isinstance(fut.exception(), (SystemExit, KeyboardInterrupt)):
        return
    fut.get_loop().stop()


class Loop(ConnectionsMixin, DatagramMixin, PipesMixin, SubprocessMixin, SendfileMixin,
           SignalsMixin, SockOpsMixin, TLSMixin, _tapio.LoopCore, asyncio.AbstractEventLoop):
    """An asyncio event loop on libtapio."""

    def __init__(self):
        self._thread_id = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._exception_handler = None
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._origin_tracking = False
        self._origin_saved_depth = None
        self._init_signals()
        self.set_debug(_debug_from_environment())

    def __repr__(self):
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ---- running ------------------------------------------------------

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_not_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def is_running(self):
        return self._thread_id is not None

    def run_forever(self):
        self._check_closed()
        self._check_not_running()
        self._track_coroutine_origins(self.get_debug())
        saved_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter,
                                   finalizer=self._asyncgen_finalizer)
            asyncio._set_running_loop(self)
            self._run_forever_core()
        finally:
            self._thread_id = None
            asyncio._set_running_loop(None)
            self._track_coroutine_origins(False)
            sys.set_asyncgen_hooks(*saved_hooks)

    def run_until_complete(self, future):
        self._check_closed()
        self._check_not_running()
        wrapped = not asyncio.isfuture(future)
        future = asyncio.ensure_future(future, loop=self)
        if wrapped:
            # The caller cannot see this task, so no "destroyed but pending".
            future._log_destroy_pending = False
        future.add_done_callback(_stop_when_done)
        try:
            self.run_forever()
        except BaseException:
            if wrapped and future.done() and not future.cancelled():
                future.exception()  # mark it retrieved: the error is on its way up
            raise
        finally:
            future.remove_done_callback(_stop_when_done)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        self._close_signals()
        executor, self._default_executor = self._default_executor, None
        self._close_core()
        if executor is not None:
            executor.shutdown(wait=False)

    def set_debug(self, enabled):
        self._set_debug_core(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._track_coroutine_origins, enabled)

    def _track_coroutine_origins(self, enabled):
        if bool(enabled) == self._origin_tracking:
            return
        if enabled:
            self._origin_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(asyncio.constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._origin_saved_depth)
        self._origin_tracking = bool(enabled)

    def _debug_check_callback(self, callback, method, check_thread):
        """Debug mode's checks on call_soon and friends (asyncio's)."""
        if check_thread and self._thread_id is not None \
                and threading.get_ident() != self._thread_id:
            raise RuntimeError("Non-thread-safe operation invoked on an event loop "
                               "other than the current one")
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")

    # ---- futures and tasks ---------------------------------------------

    # create_future, create_task, set_task_factory and get_task_factory are
    # LoopCore's (tasks.c): it makes the Future or Task itself when there is
    # no task factory and debug mode is off, and calls this otherwise.

    if sys.version_info >= (3, 14):
        def _create_task_hooked(self, coro, **kwargs):
            """Every keyword (name, context, eager_start, ...) goes to the
            task factory, or to asyncio.Task, as 3.14 passes them."""
            task_factory = self.get_task_factory()
            if task_factory is not None:
                return task_factory(self, coro, **kwargs)
            return self._new_task(coro, kwargs)
    else:
        def _create_task_hooked(self, coro, *, name=None, context=None):
            task_factory = self.get_task_factory()
            if task_factory is None:
                return self._new_task(coro, {"name": name, "context": context})
            if context is None:  # a factory of the older (loop, coro) form
                task = task_factory(self, coro)
            else:
                task = task_factory(self, coro, context=context)
            if name is not None:
                _set_task_name(task, name)
            return task

    def _new_task(self, coro, kwargs):
        task = asyncio.Task(coro, loop=self, **kwargs)
        frames = task._source_traceback
        while frames and frames[-1].filename == __file__:
            del frames[-1]  # tapio's own frames are noise
        return task

    # ---- fd watchers ----------------------------------------------------

    def _ensure_fd_no_transport(self, fd, fileno):
        transport = self._transport_of_fd(fileno)
        if transport is not None:
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _watch(self, add, fd, callback, args):
        """add(fd, callback, *args) -> its handle; an fd a transport owns
        (or the user's socket given to one as sock=) is asyncio's
        RuntimeError."""
        self._check_closed()
        fileno = _fileobj_to_fd(fd)
        try:
            return add(fileno, callback, *args)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                self._ensure_fd_no_transport(fd, fileno)
                raise RuntimeError(f"File descriptor {fd!r} is used by transport") from None
            raise

    def _unwatch(self, remove, fd):
        fileno = _fileobj_to_fd(fd)
        try:
            removed = remove(fileno)
        except OverflowError:
            return False  # no fd has that number, so none is watched (asyncio's answer)
        if removed:
            return True
        # Not watched: asyncio refuses a transport's fd here too.
        if not self.is_closed():
            self._ensure_fd_no_transport(fd, fileno)
        return False

    def add_reader(self, fd, callback, *args):
        self._watch(self._add_reader, fd, callback, args)

    def remove_reader(self, fd):
        return self._unwatch(self._remove_reader, fd)

    def add_writer(self, fd, callback, *args):
        self._watch(self._add_writer, fd, callback, args)

    def remove_writer(self, fd):
        return self._unwatch(self._remove_writer, fd)

    # ---- exception handling ---------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info = (type(exception), exception, exception.__traceback__) \
            if exception is not None else False
        lines = [message]
        for key in sorted(context):
            if key in ("message", "exception"):
                continue
            value = context[key]
            if key == "source_traceback":
                value = "Object created at (most recent call last):\n" + \
                    "".join(traceback.format_list(value)).rstrip()
            elif key == "handle_traceback":
                value = "Handle created at (most recent call last):\n" + \
                    "".join(traceback.format_list(value)).rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            run_in = _context_of(context) if sys.version_info >= (3, 12) else None
            if run_in is not None:
                run_in.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler while handling "
                             "an unexpected error in custom exception handler",
                             exc_info=True)

    # ---- async generators -----------------------------------------------

    def _asyncgen_firstiter(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(f"asynchronous generator {agen!r} was scheduled after "
                          f"loop.shutdown_asyncgens() call", ResourceWarning, source=self)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self):
        self._asyncgens_shutdown_called = True
        if not self._asyncgens:
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[agen.aclose() for agen in closing],
                                       return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    "message": f"an error occurred during closing of "
                               f"asynchronous generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                })

    # ---- executors ------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        self._check_closed()
        if self.get_debug():
            self._debug_check_callback(func, "run_in_executor", True)
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return asyncio.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting at most `timeout` seconds
        (3.12+) for its threads; the thread that joins them stays behind
        after a timeout, as asyncio's does."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()
        thread = threading.Thread(target=self._join_executor, args=(executor, done))
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError:
            warnings.warn(f"The executor did not finishing joining its threads within "
                          f"{timeout} seconds.", RuntimeWarning, stacklevel=2)
            executor.shutdown(wait=False)
        else:
            thread.join()

    if sys.version_info < (3, 12):
        _shutdown_with_timeout = shutdown_default_executor

        async def shutdown_default_executor(self):
            await self._shutdown_with_timeout()

    def _join_executor(self, executor, done):
        """In its own thread: shut the executor down, then wake `done`."""
        try:
            executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_cancelled, done, None)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_cancelled, done, exc)

    # ---- names ------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        import socket
        return await self.run_in_executor(None, socket.getaddrinfo, host, port,
                                          family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        import socket
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)


__all__ = ["Loop"]
