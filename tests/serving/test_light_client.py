"""The light client distribution (``client/``): gRPC and protobuf, no TensorFlow.

The fast test builds the wheel and checks what it holds: every module a
module of the wheel imports from ``sasrec`` is in the wheel, and none
imports TensorFlow, Keras, NumPy or pandas. The slow one installs it into a
fresh virtualenv (dependencies from the package index), checks that
TensorFlow is not installed there, and records events and asks by user id
over gRPC from that virtualenv against a real server.
"""

# ruff: noqa: F811 - pytest fixtures imported from test_server are parameters here
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from sasrec.serving import start_server

# test_server's module fixtures (a model version and its in-process API), used by name.
from tests.serving.test_server import local, model_root  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"tensorflow", "keras", "numpy", "pandas", "pyarrow"}


def build_wheel(directory: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "sasrec_client_build", ROOT / "client" / "sasrec_client_build.py"
    )
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    return directory / backend.build_wheel(str(directory))


def test_the_wheel_holds_the_client_and_its_imports_only(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert wheel.name == "sasrec_client-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        modules = {
            n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py")
        }
        assert {"sasrec.serving.client", "sasrec.serving.v1.recommender_pb2_grpc"} <= modules
        assert "sasrec.serving.server" not in modules
        metadata = archive.read("sasrec_client-0.1.0.dist-info/METADATA").decode()
        for name in sorted(n for n in names if n.endswith(".py")):
            tree = ast.parse(archive.read(name))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported = [node.module]
                else:
                    continue
                for module in imported:
                    assert module.split(".")[0] not in HEAVY, (name, module)
                    if module.startswith("sasrec"):
                        assert module in modules, f"{name} imports {module}, not in the wheel"
    requires = [
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist")
    ]
    assert {r.split("=")[0].split(">")[0] for r in requires} == {
        "grpcio", "grpcio-health-checking", "grpcio-status", "protobuf", "googleapis-common-protos"
    }  # fmt: skip


CLIENT_SCRIPT = """
import importlib.util, json, sys, time
from sasrec.serving import RecommenderClient
from sasrec.serving.v1 import recommender_pb2, recommender_pb2_grpc  # the stubs
heavy = [m for m in ("tensorflow", "keras", "numpy", "pandas") if importlib.util.find_spec(m)]
with RecommenderClient(sys.argv[1], timeout=10) as client:
    now = time.time()
    recorded = client.record_events([("light", "sku-03", now - 2), ("light", "sku-04", now - 1)])
    rec = client.recommend([], k=5, user_id="light")
print(json.dumps({"heavy": heavy, "recorded": recorded, "items": rec.item_ids}))
"""


@pytest.mark.slow
def test_a_fresh_virtualenv_gets_the_client_without_tensorflow(
    tmp_path: Path, model_root: Path, local
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT / "client")],
        check=True,
        cwd=tmp_path,
    )
    # Not importable there: TensorFlow (nor Keras, NumPy, pandas).
    probe = subprocess.run(
        [str(python), "-c", "import tensorflow"], cwd=tmp_path, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    events = tmp_path / "events.db"
    with start_server(model_root, port=0, poll_seconds=0, event_store=f"sqlite:{events}") as srv:
        done = subprocess.run(
            [str(python), "-c", textwrap.dedent(CLIENT_SCRIPT), srv.address],
            cwd=tmp_path,  # not the checkout: its sasrec/ would shadow the installed one
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["heavy"] == [] and answer["recorded"] == 2
    assert answer["items"] == local.recommend(["sku-03", "sku-04"], k=5).item_ids
