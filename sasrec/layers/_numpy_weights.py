"""Float32 NumPy copies of Keras sublayer weights, for ``numpy_weights()`` (private)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def array(variable: Any) -> np.ndarray:
    """A C-contiguous float32 copy of a variable (the NumPy path reads it row-major)."""
    return np.ascontiguousarray(np.asarray(variable, dtype=np.float32))


def dense(layer: keras.layers.Dense) -> dict[str, np.ndarray | None]:
    """``{"kernel": (d_in, d_out), "bias": (d_out,) or None}``."""
    return {"kernel": array(layer.kernel), "bias": array(layer.bias) if layer.use_bias else None}


def layer_norm(layer: keras.layers.LayerNormalization) -> dict[str, Any]:
    """``{"gamma": (d,), "beta": (d,), "epsilon": float}``."""
    return {"gamma": array(layer.gamma), "beta": array(layer.beta), "epsilon": float(layer.epsilon)}
