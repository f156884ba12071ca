"""pytest-asyncio (Debian's python3-pytest-asyncio 0.20, with python3-pytest)
running async tests on the loop under test: pytest runs the files of
realworld_pytest_asyncio/ in a subprocess, once with the event_loop fixture
overridden to return the loop, once with the loop's policy set in
conftest.py; the test reads pytest's JUnit XML report. Those tests check
the loop they run on themselves, and one fails on purpose, so the report
must show exactly that failure. The test script runs this module with
Debian's python3:

    PYTHONPATH=python /usr/bin/python3 tests/python/run.py realworld_pytest_suite
"""
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

from .loops import loop_tests
from .realworld_services import HERE, PACKAGE_DIR

LOOPS = ("asyncio", "tapio")
TESTS_DIR = os.path.join(HERE, "realworld_pytest_asyncio")
EXPECTED_PASSED = {"test_runs_on_the_loop_under_test", "test_async_fixture_and_streams",
                   "test_timeouts_and_tasks"}
EXPECTED_FAILED = {"test_reports_a_failure"}


@loop_tests(LOOPS)
class PytestAsyncioTests:
    fresh_loop = False  # the loops are pytest-asyncio's, in the subprocess

    def run_pytest(self, loop_from):
        """{test name: outcome} of pytest's run, and its output."""
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        tests = shutil.copytree(TESTS_DIR, os.path.join(directory, "tests"))
        report = os.path.join(directory, "report.xml")
        # Only pytest-asyncio, whatever other plugins are installed.
        env = dict(os.environ, PYTHONPATH=PACKAGE_DIR, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
                   TAPIO_TEST_LOOP=self.loop_name, TAPIO_TEST_LOOP_FROM=loop_from)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "pytest_asyncio.plugin",
             "-p", "no:cacheprovider", "-o", "asyncio_mode=strict", "--rootdir", tests,
             "--junitxml", report, tests],
            cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60)
        return self.outcomes(report, result.stdout), result

    def outcomes(self, report, output):
        self.assertTrue(os.path.exists(report), "pytest wrote no report:\n" + output)
        outcomes = {}
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name")] = kinds[0] if kinds else "passed"
        return outcomes

    def check_run(self, loop_from):
        outcomes, result = self.run_pytest(loop_from)
        expected = {name: "passed" for name in EXPECTED_PASSED}
        expected.update({name: "failure" for name in EXPECTED_FAILED})
        self.assertEqual(outcomes, expected, result.stdout)
        self.assertEqual(result.returncode, 1, result.stdout)  # pytest's "tests failed"
        self.assertIn("failing on purpose", result.stdout)

    def test_event_loop_fixture_returning_the_loop(self):
        self.check_run("fixture")

    def test_event_loop_policy(self):
        self.check_run("policy")
