"""PEP 517 build backend for the tapio Python package, with no build
requirements: it compiles the extension (libtapio's sources and the binding)
with the C compiler the interpreter was built with and writes the wheel
itself, so that `pip install .` works offline on every supported CPython,
with or without setuptools.

    pip install .                 # or: pip install --target DIR .
"""
import base64
import concurrent.futures
import glob
import hashlib
import io
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "tapio"
SUMMARY = "asyncio's transports and protocols in C: a drop-in asyncio event loop"
REQUIRES_PYTHON = ">=3.11"
CLASSIFIERS = [
    "Development Status :: 3 - Alpha",
    "Framework :: AsyncIO",
    "Operating System :: POSIX :: Linux",
    "Programming Language :: C",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3 :: Only",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Programming Language :: Python :: 3.14",
    "Programming Language :: Python :: Implementation :: CPython",
]
CFLAGS = ["-O2", "-fPIC", "-std=gnu11", "-fvisibility=hidden", "-D_GNU_SOURCE"]
LIBS = ["-lssl", "-lcrypto", "-lm", "-pthread"]


def version():
    """The package version, read from its one definition (CMakeLists.txt)."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(tapio VERSION (\S+)", f.read()).group(1)


def _sources():
    return sorted(glob.glob(os.path.join(ROOT, "src", "*.c")) +
                  glob.glob(os.path.join(ROOT, "src", "backend", "*.c")) +
                  glob.glob(os.path.join(ROOT, "python", "tapio", "_tapio", "*.c")))


def _compiler():
    return shlex.split(sysconfig.get_config_var("CC") or "cc")


def _compile(source, objects_dir):
    obj = os.path.join(objects_dir, os.path.relpath(source, ROOT).replace(os.sep, "_") + ".o")
    includes = ["-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"),
                "-I" + sysconfig.get_paths()["include"]]
    subprocess.check_call(_compiler() + CFLAGS + includes + ["-c", source, "-o", obj])
    return obj


def build_extension(into):
    """Compile _tapio into `into`/tapio/ and return its path."""
    with tempfile.TemporaryDirectory() as objects_dir:
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            objects = list(pool.map(lambda s: _compile(s, objects_dir), _sources()))
        target = os.path.join(into, NAME, "_tapio" + sysconfig.get_config_var("EXT_SUFFIX"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        subprocess.check_call(_compiler() + ["-shared", "-o", target] + objects + LIBS)
    return target


def _package_files():
    """{path in the wheel: bytes} of the pure-Python part of the package."""
    package = os.path.join(ROOT, "python", NAME)
    files = {}
    for pattern in ("*.py", "*.pyi", "py.typed"):
        for path in glob.glob(os.path.join(package, pattern)):
            with open(path, "rb") as f:
                files[f"{NAME}/{os.path.basename(path)}"] = f.read()
    return files


def metadata():
    lines = ["Metadata-Version: 2.1", f"Name: {NAME}", f"Version: {version()}",
             f"Summary: {SUMMARY}", f"Requires-Python: {REQUIRES_PYTHON}"]
    lines += [f"Classifier: {c}" for c in CLASSIFIERS]
    return "\n".join(lines) + "\n"


def _tag():
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{python}-{python}-{platform}"


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _dist_info():
    return f"{NAME}-{version()}.dist-info"


def _write_wheel(files, wheel_directory):
    tag = _tag()
    dist_info = _dist_info()
    files[f"{dist_info}/METADATA"] = metadata().encode()
    files[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: tapio_build\n"
                                   f"Root-Is-Purelib: false\nTag: {tag}\n").encode()
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{NAME}-{version()}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name


# ---- the PEP 517 hooks ------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    path = os.path.join(metadata_directory, _dist_info())
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "METADATA"), "w") as f:
        f.write(metadata())
    return _dist_info()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = _package_files()
    with tempfile.TemporaryDirectory() as lib:
        extension = build_extension(lib)
        with open(extension, "rb") as f:
            files[f"{NAME}/{os.path.basename(extension)}"] = f.read()
    return _write_wheel(files, wheel_directory)


def build_sdist(sdist_directory, config_settings=None):
    """The files git tracks, under tapio-VERSION/."""
    tracked = subprocess.check_output(["git", "ls-files", "-z"], cwd=ROOT).decode()
    base = f"{NAME}-{version()}"
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        for path in filter(None, tracked.split("\0")):
            tar.add(os.path.join(ROOT, path), arcname=f"{base}/{path}")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = metadata().encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return name
