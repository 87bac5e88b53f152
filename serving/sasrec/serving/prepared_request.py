"""Turning a validated request into model indices: what :meth:`Predictor.predict` consumes.

Preparing is cheap and runs on the caller's thread (a gRPC handler, the
in-process API) so the batching thread only scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sasrec.serving.domain import DEFAULT_K, Limits, RecommendationRequest
from sasrec.serving.request_validation import validate_request

_EMPTY_IDS = np.zeros((0,), dtype=np.int32)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request with its ids encoded for one model version.

    Example:
        >>> encoder = RequestEncoder(["a", "b", "c"], max_len=2, limits=Limits())
        >>> prepared = encoder.prepare(RecommendationRequest(history=("a", "zz", "c"), k=2))
        >>> prepared.history_ids.tolist(), prepared.unknown_items, prepared.needs_model
        ([1, 3], ('zz',), True)
    """

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
        """Whether answering runs the model (else the popularity fallback answers)."""
        return not (self.fallback or self.nothing_allowed)

    @property
    def exclude_history(self) -> bool:
        """Whether the history items may not be recommended."""
        return not self.request.include_history


class RequestEncoder:
    """Validates requests and maps raw item ids to one vocabulary's model indices.

    Unknown history ids are dropped and reported; only the most recent
    ``max_len`` known items reach the model, and when the history is excluded
    the older ones are denied instead. Unknown allowed or excluded ids are
    ignored.

    Args:
        item_ids: The vocabulary's raw ids; ``item_ids[i]`` has index ``i + 1``.
        max_len: The model's history window.
        limits: Request caps.

    Example:
        >>> encoder = RequestEncoder(["a", "b"], max_len=4, limits=Limits())
        >>> encoder.prepare(RecommendationRequest(history=("x",))).fallback
        True
    """

    def __init__(self, item_ids: Sequence[str], max_len: int, limits: Limits) -> None:
        self.limits = limits
        self.max_len = max_len
        self.num_items = len(item_ids)
        self.index: dict[str, int] = {raw: i + 1 for i, raw in enumerate(item_ids)}

    def prepare(self, request: RecommendationRequest) -> PreparedRequest:
        """Validates and encodes one request; raises :class:`InvalidRequestError`."""
        validate_request(request, self.limits)
        index = self.index
        k = min(int(request.k) or DEFAULT_K, self.limits.max_k, self.num_items)
        encoded = [index.get(raw, 0) for raw in request.history]
        known = [i for i in encoded if i]
        unknown: tuple[str, ...] = ()
        if len(known) != len(encoded):
            unknown = tuple(dict.fromkeys(r for r, i in zip(request.history, encoded) if not i))
        window = known[-self.max_len :]
        deny = [index.get(raw, 0) for raw in request.excluded_items]
        if not request.include_history and len(known) > self.max_len:
            # Engines exclude the items they see; older ones are denied here.
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
