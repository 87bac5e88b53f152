"""pyproject.toml lists every package, so a non-editable install has them all."""

from __future__ import annotations

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
