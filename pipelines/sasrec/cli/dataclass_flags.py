"""Command-line flags derived from option dataclasses, so flags and options cannot drift.

Each field of an option dataclass (``SASRecConfig``, ``TrainOptions``,
``DataOptions``, ``ReaderOptions``) becomes one flag: its name is the field's
name in kebab case, its type and default come from the field, its help text
from the ``Args:`` section of the class docstring. A :class:`Flag` changes
the spelling where the command line has its own (``--norm pre|post`` for
``norm_first``), converting in both directions so the default is still the
field's.

Example:
    >>> import argparse
    >>> from sasrec.training.options import TrainOptions
    >>> parser = argparse.ArgumentParser()
    >>> fields = add_field_flags(parser, TrainOptions, prefix="train_")
    >>> args = parser.parse_args(["--epochs", "3"])
    >>> TrainOptions(**values_from_args(args, TrainOptions, prefix="train_")).epochs
    3
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

_UNSET: Any = object()
_METAVARS = {int: "N", float: "X", str: "TEXT"}


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one dataclass field is spelt on the command line, where it differs from the field.

    Args:
        names: Option strings; the default is ``--field-name``.
        type: Parses the flag's text (default: from the field's annotation).
        choices: Allowed values in the command line's spelling.
        to_field: Command-line value -> field value.
        from_field: Field value -> command-line value (turns the field's
            default into the flag's default).
        help: Replaces the docstring's text.
        metavar: Shown in ``--help`` for the value.

    Example:
        >>> Flag(names=("--norm",), choices=("pre", "post"),
        ...      to_field=lambda v: v == "pre", from_field=lambda v: "pre" if v else "post")
        ... # doctest: +ELLIPSIS
        Flag(names=('--norm',), ...)
    """

    names: tuple[str, ...] = ()
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    to_field: Callable[[Any], Any] | None = None
    from_field: Callable[[Any], Any] | None = None
    help: str | None = None
    metavar: str | None = None


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its one-paragraph text from the class docstring's ``Args:`` section.

    Example:
        >>> from sasrec.training.options import TrainOptions
        >>> field_docs(TrainOptions)["epochs"]
        'Maximum epochs.'
    """
    doc = inspect.getdoc(cls) or ""
    docs: dict[str, str] = {}
    in_args = False
    name = None
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break  # the next section (Example:, Raises:, ...)
        entry = re.match(r"^ {4}(\w+)(?: \(.*?\))?: ?(.*)$", line)
        if entry:
            name = entry.group(1)
            docs[name] = entry.group(2).strip()
        elif name and line.strip():
            docs[name] += " " + line.strip()
    return {k: _plain(v) for k, v in docs.items()}


def _plain(text: str) -> str:
    """Docstring markup -> terminal text; ``%`` escaped for argparse."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text)
    text = text.replace("``", "")
    return text.replace("%", "%%")


def kebab(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def comma_list(text: str) -> tuple[str, ...]:
    """``"view,cart"`` -> ``("view", "cart")`` (empty items dropped)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _UNSET


def add_field_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str,
    flags: Mapping[str, Flag] | None = None,
    exclude: Collection[str] = (),
    only: Collection[str] | None = None,
    unset_default: bool = False,
    default_note: str = "",
) -> list[str]:
    """Adds one flag per field of ``cls`` to ``parser``; returns the field names added.

    Args:
        parser: Parser or argument group to add to.
        cls: The option dataclass.
        prefix: Prefix of the ``argparse`` destinations (``prefix + field``),
            keeping the fields of different classes apart.
        flags: Spellings that differ from the defaults, by field name.
        exclude: Fields without a flag.
        only: If given, just these fields (in this order).
        unset_default: The flag's default is ``None`` ("not given"), so a
            value set elsewhere (a reader preset) wins; the help still shows
            the field's default.
        default_note: Appended to the shown default (e.g. ", or the preset's").
    """
    flags = flags or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else [n for n in by_name if n not in exclude]
    for name in names:
        field = by_name[name]
        spec = flags.get(name, Flag())
        default = _field_default(field)
        if spec.from_field is not None:
            default = spec.from_field(default)
        base, _ = _unwrap_optional(hints[name])
        text = spec.help or docs.get(name) or f"see {cls.__name__}.{name}"
        shown = "%(default)s" if not unset_default else str(default).replace("%", "%%")
        if default is None:
            shown = "not set"
        kwargs: dict[str, Any] = {
            "dest": prefix + name,
            "default": None if unset_default else default,
        }
        if base is bool and spec.choices is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            # A converted flag (``--norm pre``) parses its own spelling.
            converted = spec.to_field is not None and spec.choices
            kwargs["type"] = spec.type or (type(spec.choices[0]) if converted else _parser_of(base))
            kwargs["choices"] = spec.choices
            kwargs["metavar"] = spec.metavar or (
                None if spec.choices else _METAVARS.get(kwargs["type"], "VALUE")
            )
        action = parser.add_argument(*(spec.names or (kebab(name),)), **kwargs)
        # Set after construction: some Python versions' BooleanOptionalAction
        # append their own "(default: ...)" to the help they are given.
        action.help = f"{text} (default: {shown}{default_note})"
    return names


def _parser_of(annotation: Any) -> Callable[[str], Any]:
    if annotation in (int, float, str):
        return annotation
    if typing.get_origin(annotation) is tuple:
        return comma_list
    raise TypeError(f"no command-line parser for a field of type {annotation!r}")


def values_from_args(
    args: argparse.Namespace,
    cls: type,
    *,
    prefix: str,
    flags: Mapping[str, Flag] | None = None,
    names: Collection[str] | None = None,
    skip_unset: bool = False,
) -> dict[str, Any]:
    """Field name -> value, read back from parsed flags added by :func:`add_field_flags`.

    Args:
        skip_unset: Leave out flags that were not given (``None``): for
            flags added with ``unset_default=True``.
    """
    flags = flags or {}
    wanted = names if names is not None else [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for name in wanted:
        dest = prefix + name
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if skip_unset and value is None:
            continue
        spec = flags.get(name)
        if spec is not None and spec.to_field is not None:
            value = spec.to_field(value)
        values[name] = value
    return values
