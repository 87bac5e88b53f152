"""Plain-Python answers to recommendation requests with one loaded model version.

No gRPC here: the server, the micro-batcher and the in-process API all call
:meth:`Predictor.prepare` (validation + id encoding, cheap, per request) and
:meth:`Predictor.predict` (one model call for many requests). The predictor
composes one part per job:

- :class:`~sasrec.serving.prepared_request.RequestEncoder`: validation and ids;
- an :class:`~sasrec.engines.engine.Engine` (``"compiled"``, ``"numpy"`` or
  ``"tensorflow"``, :mod:`sasrec.engines.registry`): the model's top-k;
- :class:`~sasrec.serving.popularity_fallback.PopularityFallback`: answers
  without the model;
- :class:`~sasrec.serving.explanations.AttentionExplainer`: ``explain``.

The model directory is read through :mod:`sasrec.artifact`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.artifact import (
    POPULARITY_FILE,
    Popularity,
    counts_by_index,
    load_model_dir,
    manifest_created_at,
    manifest_max_len,
    read_popularity,
    summary_metrics,
    version_name,
)
from sasrec.engines.engine import Engine, TopK
from sasrec.engines.registry import DEFAULT_ENGINE, create_engine
from sasrec.engines.retrieval import DEFAULT_RETRIEVAL, resolve_retrieval
from sasrec.serving.domain import (
    DEFAULT_K,
    Limits,
    ModelInfo,
    Recommendation,
    RecommendationRequest,
    ScoredItem,
)
from sasrec.serving.explanations import AttentionExplainer
from sasrec.serving.popularity_fallback import PopularityFallback
from sasrec.serving.prepared_request import PreparedRequest, RequestEncoder

# Scores at or below this are items the engine masked out (deny, allow,
# history, padding); they are never returned.
_MASKED_SCORE = -1e30


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Warm-up batch sizes: powers of two up to ``max_batch_size``, and it.

    Example:
        >>> batch_buckets(24)
        (1, 2, 4, 8, 16, 24)
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, received {max_batch_size}")
    sizes = []
    size = 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch_size)
    return tuple(sizes)


class Predictor:
    """Answers recommendation requests with one model version.

    Build it with :meth:`load` from a model version directory (see
    ``docs/architecture.md``). Unknown history ids are dropped and reported;
    when no history item is known the popularity ranking answers
    (``popularity.json`` counts if the model directory has one, else item index
    order, all with score 0). :meth:`warm_up` runs the engine once per
    batch-size bucket (powers of two up to ``max_batch_size``).

    Args:
        model: A loaded ``sasrec.models.SASRec``.
        vocabulary: The model's ``ItemVocabulary``.
        manifest: The version's ``manifest.json`` content.
        metrics: The version's ``metrics.json`` content (or empty).
        path: The version directory (for logs and the version fallback).
        popularity: Raw item id -> count, or counts indexed by model index
            (``[c_0, c_1, ..., c_N]``), or None for index order.
        limits: Request caps.
        max_batch_size: Largest batch one model call scores.
        engine: An engine name of :data:`sasrec.engines.registry.ENGINES`
            (``"auto"``, the default: ``"compiled"`` when its kernel is built,
            else ``"numpy"``; or ``"tensorflow"``), or a built
            :class:`~sasrec.engines.engine.Engine` of this model.
        retrieval: ``"auto"`` (default), ``"exact"`` or ``"ann"``
            (:mod:`sasrec.engines.retrieval`): with ``ann`` an index of the
            item table (cached in ``path``) proposes candidates that are
            rescored exactly; ``auto`` is ``ann`` from 250,000 items on.

    Example:
        >>> predictor = Predictor.load("models/3")  # doctest: +SKIP
        >>> predictor.warm_up()  # doctest: +SKIP
        >>> prepared = predictor.prepare(RecommendationRequest(history=("a",)))  # doctest: +SKIP
        >>> predictor.predict([prepared])[0].item_ids  # doctest: +SKIP
        ['c', 'd', ...]
    """

    def __init__(
        self,
        model: Any,
        vocabulary: Any,
        manifest: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        path: str | os.PathLike | None = None,
        popularity: Popularity = None,
        limits: Limits | None = None,
        max_batch_size: int = 32,
        engine: str | Engine = DEFAULT_ENGINE,
        retrieval: str = DEFAULT_RETRIEVAL,
    ) -> None:
        self.path = Path(path) if path is not None else None
        if isinstance(engine, str):
            self.retrieval = resolve_retrieval(retrieval, int(vocabulary.num_items), engine)
            scoring_engine = create_engine(engine, model)
        else:
            self.retrieval = getattr(engine, "retrieval", "exact")
            scoring_engine = engine
        self.limits = limits or Limits()
        self.buckets = batch_buckets(max_batch_size)
        self.max_batch_size = max_batch_size
        self.vocabulary = vocabulary
        self.num_items = int(vocabulary.num_items)
        self.max_len = manifest_max_len(manifest, model)
        self.manifest = dict(manifest)
        self.metrics = summary_metrics(metrics or {})
        self.version = version_name(self.path, manifest)
        self._model = model
        self.encoder = RequestEncoder(vocabulary.item_ids, self.max_len, self.limits)
        # Index -> raw id (index 0: padding): a list lookup per returned item.
        self._names: tuple[str, ...] = ("", *map(str, vocabulary.item_ids))
        counts = counts_by_index(
            popularity, self.encoder.index, self.num_items, source=f"{self.path}/{POPULARITY_FILE}"
        )
        self.fallback = PopularityFallback(counts, self._names)
        if self.retrieval == "ann" and isinstance(engine, str):
            from sasrec.engines.ann_engine import AnnEngine
            from sasrec.engines.retrieval import ann_index_for

            index = ann_index_for(self.path, scoring_engine, counts)
            scoring_engine = AnnEngine(scoring_engine, index)
        self.engine = scoring_engine.name
        self.scoring_engine: Engine = scoring_engine
        self.explainer = AttentionExplainer(
            scoring_engine.item_table, self._names, self.limits.explain_top
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        limits: Limits | None = None,
        max_batch_size: int = 32,
        engine: str = DEFAULT_ENGINE,
        retrieval: str = DEFAULT_RETRIEVAL,
    ) -> Predictor:
        """Loads one model version directory (``model.keras``, ``manifest.json``, ...)."""
        path = Path(path)
        artifact = load_model_dir(path)
        return cls(
            artifact.model,
            artifact.vocabulary,
            dict(artifact.manifest or {}),
            metrics=dict(artifact.metrics or {}),
            path=path,
            popularity=read_popularity(path / POPULARITY_FILE),
            limits=limits,
            max_batch_size=max_batch_size,
            engine=engine,
            retrieval=retrieval,
        )

    # ------------------------------------------------------------------ requests

    def prepare(self, request: RecommendationRequest) -> PreparedRequest:
        """Validates a request and encodes its ids; raises :class:`InvalidRequestError`."""
        return self.encoder.prepare(request)

    def recommend(self, requests: Sequence[RecommendationRequest]) -> list[Recommendation]:
        """Prepares and answers requests (in chunks of ``max_batch_size``)."""
        prepared = [self.prepare(r) for r in requests]
        out: list[Recommendation] = []
        for start in range(0, len(prepared), self.max_batch_size):
            out.extend(self.predict(prepared[start : start + self.max_batch_size]))
        return out

    def predict(self, batch: Sequence[PreparedRequest]) -> list[Recommendation]:
        """Answers prepared requests; the model rows run in one engine call.

        Args:
            batch: At most ``max_batch_size`` requests prepared by this predictor.

        Returns:
            One :class:`Recommendation` per request, in order.
        """
        results: list[Recommendation | None] = [None] * len(batch)
        model_rows: list[int] = []
        for i, p in enumerate(batch):
            if p.needs_model:
                model_rows.append(i)
            else:
                results[i] = self.fallback.answer(p, self.version)
        for start in range(0, len(model_rows), self.max_batch_size):
            rows = model_rows[start : start + self.max_batch_size]
            answers = self._score([batch[i] for i in rows])
            for i, answer in zip(rows, answers):
                results[i] = answer
        return results  # type: ignore[return-value]

    def info(self) -> ModelInfo:
        """Version, sizes and training metrics of this model."""
        return ModelInfo(
            model_version=self.version,
            num_items=self.num_items,
            max_history_length=self.max_len,
            metrics=dict(self.metrics),
            trained_at=manifest_created_at(self.manifest),
            sasrec_version=str(self.manifest.get("sasrec_version", "")),
        )

    def warm_up(self) -> None:
        """Runs the engine once per batch-size bucket (first calls are slow)."""
        k = min(DEFAULT_K, self.num_items)
        history = ("\x00warm-up",)  # unknown on purpose: exercise the fallback path too
        self.fallback.answer(self.prepare(RecommendationRequest(history=history, k=k)), "")
        one = np.asarray([1], dtype=np.int32)
        for size in self.buckets:
            rows = [
                PreparedRequest(
                    request=RecommendationRequest(k=k, explain=True),
                    k=k,
                    history_ids=one,
                    deny_ids=one,
                    allow_ids=None,
                    unknown_items=(),
                    fallback=False,
                    nothing_allowed=False,
                )
            ] * size
            self._score(rows)

    # ------------------------------------------------------------------ scoring

    def _score(self, rows: Sequence[PreparedRequest]) -> list[Recommendation]:
        """Model answers for rows that need the model: one engine call."""
        return self._answers(rows, self.top_k(rows))

    def top_k(self, rows: Sequence[PreparedRequest]) -> TopK:
        """The engine's raw top-``max k`` of rows that need the model (one call).

        Row ``r`` answers ``rows[r]`` with its first ``rows[r].k`` entries,
        less those whose score is at or below ``-1e30`` or whose id is 0
        (masked); :meth:`predict` applies that rule, and so does the native
        front end, which builds responses from these arrays itself.
        """
        explain = any(p.request.explain for p in rows)
        return self.scoring_engine.top_k(
            [p.history_ids for p in rows],
            max(p.k for p in rows),
            [p.exclude_history for p in rows],
            [p.deny_ids for p in rows],
            [p.allow_ids for p in rows],
            with_attention=explain,
        )

    def _answers(self, rows: Sequence[PreparedRequest], top: TopK) -> list[Recommendation]:
        names = self._names
        version = self.version
        answers = []
        for r, p in enumerate(rows):
            row_ids = top.ids[r, : p.k]
            row_scores = top.scores[r, : p.k]
            keep = (row_scores > _MASKED_SCORE) & (row_ids > 0)
            if not keep.all():
                row_ids = row_ids[keep]
                row_scores = row_scores[keep]
            id_list = row_ids.tolist()
            if top.attention is not None and p.request.explain:
                summary, per_item = self.explainer.explain(p.history_ids, top.attention[r], row_ids)
                items = tuple(
                    ScoredItem(names[i], s, e)
                    for i, s, e in zip(id_list, row_scores.tolist(), per_item)
                )
            else:
                summary = ()
                items = tuple(ScoredItem(names[i], s) for i, s in zip(id_list, row_scores.tolist()))
            answers.append(
                Recommendation(
                    items=items,
                    model_version=version,
                    unknown_items=p.unknown_items,
                    fallback=False,
                    explanation=summary,
                )
            )
        return answers
