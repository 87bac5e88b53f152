"""Shared checks for Keras layers, in the style of keras-hub's ``TestCase.run_layer_test``.

Every public layer of :mod:`sasrec.layers` should pass :meth:`TestCase.run_layer_test`:
its config round trips, it runs on symbolic and eager inputs with the expected
output shape, it survives ``keras.saving`` inside a model, and it computes in a
mixed-precision dtype policy. Use it from a pytest class::

    class TestMyLayer(TestCase):
        def test_layer(self):
            self.run_layer_test(MyLayer, {"units": 4}, np.ones((2, 3)), (2, 4))
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops


def _to_numpy(value: Any) -> np.ndarray:
    return ops.convert_to_numpy(value)


def _is_float(dtype: Any) -> bool:
    return "float" in keras.backend.standardize_dtype(dtype)


class TestCase:
    """Base class of layer tests; pytest collects its subclasses as usual."""

    def run_layer_test(
        self,
        cls: type[keras.layers.Layer],
        init_kwargs: dict[str, Any],
        input_data: np.ndarray,
        expected_output_shape: tuple[int | None, ...],
        expected_num_trainable_weights: int | None = None,
        mixed_precision_policy: str | None = "mixed_float16",
        mixed_precision_skip_reason: str | None = None,
    ) -> None:
        """Runs every check below on ``cls(**init_kwargs)`` and ``input_data``.

        Args:
            cls: The layer class.
            init_kwargs: Constructor arguments (without ``dtype``).
            input_data: One NumPy input batch (ids or floats).
            expected_output_shape: Shape of the eager output; the symbolic
                output must match it with the batch axis unknown.
            expected_num_trainable_weights: If set, the built layer's count.
            mixed_precision_policy: Policy of the precision check.
            mixed_precision_skip_reason: Why the layer cannot run under
                ``mixed_precision_policy``; the other checks still run and
                the test is then reported as skipped with this reason.
        """
        self.run_serialization_test(cls(**init_kwargs))
        self.run_symbolic_call_test(cls, init_kwargs, input_data, expected_output_shape)
        layer = cls(**init_kwargs)
        output = layer(input_data)
        assert tuple(output.shape) == tuple(expected_output_shape), (
            f"{cls.__name__}: eager output shape {tuple(output.shape)}, "
            f"expected {tuple(expected_output_shape)}"
        )
        assert keras.backend.standardize_dtype(output.dtype) == layer.compute_dtype
        if expected_num_trainable_weights is not None:
            assert len(layer.trainable_weights) == expected_num_trainable_weights
        self.run_saving_test(cls, init_kwargs, input_data)
        if mixed_precision_skip_reason is not None:
            policy = mixed_precision_policy
            pytest.skip(f"{cls.__name__} under {policy}: {mixed_precision_skip_reason}")
        if mixed_precision_policy is not None:
            self.run_precision_test(cls, init_kwargs, input_data, mixed_precision_policy)

    def run_serialization_test(self, layer: keras.layers.Layer) -> None:
        """``from_config(get_config())`` and ``keras.saving`` (de)serialization round trip."""
        config = layer.get_config()
        revived = type(layer).from_config(config)
        assert revived.get_config() == config
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
        revived = keras.saving.deserialize_keras_object(serialized)
        assert type(revived) is type(layer)
        assert revived.get_config() == config

    def run_symbolic_call_test(
        self,
        cls: type[keras.layers.Layer],
        init_kwargs: dict[str, Any],
        input_data: np.ndarray,
        expected_output_shape: tuple[int | None, ...],
    ) -> None:
        """The layer called on a ``keras.KerasTensor`` gives the expected output spec."""
        symbolic = keras.KerasTensor((None, *input_data.shape[1:]), dtype=str(input_data.dtype))
        layer = cls(**init_kwargs)
        output = layer(symbolic)
        assert isinstance(output, keras.KerasTensor)
        assert layer.built
        expected = tuple(expected_output_shape)
        # The batch axis is unknown; a batch-independent output (position
        # embeddings, (1, t, d)) keeps its static size.
        assert tuple(output.shape)[1:] == expected[1:]
        assert tuple(output.shape)[0] in (None, expected[0])

    def run_saving_test(
        self, cls: type[keras.layers.Layer], init_kwargs: dict[str, Any], input_data: np.ndarray
    ) -> None:
        """Saves a model made of the layer to ``.keras``, loads it: same outputs."""
        inputs = keras.Input(shape=input_data.shape[1:], dtype=str(input_data.dtype))
        model = keras.Model(inputs, cls(**init_kwargs)(inputs))
        # Non-trivial weights: fresh LayerNorms and biases would hide a
        # weight that does not round trip.
        rng = np.random.default_rng(0)
        model.set_weights([w + rng.normal(0, 0.1, w.shape) for w in model.get_weights()])
        expected = _to_numpy(model(input_data))
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.keras"
            model.save(path)
            loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(_to_numpy(loaded(input_data)), expected, rtol=1e-6, atol=1e-6)

    def run_precision_test(
        self,
        cls: type[keras.layers.Layer],
        init_kwargs: dict[str, Any],
        input_data: np.ndarray,
        policy_name: str = "mixed_float16",
    ) -> None:
        """Under a mixed policy: float outputs in the compute dtype, weights in float32."""
        policy = keras.dtype_policies.get(policy_name)
        # Through __call__, which casts float inputs to the compute dtype.
        symbolic = cls(**init_kwargs, dtype=policy)(
            keras.KerasTensor(input_data.shape, dtype=str(input_data.dtype))
        )
        layer = cls(**init_kwargs, dtype=policy)
        output = layer(input_data)
        for value in (output, symbolic):
            if _is_float(value.dtype):
                assert keras.backend.standardize_dtype(value.dtype) == policy.compute_dtype
        assert np.all(np.isfinite(_to_numpy(ops.cast(output, "float32"))))
        for weight in layer.weights:
            if _is_float(weight.dtype):
                assert keras.backend.standardize_dtype(weight.dtype) == policy.variable_dtype
        for sublayer in layer._flatten_layers():
            assert sublayer.compute_dtype == policy.compute_dtype, sublayer.name
