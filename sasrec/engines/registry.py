"""Engines by name: what ``sasrec serve --engine`` and ``Predictor(engine=...)`` accept.

Importing this module loads neither NumPy nor TensorFlow (the CLI lists the
names at start-up); an engine's module is imported when one is created.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sasrec.engines.engine import Engine

# Name -> "module:class"; the first is the default.
_ENGINE_CLASSES = {
    "numpy": "sasrec.engines.numpy_engine:NumpyEngine",
    "tensorflow": "sasrec.engines.tensorflow_engine:TensorFlowEngine",
}
ENGINES: tuple[str, ...] = tuple(_ENGINE_CLASSES)
DEFAULT_ENGINE = ENGINES[0]


def create_engine(name: str, model: Any) -> Engine:
    """Builds the engine called ``name`` for a trained model.

    Args:
        name: One of :data:`ENGINES`: ``"numpy"`` (lowest latency) or
            ``"tensorflow"`` (the exported graph).
        model: A built :class:`sasrec.models.SASRec`.

    Example:
        >>> engine = create_engine("tensorflow", model)  # doctest: +SKIP
        >>> engine.name  # doctest: +SKIP
        'tensorflow'

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    check_engine_name(name)
    module_name, class_name = _ENGINE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(model)


def check_engine_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is a registered engine.

    Example:
        >>> check_engine_name("jax")
        Traceback (most recent call last):
        ...
        ValueError: engine must be one of ('numpy', 'tensorflow'), received engine='jax'
    """
    if name not in _ENGINE_CLASSES:
        raise ValueError(f"engine must be one of {ENGINES}, received engine={name!r}")
