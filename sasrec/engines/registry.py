"""Engines by name: what ``sasrec serve --engine`` and ``Predictor(engine=...)`` accept.

Importing this module loads neither NumPy nor TensorFlow (the CLI lists the
names at start-up); an engine's module is imported when one is created.

``auto`` (the default) is the one place that picks an engine:
``compiled`` when its kernel is built and runs the model, else ``numpy``
(:func:`resolve_engine`).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sasrec.engines.engine import Engine

# Name -> "module:class".
_ENGINE_CLASSES = {
    "compiled": "sasrec.engines.compiled_engine:CompiledEngine",
    "numpy": "sasrec.engines.numpy_engine:NumpyEngine",
    "tensorflow": "sasrec.engines.tensorflow_engine:TensorFlowEngine",
}
AUTO_ENGINE = "auto"
ENGINES: tuple[str, ...] = (AUTO_ENGINE, *_ENGINE_CLASSES)
DEFAULT_ENGINE = AUTO_ENGINE
# Engines that run the encoder in NumPy arrays (an `encode` the ANN retrieval
# reads, NumPy's BLAS threads): every one but the TensorFlow graph.
NUMPY_ENGINES: tuple[str, ...] = (AUTO_ENGINE, "compiled", "numpy")

logger = logging.getLogger("sasrec.engines")


def resolve_engine(name: str, model: Any = None) -> str:
    """The concrete engine ``name`` stands for: ``auto`` -> ``compiled`` or ``numpy``.

    ``auto`` is ``compiled`` when the kernel is built (``make setup``) and runs
    ``model`` (a ``relu`` feed-forward), else ``numpy``, with a log line saying why.

    Example:
        >>> resolve_engine("tensorflow")
        'tensorflow'
        >>> resolve_engine("auto") in ("compiled", "numpy")
        True
    """
    check_engine_name(name)
    if name != AUTO_ENGINE:
        return name
    from sasrec.engines.compiled_engine import unavailable_reason

    reason = unavailable_reason(model)
    if reason is None:
        return "compiled"
    logger.info("engine auto: numpy", extra={"fields": {"reason": reason}})
    return "numpy"


def create_engine(name: str, model: Any) -> Engine:
    """Builds the engine called ``name`` for a trained model.

    Args:
        name: One of :data:`ENGINES`: ``"auto"`` (the compiled kernel when
            built, else numpy), ``"compiled"``, ``"numpy"`` or
            ``"tensorflow"`` (the exported graph).
        model: A built :class:`sasrec.models.SASRec`.

    Example:
        >>> engine = create_engine("tensorflow", model)  # doctest: +SKIP
        >>> engine.name  # doctest: +SKIP
        'tensorflow'

    Raises:
        ValueError: an unknown name (the message lists the known ones), or
            ``compiled`` when its kernel is not built or cannot run the model.
    """
    module_name, class_name = _ENGINE_CLASSES[resolve_engine(name, model)].split(":")
    return getattr(importlib.import_module(module_name), class_name)(model)


def check_engine_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is a registered engine.

    Example:
        >>> check_engine_name("jax")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: engine must be one of ('auto', ...), received engine='jax'
    """
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, received engine={name!r}")
