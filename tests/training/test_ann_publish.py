"""`sasrec train` publishes a version with its ANN index at the catalogue size serving uses one.

The threshold is lowered for a 30-item run (the module constant
``ANN_MIN_ITEMS`` that both training and ``--retrieval auto`` read).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("faiss")

from sasrec.artifact import latest_version, load_model_dir  # noqa: E402
from sasrec.engines import retrieval  # noqa: E402
from sasrec.engines.ann_index import ANN_INDEX_META_FILE, AnnIndex  # noqa: E402
from tests.training.test_large_catalogue import _train  # noqa: E402


@pytest.mark.slow
def test_publish_builds_the_index_above_the_threshold(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(retrieval, "ANN_MIN_ITEMS", 30)
    code, out = _train(tmp_path, "--loss", "bce")
    assert code == 0
    version = latest_version(out)
    meta = json.loads((version / ANN_INDEX_META_FILE).read_text())
    assert meta["num_items"] == 30 and meta["dim"] == 16
    table = load_model_dir(version).model.encoder.numpy_weights()["item_embeddings"]
    index = AnnIndex.load(version, table)  # built from the published weights
    assert index is not None and 1 <= index.nprobe <= index.nlist
    assert not list(out.glob(".tmp-*"))
