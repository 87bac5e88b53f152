"""Typed hyper-parameters of the SASRec model.

The fields of :class:`SASRecConfig` are exactly the constructor arguments of
:class:`sasrec.models.SASRec`, so ``SASRec(**config.to_dict())`` builds the
model and ``SASRecConfig.from_dict(model.get_config())`` recovers it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

LOSSES = ("bce", "sampled_softmax", "softmax", "gbce")
POSITION_EMBEDDINGS = ("learned", "sinusoidal")


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
    gbce_t: float = 0.75
    loss_denominator: float | None = None

    def __post_init__(self) -> None:
        validate_model_arguments(**self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SASRecConfig:
        """Builds a config, ignoring keys that are not fields (e.g. Keras ``name``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> SASRecConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> SASRecConfig:
        return dataclasses.replace(self, **changes)


def _require(ok: bool, field: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f"SASRecConfig.{field} {rule}, received {field}={value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_model_arguments(
    num_items: int,
    max_len: int,
    hidden_dim: int,
    num_blocks: int,
    num_heads: int,
    ffn_dim: int | None,
    dropout: float,
    attention_dropout: float | None,
    norm_first: bool,
    position_embedding: str,
    attention_window: int | None,
    loss: str,
    num_negatives: int,
    gbce_t: float,
    loss_denominator: float | None = None,
) -> None:
    """Raises ``ValueError`` naming the first bad field and its value."""
    _require(_is_int(num_items) and num_items >= 1, "num_items", num_items, "must be an int >= 1")
    _require(_is_int(max_len) and max_len >= 1, "max_len", max_len, "must be an int >= 1")
    _require(
        _is_int(hidden_dim) and hidden_dim >= 1, "hidden_dim", hidden_dim, "must be an int >= 1"
    )
    _require(
        _is_int(num_blocks) and num_blocks >= 1, "num_blocks", num_blocks, "must be an int >= 1"
    )
    _require(_is_int(num_heads) and num_heads >= 1, "num_heads", num_heads, "must be an int >= 1")
    _require(
        hidden_dim % num_heads == 0,
        "num_heads",
        num_heads,
        f"must divide hidden_dim={hidden_dim}",
    )
    _require(
        ffn_dim is None or (_is_int(ffn_dim) and ffn_dim >= 1),
        "ffn_dim",
        ffn_dim,
        "must be None or an int >= 1",
    )
    for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if name == "attention_dropout" and value is None:
            continue
        _require(
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1,
            name,
            value,
            "must be a number in [0, 1)",
        )
    _require(isinstance(norm_first, bool), "norm_first", norm_first, "must be a bool")
    _require(
        position_embedding in POSITION_EMBEDDINGS,
        "position_embedding",
        position_embedding,
        f"must be one of {POSITION_EMBEDDINGS}",
    )
    _require(
        attention_window is None or (_is_int(attention_window) and attention_window >= 1),
        "attention_window",
        attention_window,
        "must be None or an int >= 1",
    )
    _require(loss in LOSSES, "loss", loss, f"must be one of {LOSSES}")
    _require(
        _is_int(num_negatives) and num_negatives >= 1,
        "num_negatives",
        num_negatives,
        "must be an int >= 1",
    )
    _require(
        isinstance(gbce_t, int | float) and not isinstance(gbce_t, bool) and 0 <= gbce_t <= 1,
        "gbce_t",
        gbce_t,
        "must be a number in [0, 1]",
    )
    _require(
        loss_denominator is None
        or (
            isinstance(loss_denominator, int | float)
            and not isinstance(loss_denominator, bool)
            and loss_denominator > 0
            and loss_denominator < float("inf")
        ),
        "loss_denominator",
        loss_denominator,
        "must be None or a finite number > 0",
    )
