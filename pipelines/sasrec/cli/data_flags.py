"""The one set of data-input flags: reader, cleaning, k-core and split.

Every command that reads an interaction log (``sasrec data stats``,
``sasrec train``, ``sasrec evaluate``) adds these flags with
:func:`add_data_flags` and turns them into a
:class:`~sasrec.training.options.DataOptions` with
:func:`data_options_from_args`, so the commands parse ``--sep tab`` the same
way and ``data stats`` shows what ``train`` will drop. Defaults are the
fields' defaults of ``DataOptions`` and ``ReaderOptions``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_data_flags(parser)
    >>> options = data_options_from_args(parser.parse_args(["--data", "log.csv", "--sep", "tab"]))
    >>> options.reader, options.min_user
    ({'sep': '\\t'}, 5)
"""

from __future__ import annotations

import argparse
import codecs
from typing import Any

from sasrec.cli.dataclass_flags import Flag, add_field_flags, values_from_args
from sasrec.data.presets import preset_names
from sasrec.data.reader_options import FORMATS, TIMESTAMP_UNITS, ReaderOptions
from sasrec.training.options import SPLITS, DataOptions

SEPARATOR_NAMES = {"tab": "\t", "space": " ", "comma": ",", "semicolon": ";", "pipe": "|"}

DATA_PREFIX = "data_"
READER_PREFIX = "reader_"


class _NoColumn:
    """``--time-col none``: the file has no such column (distinct from "flag not given").

    Example:
        >>> parse_column("none") is NO_COLUMN, _column_value(NO_COLUMN) is None
        (True, True)
    """

    def __repr__(self) -> str:
        return "none"


NO_COLUMN = _NoColumn()


def parse_separator(text: str) -> str:
    """``tab``/``space``/``comma``/``semicolon``/``pipe``, a backslash escape, or the text itself.

    Example:
        >>> parse_separator("tab"), parse_separator("\\\\t"), parse_separator("::")
        ('\\t', '\\t', '::')
    """
    sep = SEPARATOR_NAMES.get(text.lower(), text)
    if "\\" in sep:
        try:
            sep = codecs.decode(sep, "unicode_escape")
        except UnicodeDecodeError as err:
            raise argparse.ArgumentTypeError(f"bad escape in separator {text!r}") from err
    if not sep:
        raise argparse.ArgumentTypeError("the separator must not be empty")
    return sep


def parse_column(text: str) -> str | int | _NoColumn:
    """A header name, a 0-based position (digits), or ``none`` (the file has no such column)."""
    if text.lower() == "none":
        return NO_COLUMN
    return int(text) if text.isdigit() else text


def _column_value(value: Any) -> Any:
    return None if value is NO_COLUMN else value


_COLUMN_HELP = "name, 0-based position, or 'none'"

# ReaderOptions fields with a flag; the others (optional_columns,
# strip_type_suffix, default_file, max_examples) describe file formats and
# come from the presets.
READER_FLAGS: dict[str, Flag] = {
    "format": Flag(choices=FORMATS),
    "sep": Flag(type=parse_separator, metavar="SEP"),
    "header": Flag(),
    "user": Flag(names=("--user-col",), type=parse_column, metavar="COLUMN"),
    "item": Flag(names=("--item-col",), type=parse_column, metavar="COLUMN"),
    "timestamp": Flag(
        names=("--time-col",), type=parse_column, metavar="COLUMN", to_field=_column_value
    ),
    "event": Flag(
        names=("--event-col",), type=parse_column, metavar="COLUMN", to_field=_column_value
    ),
    "rating": Flag(
        names=("--rating-col",), type=parse_column, metavar="COLUMN", to_field=_column_value
    ),
    "timestamp_unit": Flag(choices=TIMESTAMP_UNITS),
    "encoding": Flag(metavar="CODEC"),
    "strict": Flag(),
}

DATA_FLAGS: dict[str, Flag] = {
    "path": Flag(names=("--data",), metavar="PATH"),
    "preset": Flag(choices=tuple(preset_names())),
    "event_types": Flag(metavar="TYPE,TYPE"),
    "split": Flag(choices=SPLITS),
    "min_rating": Flag(metavar="RATING"),
    "test_cutoff": Flag(metavar="UNIX_TIME"),
    "valid_cutoff": Flag(metavar="UNIX_TIME"),
    "prepared": Flag(metavar="DIR"),
}


def add_data_flags(
    parser: argparse.ArgumentParser, *, note: str = "", prepared: bool = False
) -> None:
    """Adds the reader, cleaning and split flag groups to a command's parser.

    Args:
        parser: The command's parser.
        note: Extra sentence for the group's description (e.g. when the
            command ignores the flags).
        prepared: Also add ``--prepared DIR`` (a command that can read a
            PREPARED folder instead of a log).
    """
    reader = parser.add_argument_group(
        "data: reading the log",
        "How to read --data; a --preset sets its own values, these flags override them. " + note,
    )
    add_field_flags(
        reader,
        DataOptions,
        prefix=DATA_PREFIX,
        flags=DATA_FLAGS,
        only=("path", "preset", "prepared") if prepared else ("path", "preset"),
    )
    add_field_flags(
        reader,
        ReaderOptions,
        prefix=READER_PREFIX,
        flags=READER_FLAGS,
        only=tuple(READER_FLAGS),
        unset_default=True,
        default_note=", or the preset's",
    )
    cleaning = parser.add_argument_group("data: cleaning, k-core and split")
    add_field_flags(
        cleaning,
        DataOptions,
        prefix=DATA_PREFIX,
        flags=DATA_FLAGS,
        exclude=("path", "preset", "reader", "prepared"),
    )


def data_options_from_args(args: argparse.Namespace) -> DataOptions:
    """Translates the data flags into :class:`DataOptions` (no namespace goes further)."""
    reader = values_from_args(
        args, ReaderOptions, prefix=READER_PREFIX, flags=READER_FLAGS, skip_unset=True
    )
    values = values_from_args(args, DataOptions, prefix=DATA_PREFIX, flags=DATA_FLAGS)
    return DataOptions(**{**values, "reader": reader})


def data_flag_names(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of the data flags of a command's parser (for tests and docs)."""
    return {
        option
        for action in parser._actions
        if action.dest.startswith((DATA_PREFIX, READER_PREFIX))
        for option in action.option_strings
    }
