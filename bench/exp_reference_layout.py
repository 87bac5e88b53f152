"""Experiment, not product code: bench_games.py with the SASRec reference's block layout.

The reference (Kang & McAuley's TensorFlow 1 code) differs from our pre-LN
``TransformerBlock`` in three ways, all patched in here for one run:

* queries come from ``LN(x)`` but keys and values from ``x`` itself;
* the heads are not projected after attention (no output dense layer);
* both residuals add the *normalised* input:
  ``x1 = LN1(x) + Attn(LN1(x), x)``, ``x2 = LN2(x1) + FFN(LN2(x1))``.

The patch replaces ``TransformerBlock.call`` in this process only; the
model is evaluated in memory (the saved ``model.keras`` would reload with
the product layout). Arguments are those of bench_games.py::

    .venv/bin/python bench/exp_reference_layout.py --loss bce --epochs 200 \
        --eval-every 200 --patience 1000 --adam-epsilon 1e-8 \
        --label exp200-reference-layout-last-epoch
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from keras import ops

from sasrec.layers import transformer_block
from sasrec.layers.masks import merge_masks

sys.path.insert(0, str(Path(__file__).resolve().parent))


def reference_call(
    self: Any,
    x: Any,
    padding_mask: Any | None = None,
    training: bool = False,
    return_attention_scores: bool = False,
) -> Any:
    keep = None if padding_mask is None else ops.cast(padding_mask, x.dtype)[:, :, None]

    def masked(value: Any) -> Any:
        return value if keep is None else value * keep

    attention = self.attention
    batch, width = ops.shape(x)[0], ops.shape(x)[1]
    normed = self.attention_norm(x)
    query = attention._split_heads(attention.query_dense(normed), batch, width)
    key = attention._split_heads(attention.key_dense(x), batch, width)
    value = attention._split_heads(attention.value_dense(x), batch, width)
    scores = ops.cast(ops.matmul(query, ops.swapaxes(key, -1, -2)), "float32")
    scores = scores * (1.0 / math.sqrt(attention.head_dim))
    mask = merge_masks(padding_mask, width, attention.window)
    weights = ops.where(mask, ops.softmax(ops.where(mask, scores, -1e9), axis=-1), 0.0)
    dropped = attention.weights_dropout(weights, training=training)
    context = ops.matmul(ops.cast(dropped, value.dtype), value)
    x = masked(normed + attention._merge_heads(context, batch, width))
    ffn_in = self.feed_forward_norm(x)
    x = masked(ffn_in + self.feed_forward(ffn_in, training=training))
    if return_attention_scores:
        return x, weights
    return x


if __name__ == "__main__":
    transformer_block.TransformerBlock.call = reference_call
    import bench_games

    bench_games.main()
