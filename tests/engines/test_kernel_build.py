"""The kernel's build script without a compiler: a notice, exit 0, nothing built.

``make setup`` and ``make test`` must work for a user without g++ (the engine
then falls back to NumPy), and an up-to-date library needs no compiler.
These run the real script (which runs setup.py's ``build_ext --inplace``) on a
copy of the build's files, with ``CXX`` naming a compiler that does not exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "sasrec" / "engines" / "kernel"


def copy_kernel(root: Path) -> Path:
    """The kernel folder and the build definition copied to ``root``; returns the script."""
    folder = root / "sasrec" / "engines" / "kernel"
    shutil.copytree(KERNEL, folder)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    return folder / "build.sh"


def run_build(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), sys.executable],
        capture_output=True,
        text=True,
        env={**os.environ, "CXX": "no-such-compiler-for-sasrec"},
        timeout=60,
    )


def test_without_a_compiler_the_build_says_so_and_succeeds(tmp_path: Path) -> None:
    done = run_build(copy_kernel(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "no-such-compiler-for-sasrec not found" in done.stderr
    assert "numpy engine" in done.stderr
    assert not list((tmp_path / "sasrec" / "engines").glob("_scoring_kernel*"))


def test_an_up_to_date_library_needs_no_compiler(tmp_path: Path) -> None:
    script = copy_kernel(tmp_path)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    library = tmp_path / "sasrec" / "engines" / f"_scoring_kernel{suffix}"
    library.write_bytes(b"built earlier")
    sources = [*script.parent.iterdir(), tmp_path / "setup.py"]
    newest = max(p.stat().st_mtime for p in sources)
    os.utime(library, (newest + 10, newest + 10))  # newer than every source
    done = run_build(script)
    assert done.returncode == 0 and "is up to date" in done.stderr, done.stderr
    assert library.read_bytes() == b"built earlier"


def test_the_script_installs_what_pyproject_builds_with() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    script = (KERNEL / "build.sh").read_text()
    (line,) = [line for line in script.splitlines() if line.startswith("REQUIRES=(")]
    assert re.findall(r'"([^"]+)"', line) == requires
