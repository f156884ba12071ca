"""How programs get the loop: tapio.install() + asyncio.run(), tapio.run(),
asyncio.Runner(loop_factory=tapio.new_event_loop). The asyncio variant runs
the same tests with the stock counterparts (default policy, asyncio.run)."""

import asyncio
import contextvars
import os
import sys
import types
from unittest import mock

from .loops import import_tapio, loop_factory, loop_tests

LOOPS = ("asyncio", "tapio")

request_id = contextvars.ContextVar("request_id", default="unset")


def entry_points(loop_name):
    """The named loop's install(), run(), new_event_loop and policy class."""
    if loop_name == "tapio":
        tapio = import_tapio()
        return types.SimpleNamespace(install=tapio.install, run=tapio.run,
                                     new_event_loop=tapio.new_event_loop,
                                     policy_class=tapio.EventLoopPolicy)
    return types.SimpleNamespace(
        install=lambda: asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy()),
        run=asyncio.run, new_event_loop=loop_factory("asyncio"),
        policy_class=asyncio.DefaultEventLoopPolicy)


async def running_loop():
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


@loop_tests(LOOPS)
class EntryPointTests:
    fresh_loop = False  # each test makes its loop through an entry point

    def setUp(self):
        super().setUp()
        self.entry = entry_points(self.loop_name)
        self.addCleanup(asyncio.set_event_loop_policy, None)

    def assert_loop_of_this_kind(self, loop):
        self.assertTrue(self.is_loop_of_this_kind(loop),
                        f"{type(loop).__module__}.{type(loop).__qualname__} is not a {self.loop_name} loop")
        self.assertIsInstance(loop, asyncio.AbstractEventLoop)

    def test_install_then_asyncio_run_uses_the_loop(self):
        self.entry.install()
        loop = asyncio.run(running_loop())
        self.assert_loop_of_this_kind(loop)
        self.assertTrue(loop.is_closed())

    def test_install_sets_the_policy(self):
        self.entry.install()
        policy = asyncio.get_event_loop_policy()
        self.assertIsInstance(policy, self.entry.policy_class)
        self.assertIsInstance(policy, asyncio.AbstractEventLoopPolicy)

    def test_asyncio_new_event_loop_after_install(self):
        self.entry.install()
        loop = asyncio.new_event_loop()
        try:
            self.assert_loop_of_this_kind(loop)
        finally:
            loop.close()

    def test_policy_get_event_loop_makes_one_loop(self):
        # What the tutorial's module-level asyncio.get_event_loop() relies on.
        self.entry.install()
        policy = asyncio.get_event_loop_policy()
        loop = policy.get_event_loop()
        try:
            self.assert_loop_of_this_kind(loop)
            self.assertIs(policy.get_event_loop(), loop)
        finally:
            policy.set_event_loop(None)
            loop.close()

    def test_run_returns_the_result_on_a_loop_it_then_closes(self):
        async def main():
            return await running_loop(), "result"
        loop, result = self.entry.run(main())
        self.assertEqual(result, "result")
        self.assert_loop_of_this_kind(loop)
        self.assertTrue(loop.is_closed())

    def test_run_debug_flag(self):
        async def debug_flag():
            return asyncio.get_running_loop().get_debug()
        self.assertTrue(self.entry.run(debug_flag(), debug=True))
        self.assertFalse(self.entry.run(debug_flag(), debug=False))

    def test_run_debug_follows_pythonasynciodebug_unless_given(self):
        # debug=None leaves the loop's default, which follows the environment
        # variable (read when the loop is made), as asyncio's does.
        async def debug_flag():
            return asyncio.get_running_loop().get_debug()
        for variable, expected in (("1", True), ("", sys.flags.dev_mode)):
            with self.subTest(PYTHONASYNCIODEBUG=variable):
                with mock.patch.dict(os.environ, {"PYTHONASYNCIODEBUG": variable}):
                    self.assertEqual(self.entry.run(debug_flag()), expected)
                    self.assertTrue(self.entry.run(debug_flag(), debug=True))
                    self.assertFalse(self.entry.run(debug_flag(), debug=False))

    def test_run_propagates_the_exception(self):
        async def fail():
            raise LookupError("from main")
        with self.assertRaisesRegex(LookupError, "from main"):
            self.entry.run(fail())

    def test_run_cancels_leftover_tasks(self):
        leftovers = []

        async def main():
            leftovers.append(asyncio.create_task(asyncio.sleep(3600)))
            await asyncio.sleep(0)

        self.entry.run(main())
        self.assertTrue(leftovers[0].cancelled())

    def test_run_finalizes_async_generators(self):
        finalized = []

        async def numbers():
            try:
                yield 1
                yield 2
            finally:
                finalized.append(True)

        async def main():
            generator = numbers()
            await generator.__anext__()
            return generator

        generator = self.entry.run(main())
        self.assertEqual(finalized, [True])
        del generator

    def test_run_is_refused_inside_a_running_loop(self):
        async def nested():
            inner = asyncio.sleep(0)
            try:
                self.entry.run(inner)
            finally:
                inner.close()
        with self.assertRaisesRegex(RuntimeError, "cannot be called from a running event loop"):
            self.entry.run(nested())

    def test_tasks_and_current_task_work_inside(self):
        async def main():
            task = asyncio.current_task()
            child = asyncio.create_task(asyncio.sleep(0, "child"))
            return isinstance(task, asyncio.Task), await child
        self.assertEqual(self.entry.run(main()), (True, "child"))

    def test_runner_with_loop_factory(self):
        with asyncio.Runner(loop_factory=self.entry.new_event_loop) as runner:
            loop = runner.get_loop()
            self.assert_loop_of_this_kind(loop)
            self.assertIs(runner.run(running_loop()), loop)
            self.assertIs(runner.run(running_loop()), loop)
        self.assertTrue(loop.is_closed())

    def test_runner_runs_in_the_given_context(self):
        context = contextvars.copy_context()
        context.run(request_id.set, "runner context")

        async def read():
            return request_id.get()

        with asyncio.Runner(loop_factory=self.entry.new_event_loop) as runner:
            self.assertEqual(runner.run(read(), context=context), "runner context")
