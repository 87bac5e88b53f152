"""Dropout whose mask comes from an integer hash: cheap on CPU, fused by XLA."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sasrec.layers._checks import check_rate

_MUL_1 = 0x7FEB352D
_MUL_2 = 0x846CA68B


def _mix32(x: Any) -> Any:
    """The ``lowbias32`` integer hash (C. Wellons): a bijection on uint32.

    Args:
        x: uint32 tensor.

    Returns:
        uint32 tensor of the same shape whose bits are well mixed (every
        input bit flips each output bit with probability close to 1/2).
    """
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = ops.multiply(x, ops.convert_to_tensor(_MUL_1, "uint32"))
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = ops.multiply(x, ops.convert_to_tensor(_MUL_2, "uint32"))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


@keras.saving.register_keras_serializable(package="sasrec")
class HashDropout(keras.layers.Layer):
    """Inverted dropout with a counter-based hash mask instead of Philox.

    Element ``i`` (row-major index) of a call with key ``k`` is kept when
    ``_mix32(i XOR k) >= rate * 2**32`` and scaled by ``1 / (1 - rate)``; the
    key is a hash of the next state of a ``keras.random.SeedGenerator``, so
    every call draws a new mask and ``keras.utils.set_random_seed`` makes
    runs reproducible. The mask is a handful of integer element-wise ops:
    XLA fuses them into the surrounding computation, whereas TensorFlow's
    stateless Philox/ThreeFry generators are single-threaded and, under
    ``jit_compile=True`` on CPU, cost several milliseconds per call at
    SASRec sizes. Statistically each mask is i.i.d.-like (keep rate and
    neighbour correlation are tested); masks of different calls are the same
    hash read at XOR-permuted positions, which is immaterial for dropout.

    Args:
        rate: Fraction of elements dropped, in [0, 1).
        seed: Optional int seed of the layer's ``SeedGenerator``.
        **kwargs: Standard ``keras.layers.Layer`` arguments.

    Example:
        >>> drop = HashDropout(0.5, seed=1)
        >>> y = drop(keras.ops.ones((1000,)), training=True)
        >>> 0.4 < float(keras.ops.mean(y == 0)) < 0.6, float(keras.ops.max(y))
        (True, 2.0)
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The one check of every dropout rate of the model: the layers that own
        # a HashDropout pass their rate here unchecked. The layer name says
        # which rate it is (e.g. "embedding_dropout").
        check_rate(f"{type(self).__name__} {self.name!r}", "rate", rate)
        if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)):
            raise ValueError(
                f"{type(self).__name__}: seed must be None or an int, received seed={seed!r}"
            )
        self.rate = rate
        self.seed = seed
        self.supports_masking = True
        # RNG state, not a sublayer: created here (as keras.layers.Dropout
        # does) so it exists before any traced call.
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            return inputs
        seed = ops.cast(self.seed_generator.next(), "uint32")
        key = _mix32(ops.bitwise_xor(_mix32(seed[0]), seed[1]))
        shape = ops.shape(inputs)
        index = ops.reshape(ops.arange(ops.prod(shape), dtype="int32"), shape)
        bits = _mix32(ops.bitwise_xor(ops.cast(index, "uint32"), key))
        threshold = ops.convert_to_tensor(min(int(self.rate * 2**32), 2**32 - 1), "uint32")
        scaled = inputs * ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(ops.greater_equal(bits, threshold), scaled, ops.zeros_like(scaled))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
