"""The ``"compiled"`` engine: the NumPy engine's forward pass and top-k in one C++ call.

The NumPy engine spends most of a lone request's 0.3 ms in about a hundred
NumPy calls of a microsecond each. The compiled kernel
(``sasrec/engines/kernel/scoring_kernel.cc``, an optional extension built by
``setup.py``: ``pip install``, the wheel, ``make setup``) runs the same arithmetic on the same
weights, those :class:`~sasrec.engines.numpy_sasrec.NumpySASRec` copied and
folded at load, as straight loops: the encoder over each history's real
positions (the last block for the last position only), the item scores,
the exclusions and the top-k, with the GIL released. Its answers are the
NumPy engine's: same ids, scores equal to float32 rounding
(``tests/engines/test_compiled_engine.py``).

The kernel runs the paper's ``relu`` feed-forward; a model with another
activation is refused (:func:`unavailable_reason`), and ``auto`` then
serves it with the numpy engine. One difference no request of the server
shows (its histories hold known ids only): a history whose last id is
padding gets a zero state in both engines, but an all-zero attention row
here.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sasrec.engines import numpy_sasrec
from sasrec.engines.engine import TopK
from sasrec.engines.numpy_engine import NumpyEngine
from sasrec.padding import pad_left

# The extension module setup.py builds next to this file.
KERNEL_MODULE = "sasrec.engines._scoring_kernel"


def _kernel_module() -> tuple[Any, str | None]:
    """The extension module, or None and why it cannot be imported."""
    try:
        return importlib.import_module(KERNEL_MODULE), None
    except ImportError as err:
        return None, (
            f"the compiled scoring kernel is not built ({err}); "
            "run `make setup` or reinstall the package with g++ present"
        )


def unavailable_reason(model: Any = None) -> str | None:
    """Why the compiled engine cannot serve ``model`` (None: it can).

    Example:
        >>> unavailable_reason() is None or "not built" in unavailable_reason()
        True
    """
    _, reason = _kernel_module()
    if reason is not None or model is None:
        return reason
    for index, block in enumerate(model.encoder.blocks):
        activation = block.feed_forward.inner_dense.activation
        if getattr(activation, "__name__", "") != "relu":
            return (
                f"the compiled kernel runs the relu feed-forward only; block {index} uses "
                f"{getattr(activation, '__name__', activation)!r}"
            )
    return None


class CompiledEngine(NumpyEngine):
    """Top-k of a trained SASRec in one compiled call per batch.

    The weights are the numpy engine's (copied and folded once); the kernel
    scores against its own tiled copy of the item table, made by the first
    ``top_k`` instead of the numpy engine's scoring copy (tables past that
    copy's size cap are scored in place). ``encode`` (what the ``ann``
    retrieval reads) also runs in the kernel.

    Args:
        model: A built :class:`sasrec.models.SASRec` with ``relu`` feed-forwards.

    Example:
        >>> engine = CompiledEngine(model)  # doctest: +SKIP
        >>> top = engine.top_k([np.array([3, 4]), np.array([9])], k=5)  # doctest: +SKIP
        >>> top.ids.shape, top.attention.shape  # doctest: +SKIP
        ((2, 5), (2, 2))

    Raises:
        ValueError: the kernel is not built, or the model has another activation.
    """

    name = "compiled"

    def __init__(self, model: Any) -> None:
        reason = unavailable_reason(model)
        if reason is not None:
            raise ValueError(f"engine 'compiled' unavailable: {reason}")
        super().__init__(model)
        fast = self.numpy_model
        # The kernel scores from its own tiled copy of the table (made by its
        # first top_k, and under the same size cap as the NumPy engine's
        # scoring copy; past it, from the table itself), so the NumPy
        # engine's copy would only cost memory here.
        tile_table = fast.table.nbytes <= numpy_sasrec.SCORING_COPY_MAX_BYTES
        fast.scoring_table = fast.table.T
        settings = {
            "num_items": fast.num_items,
            "max_len": fast.max_len,
            "hidden_dim": fast.hidden_dim,
            "num_heads": fast.num_heads,
            "window": fast.window,
            "norm_first": fast.norm_first,
            "scale": float(fast.scale),
            "table": fast.table,
            "tile_table": tile_table,
            "positions": fast.positions,
            "final_norm": fast.final_norm,
        }
        blocks = [
            {
                "ffn_dim": int(block.inner[0].shape[1]),
                "query_key_value": block.query_key_value,
                "output": block.output,
                "inner": block.inner,
                "ffn_output": block.ffn_output,
                "attention_norm": block.attention_norm,
                "feed_forward_norm": block.feed_forward_norm,
            }
            for block in fast.blocks
        ]
        module, _ = _kernel_module()
        self.kernel = module.Kernel(settings, blocks)

    def top_k(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        exclude_history: Sequence[bool] | bool = True,
        deny_ids: Sequence[np.ndarray] | None = None,
        allow_ids: Sequence[np.ndarray | None] | None = None,
        with_attention: bool = False,
    ) -> TopK:
        """See :meth:`sasrec.engines.engine.Engine.top_k`; the attention always comes back.

        Raises:
            TypeError: a history that is not a 1-D integer array (named by its row).
            ValueError: per-row arguments whose length is not the batch's.
        """
        ids, scores, attention = self.kernel.top_k(
            histories, int(k), exclude_history, deny_ids, allow_ids
        )
        return TopK(ids, scores, attention)

    def encode(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows left-padded, their last hidden states and last-block attention.

        Returns:
            ``(padded int (B, W), hidden float32 (B, d), attention float32 (B, W))``.
        """
        hidden, attention = self.kernel.encode(histories)
        return pad_left(histories, attention.shape[1]), hidden, attention
