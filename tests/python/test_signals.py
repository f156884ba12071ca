"""add_signal_handler/remove_signal_handler (Unix signals, main thread)."""

import os
import signal
import threading

from .loops import loop_tests
from .support import wait_until

LOOPS = ("asyncio", "tapio")


@loop_tests(LOOPS)
class SignalHandlerTests:
    def setUp(self):
        super().setUp()
        # Whatever a test does, SIGUSR1/SIGUSR2 end up at their defaults.
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            self.addCleanup(signal.signal, sig, signal.getsignal(sig))

    def test_handler_runs_with_its_arguments(self):
        received = self.loop.create_future()
        self.loop.add_signal_handler(signal.SIGUSR1, received.set_result, "usr1")
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        self.assertEqual(self.run_coro(received), "usr1")
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))

    def test_handler_runs_as_a_loop_callback_not_inside_the_signal(self):
        order = []

        def send_signal():
            os.kill(os.getpid(), signal.SIGUSR1)
            order.append("after kill")

        self.loop.add_signal_handler(signal.SIGUSR1, order.append, "handler")
        self.loop.call_soon(send_signal)
        self.run_coro(wait_until(lambda: "handler" in order))
        self.assertEqual(order, ["after kill", "handler"])
        self.assertEqual(self.loop.remove_signal_handler(signal.SIGUSR1), True)

    def test_handler_runs_in_the_loop_thread(self):
        thread = self.loop.create_future()
        self.loop.add_signal_handler(signal.SIGUSR1, lambda: thread.set_result(threading.get_ident()))
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        self.assertEqual(self.run_coro(thread), threading.get_ident())
        self.loop.remove_signal_handler(signal.SIGUSR1)

    def test_signal_from_another_thread_wakes_the_loop(self):
        received = self.loop.create_future()
        self.loop.add_signal_handler(signal.SIGUSR1, received.set_result, True)
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        try:
            self.assertTrue(self.run_coro(received))
        finally:
            timer.join()
        self.loop.remove_signal_handler(signal.SIGUSR1)

    def test_two_signals_reach_their_own_handlers(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "usr1")
        self.loop.add_signal_handler(signal.SIGUSR2, seen.append, "usr2")
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
        self.run_coro(wait_until(lambda: len(seen) == 2))
        self.assertEqual(sorted(seen), ["usr1", "usr2"])
        self.loop.remove_signal_handler(signal.SIGUSR1)
        self.loop.remove_signal_handler(signal.SIGUSR2)

    def test_adding_again_replaces_the_handler(self):
        seen = []
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "old")
        self.loop.add_signal_handler(signal.SIGUSR1, seen.append, "new")
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        self.run_coro(wait_until(lambda: seen))
        self.run_briefly()
        self.assertEqual(seen, ["new"])
        self.loop.remove_signal_handler(signal.SIGUSR1)

    def test_remove_reports_whether_one_was_registered(self):
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.loop.add_signal_handler(signal.SIGUSR1, print)
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))

    def test_remove_restores_the_default_disposition(self):
        self.loop.add_signal_handler(signal.SIGUSR1, print)
        self.loop.remove_signal_handler(signal.SIGUSR1)
        self.assertIs(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)

    def test_remove_sigint_restores_keyboard_interrupt(self):
        self.addCleanup(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        self.loop.add_signal_handler(signal.SIGINT, print)
        self.loop.remove_signal_handler(signal.SIGINT)
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_close_removes_the_handlers(self):
        self.loop.add_signal_handler(signal.SIGUSR1, print)
        self.loop.close()
        self.assertIs(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)

    def test_exception_in_handler_reaches_the_exception_handler(self):
        def failing():
            raise ValueError("in signal handler")
        self.loop.add_signal_handler(signal.SIGUSR1, failing)
        self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        self.run_coro(wait_until(lambda: self.loop_errors))
        self.assertIsInstance(self.loop_errors.pop()["exception"], ValueError)
        self.loop.remove_signal_handler(signal.SIGUSR1)

    def test_invalid_signal_numbers_are_value_errors(self):
        for sig in (0, -1, 1000):
            with self.subTest(sig=sig):
                with self.assertRaises(ValueError):
                    self.loop.add_signal_handler(sig, print)
                with self.assertRaises(ValueError):
                    self.loop.remove_signal_handler(sig)

    def test_non_integer_signal_is_a_type_error(self):
        with self.assertRaises(TypeError):
            self.loop.add_signal_handler("SIGUSR1", print)

    def test_uncatchable_signals_are_refused(self):
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            with self.subTest(sig=sig):
                with self.assertRaisesRegex(RuntimeError, "cannot be caught"):
                    self.loop.add_signal_handler(sig, print)

    def test_coroutine_function_is_refused(self):
        async def handler():
            pass
        with self.assertRaises(TypeError):
            self.loop.add_signal_handler(signal.SIGUSR1, handler)

    def test_closed_loop_refuses(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.add_signal_handler(signal.SIGUSR1, print)

    def test_only_the_main_thread_may_add_handlers(self):
        errors = []

        def from_thread():
            try:
                self.loop.add_signal_handler(signal.SIGUSR1, print)
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=from_thread)
        thread.start()
        thread.join()
        self.assertEqual(len(errors), 1)
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))
