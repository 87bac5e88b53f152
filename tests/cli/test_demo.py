"""The README's main job end to end: train -> serve over gRPC -> query -> stop (slow)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_trains_serves_queries_and_stops(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "sasrec.cli", "demo", "--out", str(out), "--epochs", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    assert "health: SERVING" in text
    assert "server stopped cleanly" in text
    assert (out / "1" / "manifest.json").is_file()
    # Three answered queries, each a ranked table of 5 catalogue items.
    assert len(re.findall(r"^\s+5\s+sku-\d{6}\s", text, flags=re.M)) == 3
    assert "unknown ids ignored: sku-not-in-catalogue" in text
    assert "popularity fallback" in text
    ours = float(re.search(r"test full/sasrec/ndcg@10: ([0-9.]+)", text).group(1))
    pop = float(re.search(r"test full/popularity/ndcg@10: ([0-9.]+)", text).group(1))
    assert ours > 2 * pop
