"""gRPC serving of SASRec models: server, predictor, client and in-process API.

Imports are lazy so ``from sasrec.serving import RecommenderClient`` does not
load TensorFlow, and ``sasrec --help`` stays fast.

Example:
    >>> from sasrec.serving import Recommender, start_server  # doctest: +SKIP
    >>> Recommender.load("models").recommend(["sku-1"], k=5).item_ids  # doctest: +SKIP
"""

from __future__ import annotations

from sasrec.lazy_exports import lazy_exports

_EXPORTS = {
    "Recommender": "recommender",
    "RecommenderClient": "client",
    "RecommenderError": "client",
    "RecommenderServer": "server",
    "start_server": "server",
    "ServerOptions": "server_options",
    "Predictor": "predictor",
    "MicroBatcher": "micro_batcher",
    "ModelWatcher": "model_watcher",
    "RecommenderServicer": "servicer",
    "ServingMetrics": "serving_metrics",
    "RecommendationRequest": "domain",
    "Recommendation": "domain",
    "ScoredItem": "domain",
    "HistoryAttention": "domain",
    "ModelInfo": "domain",
    "Limits": "domain",
    "InvalidRequestError": "errors",
    "FieldViolation": "errors",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
