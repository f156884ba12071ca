"""`pip install .` for the running interpreter, offline: the wheel builds with
the project's own backend, installs, imports and runs a loop, and its
metadata names the supported Pythons."""

import email.parser
import glob
import os
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PipInstallTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.target = tempfile.TemporaryDirectory()
        # Outside the repository, with no PYTHONPATH: only the installed copy counts.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cls.env = env
        cls.install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--quiet",
             "--disable-pip-version-check", "--root-user-action=ignore",
             "--target", cls.target.name, REPO],
            cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=600)

    @classmethod
    def tearDownClass(cls):
        cls.target.cleanup()

    def setUp(self):
        self.assertEqual(self.install.returncode, 0, self.install.stderr)

    def test_installed_package_runs_a_loop(self):
        code = ("import asyncio, tapio\n"
                "print(tapio.__file__)\n"
                "print(tapio.run(asyncio.sleep(0, 'ran')))\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=tempfile.gettempdir(),
                                env=dict(self.env, PYTHONPATH=self.target.name),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        path, output = result.stdout.split()
        self.assertTrue(path.startswith(self.target.name), path)
        self.assertEqual(output, "ran")

    def test_metadata_names_the_supported_pythons(self):
        [metadata] = glob.glob(os.path.join(self.target.name, "tapio-*.dist-info", "METADATA"))
        with open(metadata) as f:
            fields = email.parser.Parser().parse(f)
        self.assertEqual(fields["Requires-Python"], ">=3.11")
        running = "Programming Language :: Python :: %d.%d" % sys.version_info[:2]
        self.assertIn(running, fields.get_all("Classifier"))

    def test_the_extension_is_built_for_this_interpreter(self):
        import sysconfig
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        self.assertTrue(os.path.exists(os.path.join(self.target.name, "tapio",
                                                    "_tapio" + suffix)))


if __name__ == "__main__":
    unittest.main()
