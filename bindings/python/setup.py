"""Bundles liblwolf_auth in the package, so that the installed package loads the library
with no environment variable.

The metadata is in pyproject.toml; this file only adds the library. It is either
- built with cargo (https://rustup.rs) from the Rust sources: the source tree this directory
  sits in (`pip install ./bindings/python`), or the `rust/` folder of the sdist; or
- taken prebuilt from LWOLF_AUTH_PREBUILT (a path to the library file): how `cargo xtask
  dist` makes the platform wheels from its one build of the library.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
# The sdist carries the Rust workspace in rust/; the source tree is two levels up.
CRATE = HERE / "rust" if (HERE / "rust" / "Cargo.toml").is_file() else HERE.parent.parent


def library_name():
    if sys.platform == "win32":
        return "lwolf_auth.dll"
    if sys.platform == "darwin":
        return "liblwolf_auth.dylib"
    return "liblwolf_auth.so"


class BuildWithLibrary(build_py):
    """build_py, then the library copied in: LWOLF_AUTH_PREBUILT, or what
    `cargo build --release -p lwolf-auth-ffi` builds."""

    def run(self):
        super().run()
        prebuilt = os.environ.get("LWOLF_AUTH_PREBUILT")
        if prebuilt:
            dest = Path(self.build_lib) / "lwolf_auth" / Path(prebuilt).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prebuilt, dest)
            return
        if not (CRATE / "Cargo.toml").is_file():
            raise SystemExit("lwolf-auth: build from the source tree (Cargo.toml not found at %s)" % CRATE)
        target = Path(os.environ.get("CARGO_TARGET_DIR", CRATE / "target"))
        cargo = os.environ.get("CARGO", "cargo")
        cmd = [cargo, "build", "--release", "-p", "lwolf-auth-ffi", "--manifest-path", str(CRATE / "Cargo.toml")]
        print("lwolf-auth: " + " ".join(cmd), flush=True)
        subprocess.check_call(cmd, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
        built = target / "release" / library_name()
        dest = Path(self.build_lib) / "lwolf_auth" / library_name()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)


class BinaryDistribution(Distribution):
    """A wheel for this platform: it holds a compiled library."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
