"""Layout rules of docs/architecture.md: who may import whom; a tree that matches the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project supports 3.10

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
    "package-dir"
]

# Each part of the sasrec namespace and the parts it may import. The library
# is imported by everything and imports none of the others; the command line
# is the one place that puts data, training and serving together.
MAY_IMPORT = {
    "sasrec": {"sasrec"},
    "sasrec.data": {"sasrec", "sasrec.data"},
    "sasrec.training": {"sasrec", "sasrec.data", "sasrec.training"},
    "sasrec.serving": {"sasrec", "sasrec.serving"},
    "sasrec.cli": {"sasrec", "sasrec.data", "sasrec.training", "sasrec.serving", "sasrec.cli"},
}
# Third-party packages a part must not import: the library stays Keras + TF +
# NumPy, so a backend that embeds the model does not pull pandas or gRPC.
FORBIDDEN_THIRD_PARTY = {
    "sasrec": {"pandas", "pyarrow", "grpc", "grpc_health", "grpc_reflection", "prometheus_client"},
    "sasrec.data": {"grpc", "prometheus_client"},
    "sasrec.training": {"grpc", "prometheus_client"},
    "sasrec.serving": {"pandas", "pyarrow"},
}
PARTS = tuple(sorted(MAY_IMPORT, key=len, reverse=True))


def _part(module: str) -> str | None:
    """The part of the namespace a dotted module name belongs to."""
    for part in PARTS:
        if module == part or module.startswith(part + "."):
            return part
    return None


def _modules(part: str) -> list[Path]:
    folder = ROOT / PACKAGE_DIRS[part]
    return [p for p in folder.rglob("*.py") if "_pb2" not in p.name]


def _imports(path: Path) -> set[str]:
    """Every absolute import in a module, the lazy ones inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_import_direction(part):
    wrong = []
    for path in _modules(part):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN_THIRD_PARTY.get(part, set()):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            target = _part(name)
            if target is not None and target not in MAY_IMPORT[part]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name} ({target})")
    assert wrong == [], f"{part} may import only {sorted(MAY_IMPORT[part])}"


def test_every_part_of_the_namespace_has_a_rule():
    top_level = {name for name in PACKAGE_DIRS if name.count(".") <= 1}
    assert top_level == set(MAY_IMPORT)


def _architecture_tree() -> set[str]:
    """The paths named in the first fenced block of docs/architecture.md's layout section."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layout", 1)[1]
    block = section.split("```", 2)[1]
    paths, stack = set(), []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+/|\S+\.(?:py|proto|sh|cc))(?:\s|$)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack[depth:] = [match.group(2).rstrip("/")]
        paths.add("/".join(stack))
    return paths


def test_architecture_tree_matches_the_code():
    named = _architecture_tree()
    missing_on_disk = sorted(p for p in named if not (ROOT / p).exists())
    assert missing_on_disk == [], "docs/architecture.md names paths that do not exist"
    code = set()
    for part, folder in PACKAGE_DIRS.items():
        if part == "sasrec.serving.v1":
            continue
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "__init__.py" or path.name.startswith("__"):
                continue
            if "v1" in path.relative_to(ROOT).parts:
                continue
            code.add(str(path.relative_to(ROOT)))
    unnamed = sorted(code - named)
    assert unnamed == [], "modules missing from docs/architecture.md's tree"
