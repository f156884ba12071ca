"""`pip install .` for the running interpreter, offline: the wheel builds with
the project's own backend (which drives the CMake build), installs, imports
and serves a connection; its metadata names the supported Pythons and the
version include/tapio.h defines. The sdist the backend makes builds and
installs the same way, so it carries everything CMake needs."""

import email.parser
import glob
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The installed copy serves one echo round trip over TCP on a tapio loop:
# the loop, the server, the connection and the stream transport are all
# libtapio's.
ECHO = """\
import asyncio, sys, tapio

async def main():
    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return type(asyncio.get_running_loop()).__module__, line

print(tapio.__file__)
print(tapio.__version__)
print(*tapio.run(main()))
"""


def header_version():
    """MAJOR.MINOR.PATCH as include/tapio.h defines them."""
    with open(os.path.join(REPO, "include", "tapio.h")) as f:
        header = f.read()
    return ".".join(re.search(rf"^#define TAPIO_VERSION_{part} (\d+)$", header, re.M).group(1)
                    for part in ("MAJOR", "MINOR", "PATCH"))


def pip_install(source, target, env):
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--quiet",
         "--disable-pip-version-check", "--root-user-action=ignore",
         "--target", target, source],
        cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=600)


class InstalledPackage:
    """Checks of one installed copy; the subclass says how it got there."""

    @classmethod
    def install_from(cls, source):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.target = tempfile.TemporaryDirectory()
        # Outside the repository, with no PYTHONPATH: only the installed copy counts.
        cls.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cls.install = cls.install_from(cls.target.name)

    @classmethod
    def tearDownClass(cls):
        cls.target.cleanup()

    def setUp(self):
        self.assertEqual(self.install.returncode, 0, self.install.stderr)

    def test_installed_package_serves_a_connection(self):
        result = subprocess.run([sys.executable, "-c", ECHO], cwd=tempfile.gettempdir(),
                                env=dict(self.env, PYTHONPATH=self.target.name),
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        path, version, loop_module, line = result.stdout.split()
        self.assertTrue(path.startswith(self.target.name), path)
        self.assertEqual(version, header_version())
        self.assertEqual(loop_module, "tapio._loop")
        self.assertEqual(line, "b'ping\\n'")

    def test_metadata_names_the_supported_pythons_and_the_version(self):
        [metadata] = glob.glob(os.path.join(self.target.name, "tapio-*.dist-info", "METADATA"))
        self.assertEqual(os.path.basename(os.path.dirname(metadata)),
                         f"tapio-{header_version()}.dist-info")
        with open(metadata) as f:
            fields = email.parser.Parser().parse(f)
        self.assertEqual(fields["Version"], header_version())
        self.assertEqual(fields["Requires-Python"], ">=3.11")
        running = "Programming Language :: Python :: %d.%d" % sys.version_info[:2]
        self.assertIn(running, fields.get_all("Classifier"))

    def test_metadata_is_pyproject_tomls(self):
        with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f)["project"]
        [metadata] = glob.glob(os.path.join(self.target.name, "tapio-*.dist-info", "METADATA"))
        with open(metadata, encoding="utf-8") as f:
            fields = email.parser.Parser().parse(f)
        self.assertEqual(fields["Name"], project["name"])
        self.assertEqual(fields["Summary"], project["description"])
        self.assertEqual(fields["Requires-Python"], project["requires-python"])
        self.assertEqual(fields.get_all("Classifier"), project["classifiers"])
        self.assertEqual(fields["Description-Content-Type"], "text/markdown")
        with open(os.path.join(REPO, project["readme"]), encoding="utf-8") as f:
            self.assertEqual(fields.get_payload(), f.read())

    def test_the_package_is_its_python_files_and_the_extension(self):
        source = os.path.join(REPO, "python", "tapio")
        expected = {os.path.basename(p) for pattern in ("*.py", "*.pyi", "py.typed")
                    for p in glob.glob(os.path.join(source, pattern))}
        expected.add("_tapio" + sysconfig.get_config_var("EXT_SUFFIX"))
        installed = set(os.listdir(os.path.join(self.target.name, "tapio"))) - {"__pycache__"}
        self.assertEqual(installed, expected)


class PipInstallTests(InstalledPackage, unittest.TestCase):
    """pip install --target DIR <the source tree>."""

    @classmethod
    def install_from(cls, target):
        return pip_install(REPO, target, cls.env)

    @classmethod
    def setUpClass(cls):
        cls.extensions_before = cls.source_tree_extensions()
        super().setUpClass()

    @staticmethod
    def source_tree_extensions():
        return {path: os.stat(path).st_mtime_ns
                for path in glob.glob(os.path.join(REPO, "python", "tapio", "_tapio*.so"))}

    def test_the_source_tree_extensions_are_left_alone(self):
        # The build runs in a scratch directory, not in python/tapio/, where
        # `make build` for another interpreter with the same ABI tag may
        # have put its own extension.
        self.assertEqual(self.source_tree_extensions(), self.extensions_before)


class SdistInstallTests(InstalledPackage, unittest.TestCase):
    """The backend's sdist, unpacked and installed: it holds what CMake needs."""

    @classmethod
    def install_from(cls, target):
        cls.sdist_dir = tempfile.TemporaryDirectory()
        make = subprocess.run(
            [sys.executable, "-c",
             "import sys, tapio_build; print(tapio_build.build_sdist(sys.argv[1]))",
             cls.sdist_dir.name],
            cwd=REPO, env=dict(cls.env, PYTHONPATH=os.path.join(REPO, "tools")),
            capture_output=True, text=True, timeout=120)
        if make.returncode != 0:
            return make
        sdist = os.path.join(cls.sdist_dir.name, make.stdout.strip())
        with tarfile.open(sdist) as tar:
            cls.sdist_names = tar.getnames()
        return pip_install(sdist, target, cls.env)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.sdist_dir.cleanup()

    def test_sdist_is_named_for_the_version_and_has_pkg_info(self):
        base = f"tapio-{header_version()}"
        self.assertIn(f"{base}/PKG-INFO", self.sdist_names)
        self.assertIn(f"{base}/CMakeLists.txt", self.sdist_names)
        self.assertTrue(all(name.startswith(base + "/") for name in self.sdist_names))


if __name__ == "__main__":
    unittest.main()
