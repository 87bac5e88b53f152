"""Wraps a trained model into the evaluation scorer interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from sasrec.padding import trim_leading_padding


class Scorer:
    """``score_fn(histories int32 (B, L)) -> float32 (B, N + 1)`` over a SASRec model.

    The scoring graph is compiled once per distinct input width; leading
    all-padding columns are trimmed to a multiple of 8 first (outputs do not
    change, see ``sasrec.padding``), which makes short histories cheap.

    Args:
        model: A built :class:`sasrec.models.SASRec`.
        bucket_multiple: Width granularity of the compiled shapes.

    Example:
        >>> scorer = Scorer(model)                       # doctest: +SKIP
        >>> scores = scorer(np.array([[0, 0, 3, 7]]))    # (1, N + 1)  # doctest: +SKIP
    """

    def __init__(self, model: Any, bucket_multiple: int = 8) -> None:
        import tensorflow as tf

        self.model = model
        self.bucket_multiple = bucket_multiple
        self._fn = tf.function(
            lambda ids: model.score_last(ids),
            input_signature=[tf.TensorSpec([None, None], tf.int32)],
            reduce_retracing=True,
        )

    def __call__(self, histories: np.ndarray) -> np.ndarray:
        batch = trim_leading_padding(np.asarray(histories, dtype=np.int32), self.bucket_multiple)
        return self._fn(np.ascontiguousarray(batch)).numpy()
