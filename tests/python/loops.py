"""The event loops the suite runs on, and the machinery that runs one set of
tests on each of them.

A test module writes its tests once, as methods of a plain mixin class, and
decorates the mixin with @loop_tests(LOOPS). The decorator adds one
unittest.TestCase per loop name to the module: FooTests_asyncio,
FooTests_tapio. Each test gets a fresh loop (self.loop) from that loop's
factory and, when it ends, the loop is closed and the test fails if it left a
file descriptor open or an error reached the loop's exception handler.

"tapio" always means the real package: if it cannot be imported, every tapio
test errors. Nothing here ever skips a loop.
"""

import asyncio
import faulthandler
import gc
import os
import sys
import unittest

LOOP_NAMES = ("asyncio", "tapio")

# A hang inside C code cannot be interrupted by asyncio.wait_for, so a test
# that runs longer than this dumps every thread's traceback and ends the run.
TEST_HARD_TIMEOUT = 60.0

# What run_coro() gives a coroutine by default before failing the test.
COROUTINE_TIMEOUT = 10.0


def import_tapio():
    """The tapio package; ImportError propagates (a tapio test errors)."""
    import tapio
    return tapio


def loop_factory(name):
    """The callable that makes a new event loop of the named kind."""
    if name == "asyncio":
        # The stock loop class itself, not asyncio.new_event_loop(): that one
        # asks the current policy, which tapio.install() replaces.
        return asyncio.SelectorEventLoop
    if name == "tapio":
        return import_tapio().new_event_loop
    raise ValueError(f"unknown event loop {name!r}; known: {LOOP_NAMES}")


def open_fds():
    """{fd: what it refers to} for this process's open file descriptors."""
    fds = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            pass  # the descriptor listdir() used, already closed
    return fds


class LoopTestCase(unittest.TestCase):
    """Base of the generated classes; loop_name is set on each of them."""

    loop_name = None
    # Mixins whose tests make their own loops (entry points, examples run in
    # subprocesses) set this to False; tapio must still be importable.
    fresh_loop = True

    def setUp(self):
        faulthandler.dump_traceback_later(TEST_HARD_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        gc.collect()  # so that an earlier test's garbage is not counted here
        self.addCleanup(self._check_no_fd_leaked, open_fds())
        self.new_loop_factory = loop_factory(self.loop_name)
        self.loop_errors = []
        self.loop = self.new_loop() if self.fresh_loop else None
        super().setUp()

    def new_loop(self):
        """A new loop of this test's kind, closed when the test ends. Errors
        reaching its exception handler are kept in loop_errors (and fail the
        test unless the test clears them)."""
        loop = self.new_loop_factory()
        self.addCleanup(self._close_loop, loop)
        loop.set_exception_handler(self._record_loop_error)
        return loop

    def _record_loop_error(self, loop, context):
        self.loop_errors.append(context)

    def _close_loop(self, loop):
        if not loop.is_closed():
            loop.close()
        gc.collect()  # so that destructors report to the handler now
        self.assertEqual(self.loop_errors, [], "errors reached the loop's exception handler")

    def _check_no_fd_leaked(self, before):
        gc.collect()
        leaked = {fd: target for fd, target in open_fds().items() if before.get(fd) != target}
        self.assertEqual(leaked, {}, "file descriptors left open by the test")

    def run_coro(self, coro, timeout=COROUTINE_TIMEOUT):
        """Run coro on self.loop to completion; fail if it takes longer than timeout."""
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def run_briefly(self, iterations=3):
        """Let the loop run a few iterations (callbacks scheduled by callbacks)."""
        async def yield_a_few_times():
            for _ in range(iterations):
                await asyncio.sleep(0)
        self.loop.run_until_complete(yield_a_few_times())

    def is_loop_of_this_kind(self, loop):
        """Whether loop is this test's kind of loop (not merely any loop)."""
        module = type(loop).__module__
        if self.loop_name == "tapio":
            return module.split(".")[0] == "tapio"
        return isinstance(loop, asyncio.SelectorEventLoop) and module.startswith("asyncio")


def loop_tests(loops):
    """Class decorator: adds MixinName_<loop> TestCases for each loop in loops
    to the mixin's module. The mixin itself is returned unchanged; it is not a
    TestCase, so neither unittest nor pytest collects it on its own."""
    def define(mixin):
        module = sys.modules[mixin.__module__]
        for name in loops:
            if name not in LOOP_NAMES:
                raise ValueError(f"unknown event loop {name!r}; known: {LOOP_NAMES}")
            cls_name = f"{mixin.__name__}_{name}"
            cls = type(cls_name, (mixin, LoopTestCase), {
                "loop_name": name,
                "__module__": mixin.__module__,
                "__qualname__": cls_name,
            })
            setattr(module, cls_name, cls)
        return mixin
    return define
