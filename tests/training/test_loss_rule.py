"""The default loss by catalogue size: the full softmax where it is cheap, gBCE past that.

Memory is not the limit in these cases (a budget of 10^12 bytes), so only
the catalogue-size rule of ``sasrec.training.loss_choice`` decides.
"""

from __future__ import annotations

import pytest

from sasrec.training.loss_choice import SOFTMAX_MAX_ITEMS, choose_loss

AMPLE = 10**12


@pytest.mark.parametrize("num_items", [1_682, 10_673, SOFTMAX_MAX_ITEMS])
def test_up_to_the_threshold_the_default_is_the_full_softmax(num_items: int) -> None:
    # ML-100K, Games' 5-core subset and the threshold: the model's default loss stays.
    assert choose_loss({"max_len": 50}, num_items, 128, budget_bytes=AMPLE) == (
        {"max_len": 50},
        None,
    )


@pytest.mark.parametrize("num_items", [SOFTMAX_MAX_ITEMS + 1, 23_715, 444_596])
def test_past_the_threshold_the_default_is_gbce_256_and_says_why(num_items: int) -> None:
    # The threshold's first catalogue, Games and the reported 444,596-item one.
    overrides, note = choose_loss({"max_len": 50}, num_items, 128, budget_bytes=AMPLE)
    assert overrides == {"max_len": 50, "loss": "gbce", "num_negatives": 256}
    assert note is not None
    assert note.startswith("loss: gbce with 256 negatives, t=0.75")
    assert f"{num_items:,} items, more than {SOFTMAX_MAX_ITEMS:,}" in note


def test_past_the_threshold_chosen_negatives_and_temperature_are_kept() -> None:
    overrides, note = choose_loss(
        {"num_negatives": 64, "gbce_t": 0.5}, SOFTMAX_MAX_ITEMS + 1, 128, budget_bytes=AMPLE
    )
    assert overrides == {"num_negatives": 64, "gbce_t": 0.5, "loss": "gbce"}
    assert note is not None and "64 negatives, t=0.5" in note


def test_an_explicit_loss_is_never_replaced_when_memory_allows() -> None:
    for loss in ("softmax", "bce", "gbce", "sampled_softmax"):
        overrides = {"loss": loss}
        assert choose_loss(overrides, 444_596, 128, budget_bytes=AMPLE) == (overrides, None)
