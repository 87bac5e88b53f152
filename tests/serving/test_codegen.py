"""The .proto is the contract: generated code is reproducible and drift is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sasrec.serving import codegen


def test_checked_in_code_matches_the_proto() -> None:
    assert codegen.check() == []


def test_check_reports_drift_and_missing_files(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    shutil.copytree(codegen.OUT_DIR, out)
    edited = out / "recommender_pb2_grpc.py"
    edited.write_text(edited.read_text() + "# hand edit\n")
    (out / "recommender_pb2.pyi").unlink()
    problems = codegen.check(out_dir=out)
    assert len(problems) == 2
    assert "recommender_pb2.pyi: missing" in problems[0]
    assert "recommender_pb2_grpc.py: differs" in problems[1] and "-# hand edit" in problems[1]


def test_check_command_passes_on_the_checked_in_code() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "sasrec.serving.codegen", "--check"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr


def test_generated_modules_import_under_the_sasrec_namespace() -> None:
    from sasrec.serving.v1 import recommender_pb2, recommender_pb2_grpc

    service = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"]
    assert service.full_name == "sasrec.v1.Recommender"
    methods = ["Recommend", "RecommendBatch", "GetModelInfo", "RecordEvents"]
    assert [m.name for m in service.methods] == methods
    assert hasattr(recommender_pb2_grpc, "RecommenderStub")
    assert recommender_pb2.DESCRIPTOR.name == "sasrec/serving/v1/recommender.proto"
