"""What the console shows: our progress and report, TensorFlow's own logs only on request.

TensorFlow's C++ runtime logs to stderr from the moment it loads (CPU
feature notices, a ``Type inference failed`` dump of the tf.data graph,
absl's "log messages before InitializeLog" line): about 80 lines before
the first epoch that a user cannot act on. Its threshold is read from
``TF_CPP_MIN_LOG_LEVEL`` once, when TensorFlow is first imported, so
:func:`configure_console` must run before that; the command line imports
TensorFlow only inside its handlers, which call it first.

The flag lives on each command that loads TensorFlow (``train``,
``evaluate``, ``demo``), like ``sasrec serve --log-level``: a user finds it in
that command's ``--help`` and writes it after the command, where all the
other flags go.

Example:
    >>> configure_console("warning")  # doctest: +SKIP
    >>> import tensorflow  # silent  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile

from sasrec.stderr_handler import StderrHandler

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "warning"

# TF_CPP_MIN_LOG_LEVEL: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR. Below
# debug TensorFlow's errors are hidden too: the ones it logs while training
# are about its own caches and graph rewrites; a failure that matters raises
# a Python exception, which the command line reports.
_TF_CPP_LEVEL = {"debug": "0", "info": "3", "warning": "3", "error": "3"}

_TENSORFLOW_LOGGERS = ("tensorflow", "absl", "keras", "h5py")

# What TensorFlow's native libraries print while they load, whatever
# TF_CPP_MIN_LOG_LEVEL says: on CPUs where oneDNN is on by default (AVX-512
# with VNNI/BF16), port.cc logs "oneDNN custom operations are on" through absl
# before absl reads any threshold, with absl's "before InitializeLog" notice.
_IMPORT_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
    r"[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ (port|cpu_feature_guard)\.cc:\d+\])"
)


def add_log_level_flag(parser: argparse.ArgumentParser) -> None:
    """Adds ``--log-level`` to a command that loads TensorFlow."""
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=DEFAULT_LOG_LEVEL,
        help="Python logging level; 'debug' also shows TensorFlow's own (C++ and Python) "
        "logs, hidden otherwise (default: %(default)s)",
    )


def configure_console(level: str) -> None:
    """Sets TensorFlow's and Python's log thresholds for ``level`` (one of ``LOG_LEVELS``).

    Call before TensorFlow is imported: its C++ threshold is fixed at import.
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, received {level!r}")
    # TensorFlow's C++ logging, absl's "before InitializeLog" notice included,
    # honours this one variable.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = _TF_CPP_LEVEL[level]
    python_level = getattr(logging, level.upper())
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(python_level)
    quiet = python_level if level == "debug" else logging.ERROR
    for name in _TENSORFLOW_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    if level != "debug":
        import_tensorflow_quietly()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with the notices its libraries print while loading left out.

    The process's stderr (file descriptor 2, where native code writes) goes to
    a temporary file for the import; every line that is not a known loading
    notice is written back, so an import error or an unknown warning still
    shows. A no-op when TensorFlow is already imported.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(True)
                if not _IMPORT_NOISE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
