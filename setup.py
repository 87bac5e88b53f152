"""The compiled scoring kernel as an optional extension of the package.

Everything else about the package is in pyproject.toml; this file only adds
``sasrec.engines._scoring_kernel`` (``sasrec/engines/kernel/scoring_kernel.cc``,
the ``compiled`` engine's library). ``pip install .``, ``pip install -e .`` and
``pip wheel .`` build it when a C++ compiler exists; ``make kernel``
(``sasrec/engines/kernel/build.sh``) runs ``setup.py build_ext --inplace``,
this same definition. Without a compiler, without pybind11 or when the compile
fails, the build prints a notice and the package installs without it: serving
then uses the numpy engine (``sasrec.engines.registry.resolve_engine``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
KERNEL_SOURCE = "sasrec/engines/kernel/scoring_kernel.cc"

# Plain -O3 for the x86-64 baseline (never -march=native: the library may run
# on another machine, e.g. the server image's); the hot loops carry
# target_clones, so AVX2+FMA and AVX-512 copies are also built and picked at
# load time (-Wno-psabi: those copies pass 64-byte vectors only between
# functions of one instruction set). One compile-and-link command with exactly
# these flags, not setuptools' compile/link pair, which would add Python's own
# CFLAGS (-g, -fwrapv, ...).
KERNEL_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-Wno-psabi"]


class KernelNotBuiltWarning(UserWarning):
    """The package installs without the compiled scoring kernel, and says why.

    A warning, not a print: pip hides a build's output unless ``-v`` but shows
    the backend's warnings, so ``pip install -q .`` without g++ still tells.

    Example:
        >>> warnings.warn("sasrec kernel: g++ not found", KernelNotBuiltWarning)  # doctest: +SKIP
    """


def notice(message: str) -> None:
    """A progress line (built, up to date) on stderr; pip shows it with ``-v``."""
    print(f"sasrec kernel: {message}", file=sys.stderr, flush=True)


def not_built(reason: str) -> None:
    """The kernel is skipped: a warning naming ``reason`` and the fallback."""
    message = f"sasrec kernel: {reason}: the compiled scoring kernel is NOT built; "
    warnings.warn(message + "serving uses the numpy engine", KernelNotBuiltWarning, stacklevel=2)


class OptionalBuildExt(build_ext):
    """``build_ext`` for the kernel that never fails the install.

    Example:
        python setup.py build_ext --inplace   # sasrec/engines/_scoring_kernel*.so
        CXX=no-such-compiler pip wheel .      # a notice; the wheel has no kernel
    """

    def run(self) -> None:
        if self.inplace:
            # Straight into the package folder (distutils' run), not setuptools'
            # build/ then copy: "up to date" is then the in-place library's own
            # age, and a checkout with a built library needs no compiler.
            super(build_ext, self).run()
        else:
            super().run()

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name))
        sources = [HERE / source for source in ext.sources]
        if target.exists() and not self.force:
            newest = max(path.stat().st_mtime for path in [*sources, Path(__file__)])
            if newest <= target.stat().st_mtime:
                notice(f"{target} is up to date")
                return
        compiler = shlex.split(os.environ.get("CXX") or "g++")
        if shutil.which(compiler[0]) is None:
            not_built(f"{compiler[0]} not found (install g++ and rebuild)")
            return
        try:
            import pybind11
        except ImportError:
            not_built("pybind11 is missing")
            return
        includes = {pybind11.get_include(), sysconfig.get_path("include")}
        includes.add(sysconfig.get_path("platinclude"))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".tmp")
        command = [
            *compiler,
            *KERNEL_FLAGS,
            *(f"-I{folder}" for folder in sorted(includes)),
            "-o",
            str(partial),
            *map(str, sources),
        ]
        print(shlex.join(command), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            partial.unlink(missing_ok=True)
            not_built("compiling it FAILED (the compiler's output: above, or with pip -v)")
            return
        os.replace(partial, target)  # atomic: a half-written library is never imported
        notice(f"built {target}")


setup(
    ext_modules=[
        Extension("sasrec.engines._scoring_kernel", [KERNEL_SOURCE], language="c++", optional=True)
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
