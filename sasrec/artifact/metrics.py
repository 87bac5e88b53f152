"""``metrics.json``: the numbers a served version reports about itself."""

from __future__ import annotations

from typing import Any


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The flat metrics of a parsed ``metrics.json`` (what GetModelInfo reports).

    The flat ``summary`` object (``{"full/sasrec/ndcg@10": 0.1, ...}``, written
    by ``sasrec train``) if there is one; otherwise every number, nested
    objects flattened with ``/``.

    Example:
        >>> summary_metrics({"summary": {"full/ndcg@10": 0.1}, "test": {"x": 1}})
        {'full/ndcg@10': 0.1}
        >>> summary_metrics({"full": {"hr@10": 0.5}, "note": "text"})
        {'full/hr@10': 0.5}
    """
    summary = metrics.get("summary")
    return _flatten(summary if isinstance(summary, dict) else metrics)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
