"""PEP 517 build backend for the tapio Python package. It has no Python
build requirements, so `pip install .` works offline on every supported
CPython, with or without setuptools:

    pip install .                 # or: pip install --target DIR .

The extension is built by CMake, the project's one build: the backend
configures a scratch build directory for the running interpreter, builds the
`_tapio` target there and packs the result with the package's Python files
into the wheel. What to compile, and how, is known only to CMakeLists.txt;
the version only to include/tapio.h. Needs cmake (and ninja, if present,
is used), a C compiler and OpenSSL's headers: scripts/install-deps.sh.
"""
import base64
import glob
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
    """pyproject.toml's [project] table: the package's metadata."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


PROJECT = _project()
NAME = PROJECT["name"]


def version():
    """The package version, read from its one definition (include/tapio.h)."""
    with open(os.path.join(ROOT, "include", "tapio.h")) as f:
        header = f.read()
    parts = [re.search(rf"^#define TAPIO_VERSION_{part} (\d+)$", header, re.M)
             for part in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError("include/tapio.h defines no TAPIO_VERSION_MAJOR/MINOR/PATCH")
    return ".".join(part.group(1) for part in parts)


def _cmake():
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("building tapio needs cmake (Debian: apt-get install cmake "
                           "ninja-build, or run scripts/install-deps.sh)")
    return cmake


def build_extension(into):
    """Build _tapio for the running interpreter with CMake into `into` and
    return the extension's path."""
    cmake = _cmake()
    with tempfile.TemporaryDirectory(prefix="tapio-build-") as build_dir:
        configure = [cmake, "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DTAPIO_BUILD_PYTHON=ON", "-DTAPIO_BUILD_EXAMPLES=OFF",
                     "-DTAPIO_BUILD_BENCH=OFF", "-DBUILD_TESTING=OFF",
                     f"-DPython3_EXECUTABLE={sys.executable}",
                     f"-DTAPIO_PYTHON_OUTPUT_DIR={into}"]
        if "CMAKE_GENERATOR" not in os.environ and shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        subprocess.run(configure, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.run([cmake, "--build", build_dir, "--target", "_tapio",
                        "--parallel", jobs], check=True)
    built = glob.glob(os.path.join(into, "_tapio*" + sysconfig.get_config_var("EXT_SUFFIX")))
    if len(built) != 1:
        raise RuntimeError(f"the CMake build left {built!r} in {into}, not one _tapio extension")
    return built[0]


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
    """Core metadata of [project]; the README is the long description."""
    lines = ["Metadata-Version: 2.1", f"Name: {NAME}", f"Version: {version()}",
             f"Summary: {PROJECT['description']}",
             f"Requires-Python: {PROJECT['requires-python']}"]
    lines += [f"Classifier: {c}" for c in PROJECT["classifiers"]]
    lines.append("Description-Content-Type: text/markdown")
    with open(os.path.join(ROOT, PROJECT["readme"]), encoding="utf-8") as f:
        readme = f.read()
    return "\n".join(lines) + "\n\n" + readme


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
