#!/usr/bin/env python3
"""Run CPython's own Lib/test/test_asyncio mixins against one event loop.

    python3 tests/python/cpython_asyncio.py --loop tapio|asyncio [-k PATTERN]
                                            [--list-skips] [-v]

CPython parametrises these tests by loop: a mixin holds the tests and a small
subclass per loop says how to make one (create_event_loop, new_loop), or the
test calls asyncio.new_event_loop() itself. This script builds one such
subclass per mixin whose loop comes from the chosen factory, and installs an
event loop policy that returns that loop for the tests that ask asyncio.

--loop asyncio runs stock asyncio's selector loop and must pass everything:
that checks the harness. --loop tapio runs tapio.new_event_loop (imported from
the repository's python/ directory) and skips the tests listed, with their
reasons, in cpython_skips.py. The last line printed is
"N passed, N failed, N skipped"; the exit status is non-zero on failures.
"""

import argparse
import asyncio
import faulthandler
import fnmatch
import importlib
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# The classes to run, as (module, our class name, CPython bases). Names are
# attributes of test.test_asyncio.<module>, or of its utils or unittest.
CLASSES = [
    ('test_events', 'EventLoopTests',
     ['EventLoopTestsMixin', 'SubprocessTestsMixin', 'utils.TestCase']),
    ('test_events', 'TestServer', ['TestServer']),
    ('test_sock_lowlevel', 'SockTests',
     ['BaseSockTestsMixin', 'utils.TestCase']),
    ('test_sendfile', 'SendfileTests',
     ['SendfileMixin', 'SockSendfileMixin', 'utils.TestCase']),
    # SelectorStartServerTests adds test_start_unix_server_1 to the mixin.
    ('test_server', 'StartServerTests', ['SelectorStartServerTests']),
    ('test_buffered_proto', 'BufferedProtocolTests',
     ['BaseTestBufferedProtocol', 'unittest.TestCase']),
    ('test_streams', 'StreamTests', ['StreamTests']),
    # SubprocessMixin expects its setUp to have made self.loop.
    ('test_subprocess', 'SubprocessTests',
     ['local.OwnLoop', 'SubprocessMixin', 'utils.TestCase']),
    # loop.start_tls and TLS connections against threaded ssl-socket peers;
    # FunctionalTestCaseMixin's setUp makes the loop with new_loop().
    ('test_sslproto', 'StartTLSTests', ['BaseStartTLS', 'unittest.TestCase']),
    # TestSSL's setUp makes its loop with asyncio.new_event_loop().
    ('test_ssl', 'SSLTests', ['TestSSL']),
]


class OwnLoop:
    """Gives mixins that use self.loop a loop of the policy's kind."""

    def setUp(self):
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.set_event_loop(self.loop)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--loop', choices=['tapio', 'asyncio'], default='tapio')
    p.add_argument('-k', dest='patterns', action='append', default=[],
                   metavar='PATTERN',
                   help='run only tests whose id matches (as unittest -k)')
    p.add_argument('--list-skips', action='store_true',
                   help="print tapio's skip list with reasons and exit")
    p.add_argument('--no-skips', action='store_true',
                   help='run the skip-listed tests too (to prune the list)')
    p.add_argument('--timeout', type=float, default=120.0,
                   help='seconds one test may take before the run is '
                        'aborted with a traceback (default 120)')
    p.add_argument('-v', '--verbose', action='store_true')
    return p.parse_args()


def import_cpython_tests():
    """Import test.test_asyncio.utils, or exit saying why it is missing."""
    try:
        return importlib.import_module('test.test_asyncio.utils')
    except ImportError as exc:
        sys.exit(f'error: {sys.executable} has no test.test_asyncio '
                 f'(CPython\'s test package; {exc}).\nRun this script with '
                 f'a python3 that ships Lib/test, e.g. a pyenv build.')


def loop_factory(name):
    """The function that makes a new loop of the chosen kind."""
    if name == 'asyncio':
        return asyncio.SelectorEventLoop
    sys.path.insert(0, os.path.join(REPO, 'python'))
    try:
        import tapio
        return tapio.new_event_loop
    except (ImportError, AttributeError) as exc:    # unbuilt: no extension
        sys.exit(f'error: no tapio.new_event_loop in {REPO}/python ({exc}); '
                 'build it first as the README says.')


def policy_for(factory):
    """A default policy whose new_event_loop() makes the chosen loop."""
    class ChosenLoopPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            return factory()
    return ChosenLoopPolicy()


def chosen_loop_mixin(factory, test_utils):
    """The first base of every generated class: it supplies the loop."""
    class ChosenLoop:
        def create_event_loop(self):    # EventLoopTestsMixin and alike
            return factory()

        def new_loop(self):             # FunctionalTestCaseMixin
            return factory()

        def setUp(self):
            # Before the test's own setUp, which may call new_event_loop().
            asyncio.set_event_loop_policy(policy_for(factory))
            super().setUp()

        @staticmethod
        def close_loop(loop):
            # utils.TestCase.close_loop reads the stock loop's private
            # _default_executor; other loops get the same via public API.
            if hasattr(loop, '_default_executor'):
                return test_utils.TestCase.close_loop(loop)
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    return ChosenLoop


