"""The loop itself: callbacks, timers, running and stopping, futures and
tasks, the exception handler, debug mode, async generators, executors."""

import asyncio
import concurrent.futures
import contextvars
import gc
import math
import os
import re
import sys
import threading
import time
import unittest
import warnings
import weakref

from .loops import loop_tests

LOOPS = ("asyncio", "tapio")

request_id = contextvars.ContextVar("request_id", default="unset")


def raise_(exc):
    raise exc


@loop_tests(LOOPS)
class CallSoonTests:
    def test_callbacks_run_in_fifo_order(self):
        calls = []
        for i in range(20):
            self.loop.call_soon(calls.append, i)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(calls, list(range(20)))

    def test_positional_arguments_are_passed(self):
        calls = []
        self.loop.call_soon(lambda *args: calls.append(args), 1, "two", None)
        self.run_briefly()
        self.assertEqual(calls, [(1, "two", None)])

    def test_keyword_arguments_are_refused(self):
        with self.assertRaises(TypeError):
            self.loop.call_soon(print, end="")

    def test_non_callable_is_refused_in_debug_mode(self):
        self.loop.set_debug(True)
        with self.assertRaises(TypeError):
            self.loop.call_soon(42)

    def test_callback_runs_in_the_context_current_at_scheduling(self):
        seen = []
        token = request_id.set("at call_soon")
        self.loop.call_soon(lambda: seen.append(request_id.get()))
        request_id.reset(token)
        self.run_briefly()
        self.assertEqual(seen, ["at call_soon"])

    def test_explicit_context_is_used_and_updated(self):
        context = contextvars.copy_context()
        context.run(request_id.set, "in context")
        seen = []

        def callback():
            seen.append(request_id.get())
            request_id.set("changed by callback")

        self.loop.call_soon(callback, context=context)
        self.run_briefly()
        self.assertEqual(seen, ["in context"])
        self.assertEqual(context[request_id], "changed by callback")
        self.assertEqual(request_id.get(), "unset")

    def test_cancelled_handle_does_not_run(self):
        calls = []
        handle = self.loop.call_soon(calls.append, 1)
        self.assertFalse(handle.cancelled())
        handle.cancel()
        self.assertTrue(handle.cancelled())
        self.run_briefly()
        self.assertEqual(calls, [])

    def test_cancel_twice_is_harmless(self):
        handle = self.loop.call_soon(print)
        handle.cancel()
        handle.cancel()
        self.assertTrue(handle.cancelled())

    def test_callback_scheduled_by_callback_runs_on_a_later_iteration(self):
        calls = []

        def first():
            calls.append("first")
            self.loop.call_soon(calls.append, "scheduled by first")

        self.loop.call_soon(first)
        self.loop.call_soon(calls.append, "second")
        self.run_briefly()
        self.assertEqual(calls, ["first", "second", "scheduled by first"])

    def test_exception_in_callback_reaches_handler_and_loop_goes_on(self):
        calls = []
        self.loop.call_soon(raise_, ValueError("boom"))
        self.loop.call_soon(calls.append, "after")
        self.run_briefly()
        self.assertEqual(calls, ["after"])
        [context] = self.loop_errors
        self.loop_errors.clear()
        self.assertIsInstance(context["exception"], ValueError)
        self.assertIn("message", context)
        self.assertIn("handle", context)

    def test_call_soon_on_closed_loop_raises(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon(print)


@loop_tests(LOOPS)
class HandleLifetimeTests:
    """A handle kept in a reference cycle must not keep the cycle alive once
    it has run or been cancelled, and must keep it alive while queued."""

    class Holder:
        def method(self):
            pass

    def test_cycle_through_a_handle_that_ran_is_collected(self):
        holder = self.Holder()
        holder.handle = self.loop.call_soon(holder.method)
        ref = weakref.ref(holder)
        del holder
        gc.collect()
        self.assertIsNotNone(ref(), "a queued handle's callback must stay alive")
        self.run_briefly()
        gc.collect()
        self.assertIsNone(ref())

    def test_cycle_through_a_cancelled_timer_is_collected(self):
        holder = self.Holder()
        holder.timer = self.loop.call_later(60, holder.method)
        ref = weakref.ref(holder)
        holder.timer.cancel()
        del holder
        gc.collect()
        self.assertIsNone(ref())


@loop_tests(LOOPS)
class TimerTests:
    def run_for(self, seconds):
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def test_timers_fire_in_deadline_order(self):
        calls = []
        self.loop.call_later(0.03, calls.append, "c")
        self.loop.call_later(0.01, calls.append, "a")
        self.loop.call_later(0.02, calls.append, "b")
        self.run_for(0.06)
        self.assertEqual(calls, ["a", "b", "c"])

    def test_equal_deadlines_all_fire(self):
        # asyncio does not promise an order among timers with one deadline.
        calls = []
        when = self.loop.time() + 0.01
        for i in range(10):
            self.loop.call_at(when, calls.append, i)
        self.run_for(0.03)
        self.assertEqual(sorted(calls), list(range(10)))

    def test_call_later_waits_for_its_delay(self):
        start = self.loop.time()
        fired = self.loop.create_future()
        self.loop.call_later(0.05, lambda: fired.set_result(self.loop.time()))
        elapsed = self.run_coro(fired) - start
        self.assertGreaterEqual(elapsed, 0.049)
        self.assertLess(elapsed, 1.0)

    def test_short_sleeps_do_not_end_early(self):
        # asyncio runs a timer once loop.time() has reached its deadline
        # (within the clock's resolution), however small the delay.
        resolution = time.get_clock_info("monotonic").resolution

        async def sleeps():
            for delay in (1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 1e-10):
                start = self.loop.time()
                await asyncio.sleep(delay)
                elapsed = self.loop.time() - start
                self.assertGreaterEqual(elapsed, delay - resolution, f"sleep({delay})")
        self.run_coro(sleeps())

    def test_call_later_runs_no_earlier_than_its_when(self):
        resolution = time.get_clock_info("monotonic").resolution
        ran_at = {}
        handles = {delay: self.loop.call_later(delay, lambda d=delay: ran_at.setdefault(d, self.loop.time()))
                   for delay in (0.001, 0.005, 0.013, 0.02)}
        self.run_for(0.05)
        self.assertEqual(sorted(ran_at), sorted(handles))
        for delay, handle in handles.items():
            self.assertGreaterEqual(ran_at[delay], handle.when() - resolution, f"call_later({delay})")

    def test_nan_delay_runs_at_once_and_blocks_no_later_timer(self):
        calls = []
        handle = self.loop.call_later(float("nan"), calls.append, "nan")
        self.assertTrue(math.isnan(handle.when()))
        self.loop.call_later(0.01, calls.append, "later")
        self.run_for(0.05)
        self.assertEqual(calls, ["nan", "later"])

    def test_sleep_nan(self):
        # Python 3.13's asyncio.sleep refuses NaN; before, the sleep's timer
        # is due at once when no other timer is waiting.
        if sys.version_info >= (3, 13):
            with self.assertRaisesRegex(ValueError, "NaN"):
                self.loop.run_until_complete(asyncio.sleep(float("nan")))
            return
        # A watchdog off the loop's timer heap, so the check can fail
        # without hanging.
        watchdog = threading.Timer(5, self.loop.call_soon_threadsafe, (self.loop.stop,))
        watchdog.start()
        try:
            start = time.monotonic()
            self.loop.run_until_complete(asyncio.sleep(float("nan")))
            self.assertLess(time.monotonic() - start, 1.0)
        finally:
            watchdog.cancel()

    def test_call_at_fires_at_loop_time(self):
        fired = self.loop.create_future()
        when = self.loop.time() + 0.02
        handle = self.loop.call_at(when, lambda: fired.set_result(self.loop.time()))
        self.assertEqual(handle.when(), when)
        self.assertGreaterEqual(self.run_coro(fired), when - 0.001)

    def test_call_later_handle_when(self):
        handle = self.loop.call_later(10, print)
        self.assertAlmostEqual(handle.when(), self.loop.time() + 10, delta=0.1)
        handle.cancel()

    def test_cancelled_timer_does_not_fire(self):
        calls = []
        handle = self.loop.call_later(0.01, calls.append, 1)
        handle.cancel()
        self.assertTrue(handle.cancelled())
        self.run_for(0.03)
        self.assertEqual(calls, [])

    def test_timer_cancelled_by_earlier_timer_does_not_fire(self):
        calls = []
        later = self.loop.call_later(0.02, calls.append, "later")
        self.loop.call_later(0.01, later.cancel)
        self.run_for(0.04)
        self.assertEqual(calls, [])

    def test_many_cancelled_timers_leave_the_live_ones(self):
        calls = []
        handles = [self.loop.call_later(0.01 + i / 10000, calls.append, i) for i in range(1000)]
        for i, handle in enumerate(handles):
            if i % 100:
                handle.cancel()
        self.run_for(0.15)
        self.assertEqual(calls, list(range(0, 1000, 100)))

    def test_negative_delay_fires_at_once(self):
        calls = []
        self.loop.call_later(-5, calls.append, "late")
        self.run_briefly()
        self.assertEqual(calls, ["late"])

    def test_timer_arguments_and_context(self):
        context = contextvars.copy_context()
        context.run(request_id.set, "timer context")
        seen = []
        self.loop.call_later(0.001, lambda a, b: seen.append((a, b, request_id.get())),
                             1, 2, context=context)
        self.run_for(0.02)
        self.assertEqual(seen, [(1, 2, "timer context")])

    def test_delay_none_is_a_type_error(self):
        with self.assertRaises(TypeError):
            self.loop.call_later(None, print)

    def test_time_is_monotonic_and_follows_the_clock(self):
        first = self.loop.time()
        time.sleep(0.05)
        second = self.loop.time()
        self.assertGreaterEqual(second - first, 0.045)
        self.assertLess(second - first, 1.0)

    def test_sleep_wakes_up_the_loop(self):
        start = time.monotonic()
        self.run_coro(asyncio.sleep(0.05))
        self.assertGreaterEqual(time.monotonic() - start, 0.045)


@loop_tests(LOOPS)
class RunAndStopTests:
    def test_run_until_complete_returns_the_result(self):
        async def answer():
            await asyncio.sleep(0)
            return 42
        self.assertEqual(self.loop.run_until_complete(answer()), 42)

    def test_run_until_complete_raises_the_exception(self):
        async def fail():
            raise ZeroDivisionError
        with self.assertRaises(ZeroDivisionError):
            self.loop.run_until_complete(fail())

    def test_run_until_complete_accepts_a_future(self):
        future = self.loop.create_future()
        self.loop.call_soon(future.set_result, "done")
        self.assertEqual(self.loop.run_until_complete(future), "done")

    def test_run_until_complete_refuses_a_non_awaitable(self):
        with self.assertRaises(TypeError):
            self.loop.run_until_complete(42)

    def test_run_until_complete_refuses_another_loops_future(self):
        other = self.new_loop()
        with self.assertRaises(ValueError):
            self.loop.run_until_complete(other.create_future())

    def test_stop_ends_run_forever(self):
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertFalse(self.loop.is_running())

    def test_stop_before_run_forever_runs_one_iteration(self):
        calls = []
        self.loop.call_soon(calls.append, 1)
        self.loop.stop()
        self.loop.run_forever()
        self.assertEqual(calls, [1])

    def test_stop_lets_the_current_batch_finish(self):
        calls = []

        def stopper():
            calls.append("stopper")
            self.loop.stop()
            self.loop.call_soon(calls.append, "next run")

        self.loop.call_soon(stopper)
        self.loop.call_soon(calls.append, "same batch")
        self.loop.run_forever()
        self.assertEqual(calls, ["stopper", "same batch"])
        self.run_briefly()
        self.assertEqual(calls, ["stopper", "same batch", "next run"])

    def test_stop_in_run_until_complete_raises(self):
        async def stop_then_wait():
            self.loop.stop()
            await asyncio.sleep(10)

        task = self.loop.create_task(stop_then_wait())
        with self.assertRaisesRegex(RuntimeError, "stopped before Future completed"):
            self.loop.run_until_complete(task)
        task.cancel()
        self.run_briefly()

    def test_is_running(self):
        seen = []
        self.loop.call_soon(lambda: seen.append(self.loop.is_running()))
        self.assertFalse(self.loop.is_running())
        self.run_briefly()
        self.assertEqual(seen, [True])
        self.assertFalse(self.loop.is_running())

    def test_running_loop_is_visible_inside_only(self):
        async def inside():
            return asyncio.get_running_loop(), asyncio.get_event_loop()
        self.assertEqual(self.loop.run_until_complete(inside()), (self.loop, self.loop))
        with self.assertRaises(RuntimeError):
            asyncio.get_running_loop()

    def test_run_forever_while_running_raises(self):
        async def nested():
            with self.assertRaisesRegex(RuntimeError, "already running"):
                self.loop.run_forever()
        self.run_coro(nested())

    def test_run_until_complete_while_running_raises(self):
        async def nested():
            inner = asyncio.sleep(0)
            with self.assertRaisesRegex(RuntimeError, "already running"):
                self.loop.run_until_complete(inner)
            inner.close()
        self.run_coro(nested())

    def test_running_a_second_loop_in_the_same_thread_raises(self):
        other = self.new_loop()

        async def nested():
            inner = asyncio.sleep(0)
            with self.assertRaisesRegex(RuntimeError, "another loop is running"):
                other.run_until_complete(inner)
            inner.close()
        self.run_coro(nested())

    def test_running_a_closed_loop_raises(self):
        self.loop.close()
        self.assertTrue(self.loop.is_closed())
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.run_forever()
        coro = asyncio.sleep(0)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.run_until_complete(coro)
        coro.close()

    def test_closing_a_running_loop_raises(self):
        async def close_inside():
            with self.assertRaisesRegex(RuntimeError, "Cannot close a running event loop"):
                self.loop.close()
        self.run_coro(close_inside())
        self.assertFalse(self.loop.is_closed())

    def test_unclosed_loop_warns(self):
        loop = self.new_loop_factory()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del loop
            gc.collect()
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        self.assertTrue(any("unclosed event loop" in m for m in messages), messages)

    def test_close_is_idempotent(self):
        self.assertFalse(self.loop.is_closed())
        self.loop.close()
        self.loop.close()
        self.assertTrue(self.loop.is_closed())

    def test_loop_can_run_again_after_stop(self):
        for expected in range(3):
            async def value(expected=expected):
                return expected
            self.assertEqual(self.loop.run_until_complete(value()), expected)

    def test_keyboard_interrupt_in_callback_propagates(self):
        self.loop.call_soon(raise_, KeyboardInterrupt)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertFalse(self.loop.is_running())
        self.run_briefly()  # still usable

    def test_system_exit_in_callback_propagates(self):
        self.loop.call_soon(raise_, SystemExit(3))
        with self.assertRaises(SystemExit):
            self.loop.run_forever()
        self.assertFalse(self.loop.is_running())

    def test_keyboard_interrupt_in_task_propagates_from_run_until_complete(self):
        async def interrupted():
            await asyncio.sleep(0)
            raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_until_complete(interrupted())


@loop_tests(LOOPS)
class FutureAndTaskTests:
    def test_create_future(self):
        future = self.loop.create_future()
        self.assertIsInstance(future, asyncio.Future)
        self.assertIs(future.get_loop(), self.loop)
        self.assertFalse(future.done())

    def test_create_task_runs_the_coroutine(self):
        async def double(x):
            await asyncio.sleep(0)
            return 2 * x
        task = self.loop.create_task(double(21))
        self.assertIsInstance(task, asyncio.Task)
        self.assertIs(task.get_loop(), self.loop)
        self.assertEqual(self.loop.run_until_complete(task), 42)

    def test_create_task_name(self):
        task = self.loop.create_task(asyncio.sleep(0), name="worker")
        self.assertEqual(task.get_name(), "worker")
        self.loop.run_until_complete(task)

    def test_create_task_context(self):
        context = contextvars.copy_context()
        context.run(request_id.set, "task context")

        async def read_and_write():
            seen = request_id.get()
            request_id.set("set by task")
            return seen

        task = self.loop.create_task(read_and_write(), context=context)
        self.assertEqual(self.loop.run_until_complete(task), "task context")
        self.assertEqual(context[request_id], "set by task")
        self.assertEqual(request_id.get(), "unset")

    def test_create_task_refuses_a_non_coroutine(self):
        with self.assertRaises(TypeError):
            self.loop.create_task(42)

    def test_create_task_argument_errors(self):
        coro = asyncio.sleep(0)
        self.addCleanup(coro.close)
        with self.assertRaises(TypeError):
            self.loop.create_task()
        with self.assertRaises(TypeError):
            self.loop.create_task(coro, None)
        if sys.version_info < (3, 14):  # 3.14 hands any keyword to Task
            with self.assertRaises(TypeError):
                self.loop.create_task(coro, eager_start=True)

    def test_create_task_and_future_on_a_closed_loop(self):
        loop = self.new_loop()
        loop.close()
        coro = asyncio.sleep(0)
        self.addCleanup(coro.close)
        with self.assertRaisesRegex(RuntimeError, "closed"):
            loop.create_task(coro)
        self.assertIs(loop.create_future().get_loop(), loop)  # as asyncio's

    def test_create_task_uses_asyncio_task_of_the_moment(self):
        # asyncio looks Task up in asyncio.tasks at each call; so does tapio.
        made = []

        class RecordingTask(asyncio.Task):
            def __init__(self, coro, *, loop=None, **kwargs):
                made.append(sorted(kwargs))
                super().__init__(coro, loop=loop, **kwargs)

        saved = asyncio.tasks.Task
        asyncio.tasks.Task = RecordingTask
        try:
            task = self.loop.create_task(asyncio.sleep(0, "r"), name="n")
        finally:
            asyncio.tasks.Task = saved
        self.assertIsInstance(task, RecordingTask)
        self.assertEqual(self.loop.run_until_complete(task), "r")
        self.assertEqual(len(made), 1)
        self.assertIn("name", made[0])

    def test_create_task_in_debug_mode_records_where(self):
        self.loop.set_debug(True)
        task = self.loop.create_task(asyncio.sleep(0))
        self.loop.run_until_complete(task)
        frames = task._source_traceback
        self.assertTrue(frames)
        self.assertEqual(frames[-1][2], "test_create_task_in_debug_mode_records_where")

    def test_task_factory(self):
        made = []

        def factory(loop, coro, **kwargs):
            made.append((loop, kwargs))
            return asyncio.Task(coro, loop=loop, **kwargs)

        self.assertIsNone(self.loop.get_task_factory())
        self.loop.set_task_factory(factory)
        self.assertIs(self.loop.get_task_factory(), factory)
        task = self.loop.create_task(asyncio.sleep(0, "r"), name="via factory")
        self.assertEqual(task.get_name(), "via factory")
        self.assertEqual(self.loop.run_until_complete(task), "r")
        self.assertEqual(made, [(self.loop, {})])

    def test_task_factory_is_used_by_ensure_future(self):
        made = []
        self.loop.set_task_factory(lambda loop, coro: made.append(1) or asyncio.Task(coro, loop=loop))
        self.loop.run_until_complete(asyncio.ensure_future(asyncio.sleep(0), loop=self.loop))
        self.assertEqual(made, [1])

    def test_task_factory_reset_and_validation(self):
        self.loop.set_task_factory(lambda loop, coro: asyncio.Task(coro, loop=loop))
        self.loop.set_task_factory(None)
        self.assertIsNone(self.loop.get_task_factory())
        with self.assertRaises(TypeError):
            self.loop.set_task_factory(42)

    def test_unretrieved_task_exception_is_reported(self):
        async def fail():
            raise ValueError("never retrieved")
        task = self.loop.create_task(fail())
        self.run_briefly()
        del task
        gc.collect()
        [context] = self.loop_errors
        self.loop_errors.clear()
        self.assertIn("never retrieved", context["message"])
        self.assertIsInstance(context["exception"], ValueError)


@loop_tests(LOOPS)
class ExceptionHandlerTests:
    def test_default_is_none(self):
        fresh = self.new_loop_factory()
        try:
            self.assertIsNone(fresh.get_exception_handler())
        finally:
            fresh.close()

    def test_set_and_get(self):
        def handler(loop, context):
            pass
        self.loop.set_exception_handler(handler)
        self.assertIs(self.loop.get_exception_handler(), handler)
        self.loop.set_exception_handler(None)
        self.assertIsNone(self.loop.get_exception_handler())

    def test_non_callable_is_refused(self):
        with self.assertRaises(TypeError):
            self.loop.set_exception_handler("not callable")

    def test_call_exception_handler_passes_loop_and_context(self):
        calls = []
        self.loop.set_exception_handler(lambda loop, context: calls.append((loop, context)))
        context = {"message": "something happened", "custom": 1}
        self.loop.call_exception_handler(context)
        self.assertEqual(calls, [(self.loop, context)])

    def test_default_handler_logs_message_and_traceback(self):
        self.loop.set_exception_handler(None)
        try:
            raise ValueError("the cause")
        except ValueError as exc:
            error = exc
        with self.assertLogs("asyncio", "ERROR") as logs:
            self.loop.call_exception_handler({"message": "it broke", "exception": error})
        output = "\n".join(logs.output)
        self.assertIn("it broke", output)
        self.assertIn("ValueError: the cause", output)

    def test_default_exception_handler_method_logs(self):
        with self.assertLogs("asyncio", "ERROR") as logs:
            self.loop.default_exception_handler({"message": "direct call"})
        self.assertIn("direct call", "\n".join(logs.output))

    def test_failing_custom_handler_is_logged(self):
        self.loop.set_exception_handler(lambda loop, context: raise_(RuntimeError("handler bug")))
        with self.assertLogs("asyncio", "ERROR") as logs:
            self.loop.call_exception_handler({"message": "original"})
        self.assertIn("handler bug", "\n".join(logs.output))

    def test_callback_exception_context_keys(self):
        contexts = []
        self.loop.set_exception_handler(lambda loop, context: contexts.append(context))

        def callback():
            raise KeyError("k")

        self.loop.call_soon(callback)
        self.run_briefly()
        [context] = contexts
        self.assertIsInstance(context["exception"], KeyError)
        self.assertIsInstance(context["message"], str)
        self.assertIn("handle", context)
        self.assertTrue(context["message"].startswith("Exception in callback"))


@loop_tests(LOOPS)
class DebugModeTests:
    def test_default_follows_the_environment(self):
        expected = sys.flags.dev_mode or bool(os.environ.get("PYTHONASYNCIODEBUG"))
        self.assertEqual(self.loop.get_debug(), expected)

    def test_set_debug(self):
        self.loop.set_debug(True)
        self.assertTrue(self.loop.get_debug())
        self.loop.set_debug(False)
        self.assertFalse(self.loop.get_debug())

    def test_slow_callback_duration_default(self):
        self.assertEqual(self.loop.slow_callback_duration, 0.1)

    def test_slow_callback_is_logged_in_debug_mode(self):
        self.loop.set_debug(True)
        self.loop.slow_callback_duration = 0.01
        self.loop.call_soon(time.sleep, 0.05)
        with self.assertLogs("asyncio", "WARNING") as logs:
            self.run_briefly()
        self.assertRegex("\n".join(logs.output), r"Executing .* took \d+\.\d+ seconds")

    def test_slow_callback_and_slow_task_step_are_named_in_the_log(self):
        def stop_loop_cb(loop):
            loop.stop()

        async def stop_loop_coro(loop):
            loop.stop()

        self.loop.set_debug(True)
        self.loop.slow_callback_duration = 0.0
        self.loop.call_soon(stop_loop_cb, self.loop)
        with self.assertLogs("asyncio", "WARNING") as logs:
            self.loop.run_forever()
        self.assertRegex(logs.records[-1].getMessage(),
                         r"^Executing <Handle.*stop_loop_cb.*> took .* seconds$")

        task = self.loop.create_task(stop_loop_coro(self.loop))
        with self.assertLogs("asyncio", "WARNING") as logs:
            self.loop.run_forever()
        self.assertTrue(task.done())
        self.assertTrue(any(re.match(r"^Executing <Task.*stop_loop_coro.*> took .* seconds$",
                                     record.getMessage()) for record in logs.records),
                        [record.getMessage() for record in logs.records])

    def test_handles_remember_where_they_were_created(self):
        # In debug mode a handle's repr ends with the file and line of the
        # call_soon/call_later/call_at that made it.
        self.loop.set_debug(True)

        def created_here(handle):
            line = sys._getframe(1).f_lineno - 1
            self.assertIn(f"created at {__file__}:{line}", repr(handle))
            handle.cancel()

        handle = self.loop.call_soon(print)
        created_here(handle)
        handle = self.loop.call_soon_threadsafe(print)
        created_here(handle)
        handle = self.loop.call_later(10, print)
        created_here(handle)
        handle = self.loop.call_at(self.loop.time() + 10, print)
        created_here(handle)

    def test_failing_callback_reports_where_it_was_scheduled(self):
        # The default exception handler logs the handle, whose repr says
        # where it was created, and the traceback of its creation.
        self.loop.set_debug(True)
        self.loop.set_exception_handler(None)
        line = sys._getframe().f_lineno + 1
        self.loop.call_soon(raise_, LookupError("callback failed"))
        with self.assertLogs("asyncio", "ERROR") as logs:
            self.run_briefly()
        output = "\n".join(logs.output)
        self.assertIn("LookupError: callback failed", output)
        self.assertIn(f"created at {__file__}:{line}>", output)
        self.assertIn("Object created at (most recent call last):", output)
        self.assertIn(f'File "{__file__}", line {line}, in '
                      'test_failing_callback_reports_where_it_was_scheduled', output)

    def test_slow_callback_is_not_logged_without_debug(self):
        self.loop.set_debug(False)
        self.loop.slow_callback_duration = 0.01
        self.loop.call_soon(time.sleep, 0.05)
        with self.assertNoLogs("asyncio", "WARNING"):
            self.run_briefly()

    def test_call_soon_from_another_thread_is_refused_in_debug_mode(self):
        self.loop.set_debug(True)
        errors = []

        def from_thread():
            try:
                self.loop.call_soon(print)
            except RuntimeError as exc:
                errors.append(exc)

        async def main():
            await self.loop.run_in_executor(None, from_thread)
        self.run_coro(main())
        self.assertEqual(len(errors), 1)
        self.assertIn("thread", str(errors[0]))


@loop_tests(LOOPS)
class ThreadsafeTests:
    def test_wakes_up_a_waiting_loop(self):
        future = self.loop.create_future()
        timer = threading.Timer(0.05, self.loop.call_soon_threadsafe, (future.set_result, "woken"))
        timer.start()
        try:
            self.assertEqual(self.run_coro(future, timeout=5), "woken")
        finally:
            timer.join()

    def test_many_threads_each_keep_their_order(self):
        threads, per_thread = 8, 200
        received = {t: [] for t in range(threads)}
        done = self.loop.create_future()

        def record(thread, i):
            received[thread].append(i)
            if sum(map(len, received.values())) == threads * per_thread:
                done.set_result(None)

        def producer(thread):
            for i in range(per_thread):
                self.loop.call_soon_threadsafe(record, thread, i)

        workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        try:
            self.run_coro(done)
        finally:
            for worker in workers:
                worker.join()
        for thread in range(threads):
            self.assertEqual(received[thread], list(range(per_thread)))

    def test_handle_can_be_cancelled(self):
        calls = []
        handle = self.loop.call_soon_threadsafe(calls.append, 1)
        handle.cancel()
        self.run_briefly()
        self.assertEqual(calls, [])

    def test_context_argument(self):
        context = contextvars.copy_context()
        context.run(request_id.set, "threadsafe")
        seen = []
        self.loop.call_soon_threadsafe(lambda: seen.append(request_id.get()), context=context)
        self.run_briefly()
        self.assertEqual(seen, ["threadsafe"])

    def test_closed_loop_refuses(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon_threadsafe(print)


@loop_tests(LOOPS)
class AsyncGeneratorTests:
    def start_generator(self, finalized):
        """Start an async generator on the loop and leave it suspended."""
        async def numbers():
            try:
                yield 1
                yield 2
            finally:
                finalized.append(True)

        async def take_one():
            generator = numbers()
            await generator.__anext__()
            return generator
        return self.loop.run_until_complete(take_one())

    def test_shutdown_asyncgens_finalizes_suspended_generators(self):
        finalized = []
        generator = self.start_generator(finalized)
        self.assertEqual(finalized, [])
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.assertEqual(finalized, [True])
        del generator

    def test_shutdown_asyncgens_twice(self):
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())

    def test_asyncgen_hooks_are_restored_after_running(self):
        before = sys.get_asyncgen_hooks()
        self.run_briefly()
        self.assertEqual(sys.get_asyncgen_hooks(), before)

    def test_garbage_generator_is_finalized_by_the_loop(self):
        finalized = []
        self.start_generator(finalized)  # the generator is dropped at once
        self.run_briefly()
        self.assertEqual(finalized, [True])


@loop_tests(LOOPS)
class ExecutorTests:
    def test_run_in_executor_runs_in_another_thread(self):
        result = self.run_coro(self.loop.run_in_executor(None, threading.get_ident))
        self.assertNotEqual(result, threading.get_ident())

    def test_arguments_and_result(self):
        self.assertEqual(self.run_coro(self.loop.run_in_executor(None, pow, 2, 10)), 1024)

    def test_exception_propagates(self):
        with self.assertRaises(ZeroDivisionError):
            self.run_coro(self.loop.run_in_executor(None, lambda: 1 / 0))

    def test_explicit_executor(self):
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explicit") as pool:
            name = self.run_coro(self.loop.run_in_executor(
                pool, lambda: threading.current_thread().name))
        self.assertTrue(name.startswith("explicit"), name)

    def test_set_default_executor(self):
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="default")
        self.addCleanup(pool.shutdown)
        self.loop.set_default_executor(pool)
        name = self.run_coro(self.loop.run_in_executor(
            None, lambda: threading.current_thread().name))
        self.assertTrue(name.startswith("default"), name)

    def test_shutdown_default_executor_then_refuses_work(self):
        self.run_coro(self.loop.run_in_executor(None, int))
        self.run_coro(self.loop.shutdown_default_executor())
        with self.assertRaisesRegex(RuntimeError, "shutdown"):
            self.loop.run_in_executor(None, int)

    def test_shutdown_default_executor_waits_for_running_work(self):
        finished = []
        future = self.loop.run_in_executor(None, lambda: (time.sleep(0.05), finished.append(1)))
        self.run_coro(self.loop.shutdown_default_executor())
        self.assertEqual(finished, [1])
        self.run_coro(future)

    def test_closed_loop_refuses(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.run_in_executor(None, int)


class BackendTests(unittest.TestCase):
    """TAPIO_BACKEND picks libtapio's I/O backend: the suite runs on each
    (scripts/run-tests.sh), so a name that silently fell back would make
    those runs test epoll again."""

    def test_the_backend_asked_for_is_the_one_running(self):
        import tapio
        loop = tapio.new_event_loop()
        try:
            # io_uring by default (this project's machines have Linux 6.1+)
            wanted = os.environ.get("TAPIO_BACKEND") or "io_uring"
            self.assertEqual(loop._backend(), wanted)
        finally:
            loop.close()
