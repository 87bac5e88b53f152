"""bench/bench_games.py's aggregation of seeds: mean, sample sd and each seed's CI.

The per-seed results are given by hand (no training); the expectations are
computed by hand from them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_games.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_games", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(seed: int, sasrec: float) -> dict:
    """One seed's figures: SASRec's sampled NDCG@10 varies, everything else is 0.1."""
    figures = {
        protocol: {
            name: {"ndcg@10": [0.1, [0.09, 0.11]], "hr@10": [0.1, [0.09, 0.11]]}
            for name in ("sasrec", "popularity", "markov")
        }
        for protocol in ("sampled", "full_excl", "full_incl")
    }
    figures["sampled"]["sasrec"]["ndcg@10"] = [sasrec, [sasrec - 0.007, sasrec + 0.007]]
    return {"seed": seed, **figures}


def test_mean_sd_and_each_seeds_interval() -> None:
    bench = _bench()
    summary = bench.aggregate_seeds([_result(1, 0.530), _result(2, 0.536), _result(3, 0.545)])
    entry = summary["sampled"]["sasrec"]["ndcg@10"]
    assert summary["seeds"] == [1, 2, 3]
    # mean 1.611 / 3 = 0.537; deviations -0.007, -0.001, 0.008:
    # sd = sqrt((49 + 1 + 64) e-6 / 2) = sqrt(57e-6) = 0.00755
    assert entry["mean"] == pytest.approx(0.537)
    assert entry["sd"] == pytest.approx(0.0075, abs=1e-4)
    assert entry["per_seed"][2] == [3, 0.545, [0.538, 0.552]]
    flat = summary["full_excl"]["markov"]["hr@10"]
    assert (flat["mean"], flat["sd"]) == (0.1, 0.0)
    text = bench.format_summary(summary)
    assert "sampled sasrec ndcg@10: 0.5370 ± 0.0075" in text
    assert "3: 0.5450 [0.5380, 0.5520]" in text


def test_one_seed_has_sd_zero_and_nothing_is_an_error() -> None:
    bench = _bench()
    entry = bench.aggregate_seeds([_result(7, 0.5)])["sampled"]["sasrec"]["ndcg@10"]
    assert (entry["mean"], entry["sd"]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="no result"):
        bench.aggregate_seeds([])