def resolve(module, test_utils, name):
    owner, _, attr = name.rpartition('.')
    holder = {'': module, 'utils': test_utils, 'unittest': unittest,
              'local': sys.modules[__name__]}[owner]
    return getattr(holder, attr)


def build_classes(factory, test_utils):
    """Yield one TestCase class per CLASSES entry, named <module>.<class>."""
    chosen = chosen_loop_mixin(factory, test_utils)
    for modname, clsname, bases in CLASSES:
        try:
            module = importlib.import_module('test.test_asyncio.' + modname)
        except unittest.SkipTest as exc:    # e.g. no loopback TCP
            print(f'{modname}: skipped at import: {exc}')
            continue
        cls = type(clsname, (chosen,) + tuple(
            resolve(module, test_utils, b) for b in bases), {})
        # The id prefix: short, and not a module unittest would look up
        # (CPython's tearDownModule resets the event loop policy).
        cls.__module__ = modname
        yield cls


def apply_skips(cls, skips, used):
    """Replace each skip-listed test method of cls by a skipped one."""
    for name in unittest.TestLoader().getTestCaseNames(cls):
        test_id = f'{cls.__module__}.{cls.__qualname__}.{name}'
        for pattern, reason in skips.items():
            if fnmatch.fnmatchcase(test_id, pattern):
                used.add(pattern)
                setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
                break


class CountingResult(unittest.TextTestResult):
    """Counts outcomes per test id and aborts a test that hangs."""
    timeout = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started, self.failed_ids, self.skipped_ids = set(), set(), set()

    def startTest(self, test):
        # A C-level watchdog: fires even if the loop never returns to Python.
        faulthandler.dump_traceback_later(self.timeout, exit=True)
        self.started.add(test.id())
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()

    def addError(self, test, err):
        self.failed_ids.add(test.id())   # also setUpClass errors
        super().addError(test, err)

    def addFailure(self, test, err):
        self.failed_ids.add(test.id())
        super().addFailure(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.failed_ids.add(test.id())
        super().addSubTest(test, subtest, err)

    def addUnexpectedSuccess(self, test):
        self.failed_ids.add(test.id())
        super().addUnexpectedSuccess(test)

    def addSkip(self, test, reason):
        self.skipped_ids.add(test.id())
        super().addSkip(test, reason)

    def counts(self):
        skipped = self.skipped_ids - self.failed_ids
        passed = self.started - self.failed_ids - skipped
        return len(passed), len(self.failed_ids), len(skipped)


def k_patterns(patterns):
    # As unittest's -k: a pattern without a wildcard matches as a substring.
    return [p if '*' in p else f'*{p}*' for p in patterns] or None


def list_skips(skips):
    for pattern, reason in skips.items():
        print(f'{pattern}\n    {reason}')
    print(f'{len(skips)} entries')


def build_suite(factory, test_utils, skips, patterns):
    loader = unittest.TestLoader()
    loader.testNamePatterns = k_patterns(patterns)
    suite, used = unittest.TestSuite(), set()
    for cls in build_classes(factory, test_utils):
        apply_skips(cls, skips, used)
        suite.addTests(loader.loadTestsFromTestCase(cls))
    for pattern in sorted(set(skips) - used):   # CPython renamed a test?
        print(f'warning: skip pattern matches no test: {pattern}')
    return suite


def run_suite(suite, timeout, verbose):
    CountingResult.timeout = timeout
    runner = unittest.TextTestRunner(stream=sys.stdout,
                                     resultclass=CountingResult,
                                     verbosity=2 if verbose else 1)
    cwd = os.getcwd()
    # The tests write scratch files (sendfile data) into the cwd.
    with tempfile.TemporaryDirectory(prefix='tapio-cpython-') as tmp:
        os.chdir(tmp)
        try:
            return runner.run(suite)
        finally:
            os.chdir(cwd)
            asyncio.set_event_loop_policy(None)


def main(args):
    test_utils = import_cpython_tests()
    sys.path.insert(0, HERE)
    from cpython_skips import SKIPS
    if args.list_skips:
        list_skips(SKIPS)
        return 0
    factory = loop_factory(args.loop)
    skips = SKIPS if args.loop == 'tapio' and not args.no_skips else {}
    suite = build_suite(factory, test_utils, skips, args.patterns)
    result = run_suite(suite, args.timeout, args.verbose)
    passed, failed, skipped = result.counts()
    print(f'{passed} passed, {failed} failed, {skipped} skipped', flush=True)
    return 1 if failed or not result.testsRun else 0


if __name__ == '__main__':
    sys.exit(main(parse_args()))
