"""Package attributes that import their module on first use.

The command line imports the packages to register its sub-commands; a name
that loads TensorFlow, pandas or gRPC only when it is used keeps
``sasrec --help`` fast.

Example:
    >>> __all__, __getattr__, __dir__ = lazy_exports("sasrec", {"pad_left": "padding"})
    >>> __getattr__("pad_left").__name__
    'pad_left'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, a module ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: The package's dotted name (``__name__``).
        exports: Public name -> the module under ``package`` that defines it.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:  # noqa: N807
        return names

    return names, __getattr__, __dir__
