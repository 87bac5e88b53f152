"""Plain-Python scoring of recommendation requests with one loaded model version.

No gRPC here: the server, the micro-batcher and the in-process API all call
:meth:`Predictor.prepare` (validation + id encoding, cheap, per request) and
:meth:`Predictor.predict` (one model call for many requests).

Two engines compute the same answers: ``"numpy"`` (default,
:class:`sasrec.engines.numpy_sasrec.NumpySASRec`: no per-op dispatch cost, the last
block for the last position only, explanations from the same pass) and
``"tensorflow"`` (the compiled :class:`sasrec.engines.inference.InferenceFunction`,
the graph that the SavedModel export serves).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.padding import pad_left
from sasrec.serving.domain import (
    DEFAULT_K,
    HistoryAttention,
    Limits,
    ModelInfo,
    Recommendation,
    RecommendationRequest,
    ScoredItem,
)
from sasrec.serving.errors import FieldViolation, InvalidRequestError

logger = logging.getLogger("sasrec.serving")

POPULARITY_FILE = "popularity.json"
_EMPTY_IDS = np.zeros((0,), dtype=np.int32)
# Scores at or below this are items masked out inside the graph (deny, allow,
# history, padding); they are never returned.
_MASKED_SCORE = -1e30
ENGINES = ("numpy", "tensorflow")


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request with ids encoded for one :class:`Predictor` (internal)."""

    request: RecommendationRequest
    k: int
    history_ids: np.ndarray  # known items in the model's window, oldest first
    deny_ids: np.ndarray
    allow_ids: np.ndarray | None  # None: no allow list
    unknown_items: tuple[str, ...]
    fallback: bool  # no known history item: popularity answers
    nothing_allowed: bool  # an allow list none of whose ids is known

    @property
    def needs_model(self) -> bool:
        """Whether answering runs the compiled model function."""
        return not (self.fallback or self.nothing_allowed)


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Warm-up batch sizes: powers of two up to ``max_batch_size``, and it."""
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
    order, all with score 0). :meth:`warm_up` runs the compiled functions once
    per batch-size bucket (powers of two up to ``max_batch_size``).

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
        engine: ``"numpy"`` or ``"tensorflow"`` (see the module docstring).

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
        popularity: dict[str, float] | list[float] | None = None,
        limits: Limits | None = None,
        max_batch_size: int = 32,
        engine: str = "numpy",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, received engine={engine!r}")
        self.engine = engine
        self.path = Path(path) if path is not None else None
        self.limits = limits or Limits()
        self.buckets = batch_buckets(max_batch_size)
        self.max_batch_size = max_batch_size
        self.vocabulary = vocabulary
        self.num_items = int(vocabulary.num_items)
        self.max_len = int(_model_max_len(model, manifest))
        self.manifest = dict(manifest)
        self.metrics = model_metrics(metrics or {})
        # The directory name is the version the watcher orders by (TF Serving style).
        if self.path is not None and self.path.name.isdigit():
            self.version = self.path.name
        else:
            self.version = str(manifest.get("version", self.path.name if self.path else ""))
        self._vocab_index: dict[str, int] = {
            raw: i + 1 for i, raw in enumerate(vocabulary.item_ids)
        }
        # Index -> raw id (index 0: padding): a list lookup per returned item.
        self._names: tuple[str, ...] = ("", *map(str, vocabulary.item_ids))
        self._model = model
        if engine == "numpy":
            from sasrec.engines.numpy_sasrec import NumpySASRec

            self._fast = NumpySASRec(model)
        else:
            import tensorflow as tf

            from sasrec.engines.inference import InferenceFunction

            self._fast = None
            inference = InferenceFunction(model)
            self._infer = _flat_call(inference.function.get_concrete_function())
            self._attention = _flat_call(
                tf.function(
                    model.attention_weights,
                    input_signature=[
                        tf.TensorSpec((None, self.max_len), tf.int32, name="histories")
                    ],
                ).get_concrete_function()
            )
        # The item table as NumPy, for per-item explanations. Read once: a
        # served version's weights never change.
        self._table = (
            self._fast.table
            if self._fast is not None
            else np.asarray(model.item_embeddings, dtype=np.float32)
        )
        # Per-call constants, built once: tensors for k, an all-True
        # exclude_history and empty id lists per batch size.
        self._constants: dict[tuple[str, int], Any] = {}
        self._set_popularity(popularity)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        limits: Limits | None = None,
        max_batch_size: int = 32,
        engine: str = "numpy",
    ) -> Predictor:
        """Loads one model version directory (``model.keras``, ``manifest.json``, ...)."""
        from sasrec.artifact import load_model_dir

        path = Path(path)
        artifact = load_model_dir(path)
        popularity = read_popularity(path / POPULARITY_FILE)
        return cls(
            artifact.model,
            artifact.vocabulary,
            dict(artifact.manifest or {}),
            metrics=dict(artifact.metrics or {}),
            path=path,
            popularity=popularity,
            limits=limits,
            max_batch_size=max_batch_size,
            engine=engine,
        )

    # ------------------------------------------------------------------ requests

    def prepare(self, request: RecommendationRequest) -> PreparedRequest:
        """Validates a request and encodes its ids; raises :class:`InvalidRequestError`."""
        limits = self.limits
        violations: list[FieldViolation] = []
        k = request.k
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 0 <= k <= limits.max_k:
            violations.append(
                FieldViolation(
                    "k", f"must be in 0..{limits.max_k} (0 means {DEFAULT_K}), received {k}"
                )
            )
        for name, ids, cap in (
            ("history", request.history, limits.max_history),
            ("allowed_items", request.allowed_items, limits.max_item_list),
            ("excluded_items", request.excluded_items, limits.max_item_list),
        ):
            if len(ids) > cap:
                violations.append(
                    FieldViolation(name, f"at most {cap} item ids, received {len(ids)}")
                )
            elif "" in ids:
                violations.append(FieldViolation(f"{name}[{ids.index('')}]", "empty item id"))
        if violations:
            raise InvalidRequestError(violations)

        index = self._vocab_index
        k = min(int(k) or DEFAULT_K, limits.max_k, self.num_items)
        encoded = [index.get(raw, 0) for raw in request.history]
        known = [i for i in encoded if i]
        unknown: tuple[str, ...] = ()
        if len(known) != len(encoded):
            unknown = tuple(dict.fromkeys(r for r, i in zip(request.history, encoded) if not i))
        window = known[-self.max_len :]
        deny = [index.get(raw, 0) for raw in request.excluded_items]
        if not request.include_history and len(known) > self.max_len:
            # The graph excludes the items it sees; older ones are denied here.
            deny.extend(known[: -self.max_len])
        deny_ids = np.asarray([i for i in deny if i], dtype=np.int32) if deny else _EMPTY_IDS
        allow_ids = None
        nothing_allowed = False
        if request.allowed_items:
            allow = [i for i in (index.get(raw, 0) for raw in request.allowed_items) if i]
            allow_ids = np.asarray(allow, dtype=np.int32)
            nothing_allowed = not allow
        return PreparedRequest(
            request=request,
            k=k,
            history_ids=np.asarray(window, dtype=np.int32),
            deny_ids=deny_ids,
            allow_ids=allow_ids,
            unknown_items=unknown,
            fallback=not known,
            nothing_allowed=nothing_allowed,
        )

    def recommend(self, requests: Sequence[RecommendationRequest]) -> list[Recommendation]:
        """Prepares and answers requests (in chunks of ``max_batch_size``)."""
        prepared = [self.prepare(r) for r in requests]
        out: list[Recommendation] = []
        for start in range(0, len(prepared), self.max_batch_size):
            out.extend(self.predict(prepared[start : start + self.max_batch_size]))
        return out

    def predict(self, batch: Sequence[PreparedRequest]) -> list[Recommendation]:
        """Answers prepared requests; the model rows run in one compiled call.

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
                results[i] = self._answer_without_model(p)
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
            trained_at=_parse_time(self.manifest.get("created_at")),
            sasrec_version=str(self.manifest.get("sasrec_version", "")),
        )

    def warm_up(self) -> None:
        """Runs the compiled functions once per batch-size bucket (first calls are slow)."""
        k = min(DEFAULT_K, self.num_items)
        history = ("\x00warm-up",)  # unknown on purpose: exercise the fallback path too
        self._answer_without_model(self.prepare(RecommendationRequest(history=history, k=k)))
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
            self._score_group(rows)

    # ------------------------------------------------------------------ scoring

    def _score(self, rows: Sequence[PreparedRequest]) -> list[Recommendation]:
        """Scores rows in one or two compiled calls, grouped by history length.

        The compiled function trims the columns that are padding in every row,
        so one long history makes the whole batch pay for its width (attention
        grows with the square of it). When many rows are much shorter than the
        longest, they go in a separate, narrower call. The NumPy engine splits
        only its encoder that way (:meth:`_run_numpy`) and scores the whole
        batch against the item table in one product.
        """
        if self._fast is not None:
            return self._score_group(rows)
        groups = split_by_length([len(p.history_ids) for p in rows], self.max_len)
        if len(groups) == 1:
            return self._score_group(rows)
        answers: list[Recommendation | None] = [None] * len(rows)
        for group in groups:
            for i, answer in zip(group, self._score_group([rows[i] for i in group])):
                answers[i] = answer
        return answers  # type: ignore[return-value]

    def _score_group(self, rows: Sequence[PreparedRequest]) -> list[Recommendation]:
        if self._fast is not None:
            ids, scores, weights = self._run_numpy(rows)
        else:
            ids, scores, weights = self._run_tensorflow(rows)
        return self._answers(rows, ids, scores, weights)

    def _run_numpy(self, rows: Sequence[PreparedRequest]) -> tuple[Any, Any, Any]:
        fast = self._fast
        width = max(1, max(p.history_ids.size for p in rows))
        histories = pad_left([p.history_ids for p in rows], width)
        groups = split_by_length([p.history_ids.size for p in rows], self.max_len)
        if len(groups) == 1:
            hidden, weights = fast.encode_last(histories)
        else:
            # Short rows skip the long rows' padding; the (B, N) scoring
            # product and the top-k run once for the whole batch.
            hidden = np.empty((len(rows), fast.hidden_dim), dtype=np.float32)
            weights = np.zeros(histories.shape, dtype=np.float32)
            for group in groups:
                cols = max(1, max(rows[i].history_ids.size for i in group))
                hidden[group], weights[group, width - cols :] = fast.encode_last(
                    histories[group, width - cols :]
                )
        ids, scores = fast.top_k(
            histories,
            max(p.k for p in rows),
            [not p.request.include_history for p in rows],
            [p.deny_ids for p in rows],
            [p.allow_ids for p in rows],
            hidden=hidden,
        )
        return ids, scores, weights

    def _run_tensorflow(self, rows: Sequence[PreparedRequest]) -> tuple[Any, Any, Any]:
        # Exact batch sizes: the graph never retraces (batch dimension None)
        # and padding rows would cost compute; warm-up covers the first calls.
        import tensorflow as tf

        size = len(rows)
        histories = pad_left([p.history_ids for p in rows], self.max_len)
        k = 0
        has_deny = has_allow = include = False
        for p in rows:
            if p.k > k:
                k = p.k
            has_deny = has_deny or p.deny_ids.size > 0
            has_allow = has_allow or p.allow_ids is not None
            include = include or p.request.include_history
        if include:
            exclude = tf.constant([not p.request.include_history for p in rows])
        else:
            exclude = self._constant("exclude", size)
        deny = (
            tf.constant(_stack_ids([p.deny_ids for p in rows], size))
            if has_deny
            else self._constant("no_ids", size)
        )
        allow = (
            tf.constant(
                _stack_ids([_EMPTY_IDS if p.allow_ids is None else p.allow_ids for p in rows], size)
            )
            if has_allow
            else self._constant("no_ids", size)
        )
        history_tensor = tf.constant(histories)
        out = self._infer(history_tensor, self._constant("k", k), exclude, deny, allow)
        ids = out["ids"].numpy()
        scores = out["scores"].numpy()
        weights = None
        if any(p.request.explain for p in rows):
            weights = self._attention(history_tensor).numpy()
        return ids, scores, weights

    def _answers(
        self, rows: Sequence[PreparedRequest], ids: Any, scores: Any, weights: Any
    ) -> list[Recommendation]:
        names = self._names
        version = self.version
        answers = []
        for r, p in enumerate(rows):
            row_ids = ids[r, : p.k]
            row_scores = scores[r, : p.k]
            keep = (row_scores > _MASKED_SCORE) & (row_ids > 0)
            if not keep.all():
                row_ids = row_ids[keep]
                row_scores = row_scores[keep]
            id_list = row_ids.tolist()
            if weights is not None and p.request.explain:
                summary, per_item = self._explain(p, weights[r], row_ids)
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

    def _constant(self, kind: str, n: int) -> Any:
        """A cached input tensor: ``k`` = n, or for batch size n an all-True
        ``exclude_history`` / an empty ``(n, 0)`` id list."""
        key = (kind, n)
        tensor = self._constants.get(key)
        if tensor is None:
            import tensorflow as tf

            if kind == "k":
                tensor = tf.constant(n, dtype=tf.int32)
            elif kind == "exclude":
                tensor = tf.ones((n,), dtype=tf.bool)
            else:
                tensor = tf.zeros((n, 0), dtype=tf.int32)
            self._constants[key] = tensor
        return tensor

    def _explain(
        self, p: PreparedRequest, weights: np.ndarray, item_ids: np.ndarray
    ) -> tuple[tuple[HistoryAttention, ...], list[tuple[HistoryAttention, ...]]]:
        """The list-level summary and one explanation per recommended item.

        ``a_j`` is the last position's attention over history position ``j``.
        For recommended item ``i`` the contribution of ``j`` is
        ``c_ij = a_j * max(0, E[h_j] . E[i])`` (``E``: the item table, which
        is also the output layer, so ``h_last . E[i]`` is the score); the
        weights are ``c_ij / sum_j c_ij`` (``a_j`` when every ``c_ij`` is 0),
        summed over repeated history items; the top ``explain_top`` with a
        positive weight are returned, highest first (ties: first occurrence).
        The summary is ``a_j`` summed over repeated items, top ``explain_top``.
        """
        history = p.history_ids
        t = history.size
        a = weights[-t:].astype(np.float64)
        # Distinct history items in first-occurrence order; onehot (t, U).
        uniq, first, inverse = np.unique(history, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        onehot = np.zeros((t, uniq.size))
        onehot[np.arange(t), rank[inverse.reshape(-1)]] = 1.0
        names = [self._names[i] for i in uniq[order].tolist()]
        top = self.limits.explain_top

        def pick(row: np.ndarray) -> tuple[HistoryAttention, ...]:
            best = np.argsort(-row, kind="stable")[:top]
            return tuple(HistoryAttention(names[u], float(row[u])) for u in best if row[u] > 0)

        summary = pick(a @ onehot)
        if not item_ids.size:
            return summary, []
        table = self._table
        dots = table[item_ids].astype(np.float64) @ table[history].astype(np.float64).T  # (k, t)
        contrib = a[None, :] * np.maximum(dots, 0.0)
        totals = contrib.sum(axis=1, keepdims=True)
        shares = np.where(totals > 0, contrib / np.where(totals > 0, totals, 1.0), a[None, :])
        per_item = shares @ onehot  # (k, U)
        return summary, [pick(row) for row in per_item]

    def _answer_without_model(self, p: PreparedRequest) -> Recommendation:
        if p.nothing_allowed:
            chosen = _EMPTY_IDS
        elif p.allow_ids is not None:
            chosen = np.unique(p.allow_ids)
            chosen = chosen[np.argsort(self._rank[chosen], kind="stable")]
        else:
            chosen = self._order[: p.k + p.deny_ids.size]
        if p.deny_ids.size and chosen.size:
            chosen = chosen[~np.isin(chosen, p.deny_ids)]
        if not p.fallback and not p.request.include_history and chosen.size:
            chosen = chosen[~np.isin(chosen, p.history_ids)]
        chosen = chosen[: p.k]
        names = self._names
        return Recommendation(
            items=tuple(
                ScoredItem(names[i], s)
                for i, s in zip(chosen.tolist(), self._popularity[chosen].tolist())
            ),
            model_version=self.version,
            unknown_items=p.unknown_items,
            fallback=p.fallback,
        )

    def _set_popularity(self, popularity: dict[str, float] | list[float] | None) -> None:
        counts = np.zeros((self.num_items + 1,), dtype=np.float32)
        if isinstance(popularity, list):
            n = self.num_items
            if len(popularity) not in (n, n + 1):
                raise ValueError(
                    f"{self.path}/{POPULARITY_FILE}: expected {n + 1} counts (index 0..{n}), "
                    f"received {len(popularity)}"
                )
            counts[n + 1 - len(popularity) :] = popularity
            counts[0] = 0.0
        elif popularity:
            for raw, count in popularity.items():
                index = self._vocab_index.get(str(raw))
                if index:
                    counts[index] = float(count)
        self._popularity = counts
        # Most popular first, ties by index; index 0 (padding) never listed.
        order = np.lexsort((np.arange(1, self.num_items + 1), -counts[1:])) + 1
        self._order = order.astype(np.int32)
        rank = np.empty((self.num_items + 1,), dtype=np.int64)
        rank[0] = self.num_items + 1
        rank[self._order] = np.arange(self.num_items)
        self._rank = rank


# A second compiled call costs about as much as this many extra history
# positions (rows x columns) of encoder work; split only when it saves more.
SPLIT_MIN_SAVED_POSITIONS = 256


def split_by_length(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Row indices in one group, or two groups (short rows, long rows).

    Example:
        >>> split_by_length([3, 50, 2, 4] + [5] * 60, 50)[0][:4]
        [0, 2, 3, 4]
        >>> split_by_length([3, 4, 5], 50)
        [[0, 1, 2]]
    """
    widths = [max(1, min(n, max_len)) for n in lengths]
    widest = max(widths)
    order = sorted(range(len(widths)), key=widths.__getitem__)
    best_saved, best_cut = 0, 0
    for cut in range(1, len(order)):
        if widths[order[cut]] == widths[order[cut - 1]]:
            continue
        saved = cut * (widest - widths[order[cut - 1]])
        if saved > best_saved:
            best_saved, best_cut = saved, cut
    if best_saved < SPLIT_MIN_SAVED_POSITIONS:
        return [list(range(len(widths)))]
    return [sorted(order[:best_cut]), sorted(order[best_cut:])]


def _flat_call(concrete: Any) -> Any:
    """Calls a concrete function with tensors already matching its signature.

    ``ConcreteFunction.__call__`` binds and checks the arguments against the
    signature on every call (about 0.3-0.5 ms here); our inputs are built to
    it, so the flat call runs the graph directly. Falls back to the public
    call if this TensorFlow has no ``_call_flat``.
    """
    call_flat = getattr(concrete, "_call_flat", None)
    if call_flat is None:  # pragma: no cover - other TensorFlow versions
        return concrete
    captured = concrete.captured_inputs

    def call(*tensors: Any) -> Any:
        return call_flat(list(tensors), captured)

    return call


def _stack_ids(rows: Sequence[np.ndarray], size: int) -> np.ndarray:
    width = max(1, max(r.size for r in rows))
    out = np.zeros((size, width), dtype=np.int32)
    for i, r in enumerate(rows):
        if r.size:
            out[i, : r.size] = r
    return out


def _model_max_len(model: Any, manifest: dict[str, Any]) -> int:
    if "max_len" in manifest:
        return int(manifest["max_len"])
    return int(model.get_config()["max_len"])


def read_popularity(path: Path) -> dict[str, float] | list[float] | None:
    """Reads ``popularity.json``; a missing file gives None (index order).

    Accepted shapes, optionally under a ``"counts"`` key (as ``sasrec train``
    writes): a list of counts indexed by model index (``[c_0, ..., c_N]``,
    ``c_0`` for padding, or ``[c_1, ..., c_N]``), or an object mapping raw item
    ids to counts. Anything else raises ``ValueError`` naming the file.
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("counts"), dict | list):
        data = data["counts"]
    if isinstance(data, list):
        for i, count in enumerate(data):
            if isinstance(count, bool) or not isinstance(count, int | float):
                raise ValueError(f"{path}: counts[{i}] must be a number, received {count!r}")
        return [float(c) for c in data]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a list of counts or an object of item id -> count")
    out: dict[str, float] = {}
    for raw, count in data.items():
        if isinstance(count, bool) or not isinstance(count, int | float):
            raise ValueError(f"{path}: count of item {raw!r} must be a number, received {count!r}")
        out[str(raw)] = float(count)
    return out


def model_metrics(data: dict[str, Any]) -> dict[str, float]:
    """The metrics GetModelInfo reports from ``metrics.json``.

    The flat ``summary`` object (``{"full/sasrec/ndcg@10": 0.1, ...}``, written
    by ``sasrec train``) if there is one; otherwise every number, nested
    objects flattened with ``/``.
    """
    summary = data.get("summary")
    return _flatten_metrics(summary if isinstance(summary, dict) else data)


def _flatten_metrics(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_metrics(value, name + "/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("manifest created_at is not ISO 8601: %r", value)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
