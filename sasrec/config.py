"""Typed hyper-parameters of the SASRec model, as one flat bundle.

:class:`SASRecConfig` is what the CLI fills in and what a model version
stores as ``config.json``: the encoder's settings
(:class:`sasrec.layers.SASRecEncoder`) and the task's
(:class:`sasrec.models.SASRec`) side by side. ``config.build_model()`` (or
``SASRec(**config.to_dict())``) builds the model, and
``SASRecConfig.from_dict(model.get_config())`` recovers the config. The
config checks nothing itself: making one constructs the encoder (without
building it) and checks the task arguments, so each field is checked by the
layer that uses it. ``num_items``, ``max_len`` and the dropout rates belong to
layers that hold weights or random state; they are checked when the model is
built (``build_model``).

This module imports no Keras at import time (the CLI reads the constants).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sasrec.models import SASRec

LOSSES = ("bce", "sampled_softmax", "softmax", "gbce")
POSITION_EMBEDDINGS = ("learned", "sinusoidal")
# Which positions share a draw of negatives (the sampled losses).
NEGATIVE_SHARINGS = ("sequence", "batch")


@dataclass(frozen=True)
class SASRecConfig:
    """Hyper-parameters of :class:`sasrec.models.SASRec`.

    Args:
        num_items: N; item ids are 1..N and 0 is padding.
        max_len: Longest history the model reads (T).
        hidden_dim: Embedding and model width d.
        num_blocks: Number of transformer blocks.
        num_heads: Attention heads; must divide ``hidden_dim``.
        ffn_dim: Inner width of the point-wise feed-forward (default d).
        dropout: Dropout on embeddings, feed-forward and residual branches.
        attention_dropout: Dropout on attention weights (default ``dropout``).
        norm_first: Pre-LayerNorm blocks (True) or post-LayerNorm (False).
        position_embedding: ``"learned"`` (SASRec) or ``"sinusoidal"``.
        attention_window: If set, position t attends only to t-w+1..t.
        loss: ``"bce"`` (paper, one negative), ``"sampled_softmax"``,
            ``"softmax"`` (full cross-entropy) or ``"gbce"``.
        num_negatives: Negatives per position for the sampled losses.
        negative_sharing: ``"sequence"``: one negative per position when
            ``num_negatives`` is 1, else one set per sequence shared by its
            positions (gSASRec). ``"batch"``: one set of ``num_negatives``
            distinct items for the whole batch, scored by every valid
            position (a ``(positions, d) x (d, n)`` matmul, like the full
            softmax on ``n`` columns); must be fewer than ``num_items``.
        gbce_t: The calibration parameter t of gBCE (0 gives plain BCE).
        loss_denominator: None: the loss is the mean over each batch's valid
            positions. A number C: the summed position losses are divided by
            C instead, so every position weighs the same whatever batch it
            lands in. With length-bucketed batches (short histories batched
            together) the per-batch mean gives a position of a short batch
            many times the weight of one in a long batch; ``sasrec train``
            sets C to the epoch's mean valid positions per batch, the weight
            a position has in the reference's randomly mixed batches.

    Example:
        >>> cfg = SASRecConfig(num_items=100, hidden_dim=32, num_heads=2)
        >>> SASRecConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    num_items: int
    max_len: int = 50
    hidden_dim: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    ffn_dim: int | None = None
    dropout: float = 0.2
    attention_dropout: float | None = None
    norm_first: bool = True
    position_embedding: str = "learned"
    attention_window: int | None = None
    loss: str = "softmax"
    num_negatives: int = 1
    negative_sharing: str = "sequence"
    gbce_t: float = 0.75
    loss_denominator: float | None = None

    def __post_init__(self) -> None:
        # Imported here: Keras is loaded only once a config is made.
        from sasrec.models.sasrec import SASRec

        # Raises ValueError naming the bad field and its value. No weight is
        # created and no seed drawn, so making a config never changes the
        # initial weights of a model built afterwards on the same seed.
        SASRec.check_arguments(**self.to_dict())

    def build_model(self, **kwargs: Any) -> SASRec:
        """A new :class:`sasrec.models.SASRec` with these settings, built.

        Args:
            **kwargs: Standard ``keras.Model`` arguments (``name``, ``dtype``).
        """
        from sasrec.models.sasrec import SASRec

        return SASRec(**self.to_dict(), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SASRecConfig:
        """Builds a config, ignoring keys that are not fields (e.g. Keras ``name``).

        ``data`` is flat (``to_dict``, ``config.json``, a model saved before
        the encoder was nested) or ``SASRec.get_config()``, whose serialized
        ``encoder`` entry holds the encoder's settings.
        """
        encoder = data.get("encoder")
        if isinstance(encoder, dict) and isinstance(encoder.get("config"), dict):
            data = {**encoder["config"], **{k: v for k, v in data.items() if k != "encoder"}}
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> SASRecConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> SASRecConfig:
        return dataclasses.replace(self, **changes)
