"""In-process recommendations: the server's code path without the network hop."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from sasrec.engines.registry import DEFAULT_ENGINE
from sasrec.engines.retrieval import DEFAULT_RETRIEVAL
from sasrec.serving.domain import (
    DEFAULT_K,
    Limits,
    ModelInfo,
    Recommendation,
    RecommendationRequest,
)


class Recommender:
    """Embeds a model in a Python backend; answers exactly like the gRPC server.

    It uses the same :class:`~sasrec.serving.predictor.Predictor` (validation,
    id encoding, compiled scoring, popularity fallback) and returns the same
    domain objects as :class:`~sasrec.serving.client.RecommenderClient`; bad
    requests raise :class:`~sasrec.serving.errors.InvalidRequestError`. It is
    thread-safe; it does not batch across threads (use the server for that).

    Args:
        predictor: A loaded predictor.

    Example:
        >>> rec = Recommender.load("models")  # doctest: +SKIP
        >>> rec.recommend(["sku-1", "sku-9"], k=3).item_ids  # doctest: +SKIP
        ['sku-4', 'sku-2', 'sku-7']
    """

    def __init__(self, predictor: object) -> None:
        self.predictor = predictor

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike,
        *,
        limits: Limits | None = None,
        max_batch_size: int = 32,
        warm_up: bool = True,
        engine: str = DEFAULT_ENGINE,
        retrieval: str = DEFAULT_RETRIEVAL,
    ) -> Recommender:
        """Loads one version directory, or the highest loadable version of a root.

        Args:
            model_dir: Version directory or versions root (as ``sasrec serve --model``).
            limits: Request caps (the server's defaults if None).
            max_batch_size: Largest batch one compiled call scores.
            warm_up: Run the compiled functions once per batch bucket now.
            engine: ``"auto"`` (default: ``"compiled"`` when built, else
                ``"numpy"``), ``"compiled"``, ``"numpy"`` or ``"tensorflow"``.
            retrieval: ``"auto"`` (default), ``"exact"`` or ``"ann"`` (see
                :mod:`sasrec.engines.retrieval`).
        """
        from sasrec.runtime import configure_threads
        from sasrec.serving.model_watcher import ModelWatcher
        from sasrec.serving.predictor import Predictor

        configure_threads()

        def load(path: os.PathLike) -> Predictor:
            predictor = Predictor.load(
                path,
                limits=limits,
                max_batch_size=max_batch_size,
                engine=engine,
                retrieval=retrieval,
            )
            if warm_up:
                predictor.warm_up()
            return predictor

        holder: list[Predictor] = []
        ModelWatcher(model_dir, load=load, on_loaded=holder.append, poll_seconds=0).load_initial()
        return cls(holder[-1])

    @property
    def model_version(self) -> str:
        return self.predictor.version

    def recommend(
        self,
        history: Iterable[str],
        k: int = DEFAULT_K,
        *,
        include_history: bool = False,
        allowed_items: Iterable[str] = (),
        excluded_items: Iterable[str] = (),
        user_id: str = "",
        explain: bool = False,
    ) -> Recommendation:
        """Top-``k`` next items for one history (oldest first); see the proto for fields."""
        request = RecommendationRequest(
            history=tuple(map(str, history)),
            k=k,
            include_history=include_history,
            allowed_items=tuple(map(str, allowed_items)),
            excluded_items=tuple(map(str, excluded_items)),
            user_id=user_id,
            explain=explain,
        )
        return self.predictor.recommend([request])[0]

    def recommend_batch(self, requests: Sequence[RecommendationRequest]) -> list[Recommendation]:
        """Answers many requests, scored together."""
        return self.predictor.recommend(list(requests))

    def model_info(self) -> ModelInfo:
        return self.predictor.info()
