"""Build and install the tapio Python package: `pip install .`
(offline: `pip install --no-build-isolation .`). The extension compiles
libtapio's sources into itself, so nothing else needs installing."""
import glob

from setuptools import Extension, setup

libtapio = sorted(glob.glob("src/*.c") + glob.glob("src/backend/*.c"))
binding = sorted(glob.glob("python/tapio/_tapio/*.c"))

setup(
    name="tapio",
    version="0.1.0",
    description="asyncio's transports and protocols in C: a drop-in asyncio event loop",
    package_dir={"": "python"},
    packages=["tapio"],
    package_data={"tapio": ["py.typed", "*.pyi"]},
    ext_modules=[
        Extension(
            "tapio._tapio",
            sources=binding + libtapio,
            include_dirs=["include", "src"],
            define_macros=[("_GNU_SOURCE", "1")],
            extra_compile_args=["-std=gnu11", "-fvisibility=hidden"],
            libraries=["ssl", "crypto", "m"],
        )
    ],
    python_requires=">=3.11",
)
