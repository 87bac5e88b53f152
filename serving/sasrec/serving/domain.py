"""Plain value types exchanged by the predictor, the in-process API and the client.

They mirror the messages of ``protos/sasrec/serving/v1/recommender.proto`` but
carry no protobuf or gRPC: the server translates them at its edge
(:mod:`sasrec.serving.convert`), so embedding code and remote callers see the
same objects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

DEFAULT_K = 10


@dataclass(frozen=True)
class RecommendationRequest:
    """One next-item question.

    Args:
        history: Item ids the user interacted with, oldest first.
        k: Items wanted; 0 means ``DEFAULT_K`` (10).
        include_history: Allow items of the history in the answer.
        allowed_items: If non-empty, only these items may be recommended.
        excluded_items: Items never recommended.
        user_id: Opaque caller id, used only in logs.
        explain: Also explain the answer (per item and for the whole list).

    Example:
        >>> RecommendationRequest(history=("a", "b"), k=5).k
        5
    """

    history: tuple[str, ...] = ()
    k: int = DEFAULT_K
    include_history: bool = False
    allowed_items: tuple[str, ...] = ()
    excluded_items: tuple[str, ...] = ()
    user_id: str = ""
    explain: bool = False


@dataclass(frozen=True)
class HistoryAttention:
    """The share of one history item in an explanation (``explain``).

    Example:
        >>> HistoryAttention("sku-3", 0.75).weight
        0.75
    """

    item_id: str
    weight: float


@dataclass(frozen=True)
class ScoredItem:
    """One recommended item and its score (higher is better).

    Args:
        item_id: The recommended item.
        score: The model's logit (popularity count for fallback answers).
        explanation: With ``explain`` (model answers only): the history items
            that contributed most to this item, highest weight first (at most
            ``Limits.explain_top``). For history position ``j`` the
            contribution is ``a_j * max(0, E[h_j] . E[item])`` (``a_j``: the
            last position's attention, ``E``: the item table), normalised over
            the history (``a_j`` when all are 0) and summed over repeats.

    Example:
        >>> ScoredItem("sku-1", 2.5).item_id
        'sku-1'
        >>> ScoredItem("sku-1", 2.5, (HistoryAttention("sku-3", 1.0),)).explanation[0].item_id
        'sku-3'
    """

    item_id: str
    score: float
    explanation: tuple[HistoryAttention, ...] = ()


@dataclass(frozen=True)
class Recommendation:
    """The answer to one :class:`RecommendationRequest`.

    Args:
        items: Best first; fewer than ``k`` when allow/deny lists leave fewer.
        model_version: Version of the model that answered.
        unknown_items: History ids the model does not know (ignored).
        fallback: True when no history item was known and the popularity
            ranking answered.
        explanation: With ``explain``: list-level summary, the history items
            the last position attended to most, highest first (per-item
            explanations are in ``ScoredItem.explanation``).

    Example:
        >>> rec = Recommendation(items=(ScoredItem("b", 1.0),), model_version="2")
        >>> [i.item_id for i in rec.items]
        ['b']
    """

    items: tuple[ScoredItem, ...] = ()
    model_version: str = ""
    unknown_items: tuple[str, ...] = ()
    fallback: bool = False
    explanation: tuple[HistoryAttention, ...] = ()

    @property
    def item_ids(self) -> list[str]:
        """The recommended ids, best first."""
        return [item.item_id for item in self.items]


@dataclass(frozen=True)
class ModelInfo:
    """What the serving model is.

    Example:
        >>> ModelInfo(model_version="1", num_items=10, max_history_length=50).num_items
        10
    """

    model_version: str
    num_items: int
    max_history_length: int
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: dt.datetime | None = None
    sasrec_version: str = ""


@dataclass(frozen=True)
class Limits:
    """Caps on request sizes, enforced before any work is queued.

    Requests over a cap get ``INVALID_ARGUMENT`` naming the field; the caps keep
    one request's cost bounded (the history is cut to the model's
    ``max_len`` anyway, so a longer cap only bounds parsing and exclusion work).

    Args:
        max_k: Largest ``k`` (further bounded by the number of items).
        max_history: Longest ``history`` accepted.
        max_item_list: Longest ``allowed_items`` / ``excluded_items``.
        max_batch_requests: Most requests in one ``RecommendBatch``.
        explain_top: History items returned by ``explain``.

    Example:
        >>> Limits(max_k=100).max_history
        1000
    """

    max_k: int = 1000
    max_history: int = 1000
    max_item_list: int = 10_000
    max_batch_requests: int = 256
    explain_top: int = 5
