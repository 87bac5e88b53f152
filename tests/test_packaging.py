"""pyproject.toml lists every package, so a non-editable install has them all;
the wheel carries the compiled scoring kernel when a compiler exists and still
builds and installs (serving with numpy) when none does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project supports 3.10

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    folders = {name: ROOT / path for name, path in tool.get("package-dir", {}).items()}
    folders.setdefault("sasrec", ROOT / "sasrec")
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((name, *relative)))
    assert "sasrec.optimizers" in found and "sasrec.data" in found
    assert found - listed == set(), f"package folders missing from pyproject.toml: {found - listed}"


def test_every_package_path_spells_its_import_name():
    # A reader goes from `sasrec.serving.server` to serving/sasrec/serving/server.py
    # without a table: the folder of each package ends with its dotted name.
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name, path in tool["package-dir"].items():
        assert Path(path).parts[-len(name.split(".")) :] == tuple(name.split(".")), (name, path)
        assert (ROOT / path / "__init__.py").is_file(), path


# What a wheel is built from (the Dockerfile's build context, .dockerignore).
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "sasrec", "pipelines", "serving/sasrec")
KERNEL_PREFIX = "sasrec/engines/_scoring_kernel"


def build_and_install_wheel(
    tmp_path: Path, compiler: str, verbosity: str
) -> tuple[list[str], str, str]:
    """A wheel of a clean copy of the sources built with ``CXX=compiler`` (pip's
    ``verbosity``: ``-q`` or ``-v``), then installed (no dependencies) into a
    folder of its own; returns the wheel's names, pip's output and what
    ``resolve_engine("auto")`` picks there."""
    source = tmp_path / "src"
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.so.tmp")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    env = {**os.environ, "CXX": compiler}
    # No build isolation: this venv's setuptools and pybind11, and no index needed.
    wheel_args = ["wheel", verbosity, "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    built = subprocess.run(
        [*pip, *wheel_args, str(source)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = tmp_path.glob("sasrec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from sasrec.engines import registry; "
        "assert registry.__file__.startswith(sys.argv[1]), registry.__file__; "
        "print(registry.resolve_engine('auto'))"
    )
    picked = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return names, built.stdout + built.stderr, picked.stdout.strip()


def test_without_a_compiler_the_wheel_builds_installs_and_serves_with_numpy(tmp_path):
    # pip -q hides the build's output but not its warnings: the user still sees why.
    names, output, engine = build_and_install_wheel(tmp_path, "no-such-compiler-for-sasrec", "-q")
    assert "no-such-compiler-for-sasrec not found" in output and "NOT built" in output
    assert "numpy engine" in output
    assert not [name for name in names if name.startswith(KERNEL_PREFIX)]
    assert "sasrec/engines/compiled_engine.py" in names
    assert engine == "numpy"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++: the kernel cannot be built")
def test_with_a_compiler_the_wheel_carries_the_kernel_and_serves_with_it(tmp_path):
    names, output, engine = build_and_install_wheel(tmp_path, "g++", "-v")
    assert [name for name in names if name.startswith(KERNEL_PREFIX)], names
    assert "-march=native" not in output and "-O3" in output
    assert engine == "compiled"
