"""Run the Python test suite (stdlib only).

    PYTHONPATH=python python3 tests/python/run.py [-v] [--loop NAME] [-k PATTERN] [MODULE ...]

MODULE is a test module name such as test_tcp (default: all of them).
--loop keeps only the tests of one event loop (asyncio or tapio); -k is
unittest's test name pattern. Prints the counts per loop, then ends with the
line "N passed, N failed" (errors count as failed; ", N skipped" follows when
tests were skipped). Exits with status 1 if any test failed.
"""

import argparse
import collections
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class OutcomeRecordingResult(unittest.TextTestResult):
    """Keeps one outcome per test: failed (any failure, error or failed
    subtest), skipped, or passed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}  # test id -> (loop name, outcome)

    def record(self, test, outcome):
        key = test.id()
        if self.outcomes.get(key, (None, None))[1] != "failed":
            self.outcomes[key] = (getattr(test, "loop_name", None) or "other", outcome)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        self.record(test, "failed")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.record(test, "failed")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.record(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.record(test, "failed")


def summary(counts):
    line = f"{counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        line += f", {counts['skipped']} skipped"
    return line


def only_loop(suite, loop_name):
    """The tests of suite whose class runs on loop_name (or failed to load)."""
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            kept.addTest(only_loop(test, loop_name))
        elif getattr(test, "loop_name", loop_name) == loop_name:
            kept.addTest(test)
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--loop", choices=("asyncio", "tapio"))
    parser.add_argument("-k", dest="patterns", action="append")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, REPO)  # the suite is the package tests.python
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in args.patterns]
    if args.modules:
        suite = loader.loadTestsFromNames([f"tests.python.{name.removesuffix('.py')}"
                                           for name in args.modules])
    else:
        suite = loader.discover(HERE, top_level_dir=REPO)
    if args.loop:
        suite = only_loop(suite, args.loop)

    runner = unittest.TextTestRunner(verbosity=2 if args.verbose else 1,
                                     resultclass=OutcomeRecordingResult)
    result = runner.run(suite)

    per_loop = collections.defaultdict(collections.Counter)
    for loop_name, outcome in result.outcomes.values():
        per_loop[loop_name][outcome] += 1
    total = sum(per_loop.values(), collections.Counter())
    for loop_name in sorted(per_loop):
        print(f"{loop_name}: {summary(per_loop[loop_name])}")
    print(summary(total))
    return 1 if total["failed"] or not result.testsRun else 0


if __name__ == "__main__":
    sys.exit(main())
