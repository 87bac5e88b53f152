"""The predictor's parts on their own: request encoding, popularity fallback, explanations.

The end-to-end behaviour through :class:`Predictor` is in ``test_inprocess.py``;
these pin each part's rules with hand-computed answers.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sasrec.engines.registry import create_engine
from sasrec.models import SASRec
from sasrec.serving.domain import Limits, RecommendationRequest
from sasrec.serving.errors import InvalidRequestError
from sasrec.serving.explanations import AttentionExplainer
from sasrec.serving.popularity_fallback import PopularityFallback
from sasrec.serving.predictor import Predictor
from sasrec.serving.prepared_request import RequestEncoder
from sasrec.serving.request_validation import validate_request
from sasrec.vocabulary import ItemVocabulary

ITEMS = ["a", "b", "c", "d", "e", "f"]  # indices 1..6
NAMES = ("", *ITEMS)


def test_validation_reports_every_field_in_order() -> None:
    limits = Limits(max_k=5, max_history=3, max_item_list=2)
    validate_request(RecommendationRequest(history=("a", "b", "c"), k=5), limits)
    request = RecommendationRequest(
        history=("a", "b", "c", "d"), k=6, allowed_items=("a", ""), excluded_items=("x",) * 3
    )
    with pytest.raises(InvalidRequestError) as info:
        validate_request(request, limits)
    assert [v.field for v in info.value.violations] == [
        "k",
        "history",
        "allowed_items[1]",
        "excluded_items",
    ]
    with pytest.raises(InvalidRequestError, match="k: must be in 0..5"):
        validate_request(RecommendationRequest(history=("a",), k=True), limits)


def test_encoder_keeps_the_window_and_denies_older_history() -> None:
    encoder = RequestEncoder(ITEMS, max_len=3, limits=Limits())
    request = RecommendationRequest(
        history=("a", "zz", "b", "c", "d", "e", "zz", "yy"), k=0, excluded_items=("f", "qq")
    )
    prepared = encoder.prepare(request)
    assert prepared.history_ids.tolist() == [3, 4, 5]  # c, d, e: the most recent known
    assert sorted(prepared.deny_ids.tolist()) == [1, 2, 6]  # f, and a, b out of the window
    assert prepared.unknown_items == ("zz", "yy")
    assert prepared.k == len(ITEMS)  # k=0 means 10, capped by the catalogue
    assert prepared.needs_model and prepared.exclude_history and prepared.allow_ids is None
    included = encoder.prepare(RecommendationRequest(history=request.history, include_history=True))
    assert included.deny_ids.size == 0  # history allowed: nothing older to deny
    nothing = encoder.prepare(RecommendationRequest(history=("a",), allowed_items=("x", "y")))
    assert nothing.nothing_allowed and not nothing.fallback and not nothing.needs_model
    unknown = encoder.prepare(RecommendationRequest(history=("x",)))
    assert unknown.fallback and unknown.history_ids.size == 0


def test_popularity_fallback_ranks_by_count_then_index() -> None:
    counts = np.array([99, 1, 0, 7, 0, 7, 3], np.float32)  # counts[0] (padding) ignored
    fallback = PopularityFallback(counts, NAMES)
    encoder = RequestEncoder(ITEMS, max_len=4, limits=Limits())
    cold = fallback.answer(encoder.prepare(RecommendationRequest(history=("zz",), k=4)), "9")
    assert cold.item_ids == ["c", "e", "f", "a"] and cold.fallback and cold.model_version == "9"
    assert [i.score for i in cold.items] == [7.0, 7.0, 3.0, 1.0]
    denied = encoder.prepare(RecommendationRequest(k=3, excluded_items=("c", "e")))
    assert fallback.answer(denied, "9").item_ids == ["f", "a", "b"]
    allowed = encoder.prepare(RecommendationRequest(k=3, allowed_items=("b", "a", "e", "b")))
    assert fallback.answer(allowed, "9").item_ids == ["e", "a", "b"]
    # A known history with an unknown allow list: empty, not a fallback.
    none_allowed = encoder.prepare(RecommendationRequest(history=("a",), allowed_items=("q",)))
    answer = fallback.answer(none_allowed, "9")
    assert answer.items == () and not answer.fallback


def test_explanations_split_each_score_over_the_history() -> None:
    table = np.zeros((7, 2), np.float32)
    table[1:] = [[1, 0], [0, 1], [2, 0], [0, 3], [-1, -1], [1, 2]]
    explainer = AttentionExplainer(table, NAMES, explain_top=5)
    history = np.array([1, 2, 1])  # a, b, a
    attention = np.array([0.9, 0.2, 0.3, 0.5], np.float32)  # wider than the history
    summary, per_item = explainer.explain(history, attention, np.array([3, 4, 5, 6]))
    assert [(e.item_id, round(e.weight, 6)) for e in summary] == [("a", 0.7), ("b", 0.3)]
    by_item = [{e.item_id: round(e.weight, 6) for e in row} for row in per_item]
    assert by_item[0] == {"a": 1.0}  # c is aligned with a only
    assert by_item[1] == {"b": 1.0}  # d with b only
    assert by_item[2] == {"a": 0.7, "b": 0.3}  # e: every dot product < 0, the attention
    # f: b counts twice per attention unit (dot 2 vs 1): 0.6 of 1.3 against a's 0.7.
    assert by_item[3] == pytest.approx({"a": 0.7 / 1.3, "b": 0.6 / 1.3}, abs=1e-6)
    narrow = AttentionExplainer(table, NAMES, explain_top=1)
    assert [e.item_id for e in narrow.explain(history, attention, np.array([6]))[1][0]] == ["a"]
    assert explainer.explain(history, attention, np.zeros(0, np.int64))[1] == []


def test_predictor_takes_an_engine_by_name_or_built() -> None:
    keras.utils.set_random_seed(2)
    model = SASRec(num_items=6, max_len=4, hidden_dim=8, num_blocks=1, dropout=0.0)
    vocabulary = ItemVocabulary(ITEMS)
    built = create_engine("tensorflow", model)
    by_object = Predictor(model, vocabulary, {"max_len": 4}, engine=built)
    by_name = Predictor(model, vocabulary, {"max_len": 4}, engine="numpy")
    assert (by_object.engine, by_name.engine) == ("tensorflow", "numpy")
    assert by_object.scoring_engine is built
    request = RecommendationRequest(history=("a", "c"), k=3, explain=True)
    ours, theirs = by_object.recommend([request])[0], by_name.recommend([request])[0]
    assert ours.item_ids == theirs.item_ids and len(ours.items) == 3
    assert not {"a", "c"} & set(ours.item_ids)
    assert [e.item_id for e in ours.explanation] == [e.item_id for e in theirs.explanation]
