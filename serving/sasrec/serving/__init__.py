"""gRPC serving of SASRec models: server, predictor, client and in-process API.

Imports are lazy so ``from sasrec.serving import RecommenderClient`` does not
load TensorFlow, and ``sasrec --help`` stays fast.

Example:
    >>> from sasrec.serving import Recommender, start_server  # doctest: +SKIP
    >>> Recommender.load("models").recommend(["sku-1"], k=5).item_ids  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Recommender": "sasrec.serving.recommender",
    "RecommenderClient": "sasrec.serving.client",
    "RecommenderError": "sasrec.serving.client",
    "RecommenderServer": "sasrec.serving.server",
    "start_server": "sasrec.serving.server",
    "ServerOptions": "sasrec.serving.server_options",
    "Predictor": "sasrec.serving.predictor",
    "MicroBatcher": "sasrec.serving.micro_batcher",
    "ModelWatcher": "sasrec.serving.model_watcher",
    "RecommenderServicer": "sasrec.serving.servicer",
    "ServingMetrics": "sasrec.serving.serving_metrics",
    "RecommendationRequest": "sasrec.serving.domain",
    "Recommendation": "sasrec.serving.domain",
    "ScoredItem": "sasrec.serving.domain",
    "HistoryAttention": "sasrec.serving.domain",
    "ModelInfo": "sasrec.serving.domain",
    "Limits": "sasrec.serving.domain",
    "InvalidRequestError": "sasrec.serving.errors",
    "FieldViolation": "sasrec.serving.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sasrec.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
