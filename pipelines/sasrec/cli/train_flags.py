"""The model and training flags of ``sasrec train``, derived from the option dataclasses.

Every :class:`~sasrec.config.SASRecConfig` field but ``num_items`` (the data
sets it) is a flag of the "model" group, every
:class:`~sasrec.training.options.TrainOptions` field one of the "training"
group; names, types, defaults and help text come from the fields, so a new
field is a new flag. :data:`MODEL_FLAGS` and :data:`TRAIN_FLAGS` hold the
spellings kept from earlier releases.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_model_flags(parser); add_training_flags(parser)
    >>> args = parser.parse_args(["--norm", "post", "--lr", "0.01"])
    >>> model_overrides_from_args(args)["norm_first"], train_options_from_args(args).learning_rate
    (False, 0.01)
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from sasrec.cli.dataclass_flags import Flag, add_field_flags, values_from_args
from sasrec.config import LOSSES, NEGATIVE_SHARINGS, POSITION_EMBEDDINGS, SASRecConfig
from sasrec.training.distribution import STRATEGIES
from sasrec.training.loss_choice import SOFTMAX_MAX_ITEMS
from sasrec.training.options import (
    LOSS_NORMALIZATIONS,
    NEGATIVE_EXCLUSIONS,
    TRAINED_WINDOWS,
    TrainOptions,
)

MODEL_PREFIX = "model_"
TRAIN_PREFIX = "train_"

# Set from the data, not by a flag.
MODEL_FIELDS_FROM_DATA = ("num_items",)

# Flags whose default is "not given" (None): the training job resolves them
# from the data (``sasrec.training.loss_choice``: past a catalogue size or the
# memory budget the default softmax becomes gBCE with 256 negatives). Their defaults are still
# the SASRecConfig fields', defined there once.
MODEL_FIELDS_RESOLVED_LATER = ("loss", "num_negatives")

MODEL_FLAGS: dict[str, Flag] = {
    "norm_first": Flag(
        names=("--norm",),
        choices=("pre", "post"),
        to_field=lambda value: value == "pre",
        from_field=lambda first: "pre" if first else "post",
        help="Pre-LayerNorm blocks (pre) or post-LayerNorm, as in the paper (post).",
    ),
    "position_embedding": Flag(choices=POSITION_EMBEDDINGS),
    "loss": Flag(choices=LOSSES),
    "negative_sharing": Flag(choices=NEGATIVE_SHARINGS),
}

TRAIN_FLAGS: dict[str, Flag] = {
    "learning_rate": Flag(names=("--learning-rate", "--lr"), metavar="RATE"),
    "beta_2": Flag(metavar="BETA"),
    "sampled_eval": Flag(names=("--sampled-eval", "--sampled")),
    "negatives": Flag(
        # "unseen": the earlier spelling of "window".
        choices=(*NEGATIVE_EXCLUSIONS, "unseen"),
        to_field=lambda value: "window" if value == "unseen" else value,
        help="Training negatives: never an item of the window (window; 'unseen' is an "
        "older spelling), never an item of the user's training sequence (history, the SASRec "
        "reference's sampler; not with --prepared) or any item but the target (uniform).",
    ),
    "trained_windows": Flag(
        choices=TRAINED_WINDOWS,
        help="Train every target (all) or only each user's newest max-len targets (newest, "
        "as the SASRec reference).",
    ),
    "bucket_multiple": Flag(
        to_field=lambda value: value or None,
        from_field=lambda value: value or 0,
        help="Batch widths are multiples of this; 0: the geometric widths 1, 2, 3, 4, 6, 8, "
        "12, ... (fewer padded positions, more shapes for XLA to compile in the first epoch: "
        "a win for long runs; 8 suits runs of a few epochs).",
    ),
    "verbose": Flag(
        choices=(0, 1, 2),
        help="Keras progress bar (1), one line per epoch (2) or silent (0).",
    ),
    "loss_normalization": Flag(choices=LOSS_NORMALIZATIONS),
    "strategy": Flag(choices=STRATEGIES),
}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (SASRecConfig)")
    add_field_flags(
        group, SASRecConfig, prefix=MODEL_PREFIX, flags=MODEL_FLAGS, exclude=MODEL_FIELDS_FROM_DATA
    )
    # From the fields, not an instance: building a config imports TensorFlow,
    # which must wait until the console is configured.
    defaults = {f.name: f.default for f in dataclasses.fields(SASRecConfig)}
    notes = {
        "loss": f"Not given: softmax up to {SOFTMAX_MAX_ITEMS:,} items, gbce past that or "
        "when the full softmax would pass its memory budget (see README, Training on your logs).",
        "num_negatives": "Not given: 256 when gbce is chosen for a large catalogue.",
    }
    for action in group._group_actions:
        name = action.dest.removeprefix(MODEL_PREFIX)
        if name in MODEL_FIELDS_RESOLVED_LATER:
            # None = "not given"; the job resolves it (the shown default is the field's).
            action.default = None
            text = action.help.rsplit(" (default: ", 1)[0]
            action.help = f"{text} {notes[name]} (default: {defaults[name]})"


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (TrainOptions)")
    add_field_flags(group, TrainOptions, prefix=TRAIN_PREFIX, flags=TRAIN_FLAGS)


def model_overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``SASRecConfig`` fields from the model flags (all but ``num_items``).

    ``loss`` and ``num_negatives`` are present only when given on the command line.
    """
    values = values_from_args(args, SASRecConfig, prefix=MODEL_PREFIX, flags=MODEL_FLAGS)
    for name in MODEL_FIELDS_RESOLVED_LATER:
        if values.get(name) is None:
            values.pop(name, None)
    return values


def train_options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        **values_from_args(args, TrainOptions, prefix=TRAIN_PREFIX, flags=TRAIN_FLAGS)
    )
