"""The loss for the catalogue: the full softmax where it is cheap, gBCE past that.

The full softmax scores every position of a batch against the whole
catalogue: its cost per step grows with the catalogue, ``batch × width ×
(N + 1)`` logits, while gBCE with ``n`` negatives per sequence scores
``batch × (width + n)``. On small catalogues the softmax is cheap and the
best loss; on Games' 23,715 items an epoch of it took about 18 times one of
BCE measured side by side, so a 10-minute budget buys it too few epochs
(docs/benchmarks.md, "The default loss"). Past :data:`SOFTMAX_MAX_ITEMS`
items a run that does not choose its loss therefore trains with gBCE
(gSASRec's recipe: :data:`LARGE_CATALOGUE_NEGATIVES` negatives, t=0.75) and
says so.

Memory bounds the softmax too: training holds three tensors of its logits'
shape at once (the logits, their softmax and the gradient). With the default
batch (128) and width (50) a 444,596-item catalogue needs 3 × 11.4 GB: the
job grew to 21 GB and was killed before the first step ended. So, before any
tensor is built:

* the loss was not chosen (no ``--loss``; no ``"loss"`` in the model
  overrides) and the catalogue has more than :data:`SOFTMAX_MAX_ITEMS` items
  or the softmax would pass the memory budget: train with gBCE, which needs
  ``batch × (width + negatives)`` scores, and say why;
* ``softmax`` was asked for explicitly past the budget:
  :class:`SoftmaxTooLargeError` (exit 2) naming the bytes, the budget and the
  flags to use instead;
* otherwise the softmax (the model's default loss) stays.

The budget is :data:`MEMORY_FRACTION` of the machine's physical memory
(a quarter: the model, Adam's two moments, the dataset's buffers, the
allocator's slack and whatever else runs on the machine need the rest). The
environment variable ``SASREC_SOFTMAX_BUDGET_BYTES`` replaces it (tests,
or a machine shared with other jobs). On a 32 GB machine with the default
batch and width the switch happens past about 104,000 items.

Example:
    >>> softmax_logit_bytes(batch_size=128, width=50, num_items=444_596)
    34145049600
"""

from __future__ import annotations

import os
from typing import Any

from sasrec.config import SASRecConfig

BUDGET_ENV = "SASREC_SOFTMAX_BUDGET_BYTES"
MEMORY_FRACTION = 0.25
# Logits, their softmax and their gradient are alive together in a step.
TENSORS_ALIVE = 3
FLOAT_BYTES = 4
LARGE_CATALOGUE_LOSS = "gbce"
LARGE_CATALOGUE_NEGATIVES = 256
# Past this many items a run without --loss trains with gBCE even when the
# softmax fits in memory (see the module docstring): the softmax stays on
# ML-1M (3,416 items) and Games' 5-core subset (10,673 items: 12 s per epoch
# on 2 cores), not on the whole of Games (23,715 items).
SOFTMAX_MAX_ITEMS = 20_000


class SoftmaxTooLargeError(ValueError):
    """``--loss softmax`` was asked for on a catalogue whose logits pass the memory budget."""


def softmax_logit_bytes(batch_size: int, width: int, num_items: int) -> int:
    """Bytes the full softmax's logits, probabilities and gradient take in one step.

    Example:
        >>> softmax_logit_bytes(batch_size=2, width=3, num_items=9)  # 3 * 2*3*10 * 4
        720
    """
    return TENSORS_ALIVE * batch_size * width * (num_items + 1) * FLOAT_BYTES


def memory_budget_bytes() -> int:
    """``SASREC_SOFTMAX_BUDGET_BYTES`` if set, else a quarter of physical memory."""
    value = os.environ.get(BUDGET_ENV)
    if value:
        try:
            budget = int(value)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV}={value!r}: expected a whole number of bytes") from None
        if budget <= 0:
            raise ValueError(f"{BUDGET_ENV}={value!r}: must be positive")
        return budget
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(physical * MEMORY_FRACTION)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n:,} bytes"


def choose_loss(
    model_overrides: dict[str, Any],
    num_items: int,
    batch_size: int,
    budget_bytes: int | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The model overrides to train with, and a one-line note when the loss was switched.

    Args:
        model_overrides: ``SASRecConfig`` fields given by the user; a
            ``"loss"`` key means the loss was chosen explicitly.
        num_items: Catalogue size (the data's vocabulary).
        batch_size: Training windows per batch.
        budget_bytes: The memory budget; ``None``: :func:`memory_budget_bytes`.

    Raises:
        SoftmaxTooLargeError: explicit ``softmax`` past the budget.

    Example:
        >>> overrides, note = choose_loss({"max_len": 10}, 1000, 10, budget_bytes=10_000)
        >>> overrides["loss"], overrides["num_negatives"]
        ('gbce', 256)
        >>> choose_loss({"max_len": 10}, 1000, 10, budget_bytes=10**9)
        ({'max_len': 10}, None)
        >>> choose_loss({}, 23_715, 128, budget_bytes=10**12)[0]["loss"]
        'gbce'
    """
    config = SASRecConfig(num_items=num_items, **model_overrides)
    if config.loss != "softmax":
        return model_overrides, None
    needed = softmax_logit_bytes(batch_size, config.max_len, num_items)
    budget = memory_budget_bytes() if budget_bytes is None else budget_bytes
    if needed <= budget:
        if "loss" in model_overrides or num_items <= SOFTMAX_MAX_ITEMS:
            return model_overrides, None
        why = (
            f"{num_items:,} items, more than {SOFTMAX_MAX_ITEMS:,}: the full softmax's "
            f"{num_items + 1:,} scores per position cost many times gBCE's"
        )
        return _large_catalogue(model_overrides, config, why)
    why = (
        f"the full softmax over {num_items:,} items needs about {_gb(needed)} "
        f"({needed:,} bytes: {TENSORS_ALIVE} × batch {batch_size} × width {config.max_len} × "
        f"{num_items + 1:,} float32) per step, past the memory budget of {_gb(budget)} "
        f"({budget:,} bytes)"
    )
    if "loss" in model_overrides:
        raise SoftmaxTooLargeError(
            f"--loss softmax: {why}. Use a sampled loss: --loss {LARGE_CATALOGUE_LOSS} "
            f"--num-negatives {LARGE_CATALOGUE_NEGATIVES} (or a smaller --batch-size/--max-len; "
            f"{BUDGET_ENV} sets the budget)"
        )
    return _large_catalogue(model_overrides, config, why)


def _large_catalogue(
    model_overrides: dict[str, Any], config: SASRecConfig, why: str
) -> tuple[dict[str, Any], str]:
    """gBCE instead of the default softmax, and the line that says why."""
    # Negatives the user chose are kept; otherwise gSASRec's number.
    negatives = model_overrides.get("num_negatives", LARGE_CATALOGUE_NEGATIVES)
    chosen = {**model_overrides, "loss": LARGE_CATALOGUE_LOSS, "num_negatives": negatives}
    note = (
        f"loss: {LARGE_CATALOGUE_LOSS} with {negatives} negatives, t={config.gbce_t} "
        f"(not the default softmax: {why}; pass --loss to choose)"
    )
    return chosen, note
