"""Early argument validation shared by the layers (private)."""

from __future__ import annotations

from typing import Any

from keras import ops


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(layer: str, name: str, value: Any) -> None:
    if not (_is_int(value) and value >= 1):
        raise ValueError(f"{layer}: {name} must be an int >= 1, received {name}={value!r}")


def check_optional_positive_int(layer: str, name: str, value: Any) -> None:
    if value is not None:
        check_positive_int(layer, name, value)


def check_rate(layer: str, name: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
    if not ok:
        raise ValueError(f"{layer}: {name} must be a number in [0, 1), received {name}={value!r}")


def check_bool(layer: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{layer}: {name} must be a bool, received {name}={value!r}")


def checked_width(layer: Any, inputs: Any) -> Any:
    """Width (axis 1) of ``inputs``; raises if statically known to exceed ``layer.max_len``."""
    width = ops.shape(inputs)[1]
    if isinstance(width, int) and width > layer.max_len:
        raise ValueError(
            f"{type(layer).__name__}: input width must be <= max_len={layer.max_len}, "
            f"received width {width}"
        )
    return width
