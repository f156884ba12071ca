"""PEP 517 build backend for tapio: setuptools' own, plus a wheel writer for
interpreters that have setuptools but not the `wheel` package, so that
`pip install --no-build-isolation .` works offline on either."""
import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

from setuptools import build_meta as _setuptools

get_requires_for_build_sdist = _setuptools.get_requires_for_build_sdist
build_sdist = _setuptools.build_sdist

NAME, VERSION = "tapio", "0.1.0"


def get_requires_for_build_wheel(config_settings=None):
    return []


def _has_wheel():
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def _tag():
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{python}-{python}-{platform}"


def _build_lib(into):
    """Compile with setuptools' build command into a scratch directory."""
    subprocess.check_call([sys.executable, "setup.py", "-q", "build", "--build-lib", into,
                           "--build-temp", os.path.join(into, ".temp")])


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(lib, wheel_directory):
    tag = _tag()
    dist_info = f"{NAME}-{VERSION}.dist-info"
    path = os.path.join(wheel_directory, f"{NAME}-{VERSION}-{tag}.whl")
    files = {}
    for root, _, names in os.walk(os.path.join(lib, NAME)):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, lib)] = f.read()
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
        f"Summary: asyncio's transports and protocols in C: a drop-in asyncio event loop\n"
        f"Requires-Python: >=3.11\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tapio_build\nRoot-Is-Purelib: false\n"
        f"Tag: {tag}\n").encode()
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return os.path.basename(path)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if _has_wheel():
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    with tempfile.TemporaryDirectory() as lib:
        _build_lib(lib)
        return _write_wheel(lib, wheel_directory)
