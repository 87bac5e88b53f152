"""Translation between protobuf messages and the plain domain objects.

Used by the servicer (server side) and :class:`RecommenderClient`, so both
edges agree field by field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from sasrec.serving.domain import (
    HistoryAttention,
    ModelInfo,
    Recommendation,
    RecommendationRequest,
    ScoredItem,
)
from sasrec.serving.v1 import recommender_pb2 as pb


def request_from_proto(msg: pb.RecommendRequest) -> RecommendationRequest:
    """``RecommendRequest`` -> :class:`RecommendationRequest` (``k`` 0 stays 0: default)."""
    return RecommendationRequest(
        history=tuple(msg.history),
        k=msg.k,
        include_history=msg.include_history,
        allowed_items=tuple(msg.allowed_items),
        excluded_items=tuple(msg.excluded_items),
        user_id=msg.user_id,
        explain=msg.explain,
    )


def request_to_proto(req: RecommendationRequest) -> pb.RecommendRequest:
    return pb.RecommendRequest(
        history=list(req.history),
        k=req.k,
        include_history=req.include_history,
        allowed_items=list(req.allowed_items),
        excluded_items=list(req.excluded_items),
        user_id=req.user_id,
        explain=req.explain,
    )


def recommendation_to_proto(rec: Recommendation) -> pb.RecommendResponse:
    msg = pb.RecommendResponse(
        model_version=rec.model_version,
        unknown_items=rec.unknown_items,
        fallback=rec.fallback,
    )
    items = msg.items
    for i in rec.items:
        added = items.add(item_id=i.item_id, score=i.score)
        if i.explanation:
            added.explanation.extend(_attention_to_proto(i.explanation))
    if rec.explanation:
        msg.explanation.extend(_attention_to_proto(rec.explanation))
    return msg


def recommendation_from_proto(msg: pb.RecommendResponse) -> Recommendation:
    return Recommendation(
        items=tuple(
            ScoredItem(i.item_id, i.score, _attention_from_proto(i.explanation)) for i in msg.items
        ),
        model_version=msg.model_version,
        unknown_items=tuple(msg.unknown_items),
        fallback=msg.fallback,
        explanation=_attention_from_proto(msg.explanation),
    )


def _attention_to_proto(entries: tuple[HistoryAttention, ...]) -> list[pb.HistoryAttention]:
    return [pb.HistoryAttention(item_id=e.item_id, weight=e.weight) for e in entries]


def _attention_from_proto(entries: Any) -> tuple[HistoryAttention, ...]:
    return tuple(HistoryAttention(e.item_id, e.weight) for e in entries)


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    msg = pb.ModelInfo(
        model_version=info.model_version,
        num_items=info.num_items,
        max_history_length=info.max_history_length,
        metrics=info.metrics,
        sasrec_version=info.sasrec_version,
    )
    if info.trained_at is not None:
        msg.trained_at.FromDatetime(info.trained_at.astimezone(dt.timezone.utc))
    return msg


def model_info_from_proto(msg: pb.ModelInfo) -> ModelInfo:
    trained_at = None
    if msg.HasField("trained_at"):
        trained_at = _timestamp_to_datetime(msg.trained_at)
    return ModelInfo(
        model_version=msg.model_version,
        num_items=msg.num_items,
        max_history_length=msg.max_history_length,
        metrics=dict(msg.metrics),
        trained_at=trained_at,
        sasrec_version=msg.sasrec_version,
    )


def _timestamp_to_datetime(ts: Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.timezone.utc)
