"""What a run writes under ``--out``: the up-front checks, the weight files, the write faults.

A run writes its checkpoint every epoch and its version at the end, hours
after it started; a read-only or full file system must stop it before it
trains, with a message a user can act on, not after:

- :func:`prepare_output` creates ``OUT`` (read-only, no permission: refused).
- :func:`check_free_space` compares the free bytes under ``OUT`` with
  :func:`estimate_run_bytes` (the checkpoint files, sized from the model's
  parameters, and the version's files).
- :func:`write_weights` writes a ``.weights.h5`` file atomically. HDF5
  itself never writes to disk: the file is built in memory and written by
  Python. HDF5 that meets ENOSPC while writing a file on disk leaves its
  library state broken (the file cannot be closed) and the process dies with
  a segmentation fault at exit, in HDF5's own atexit clean-up.
- :func:`output_faults` turns ENOSPC, EROFS, EACCES (and their kin) met
  anywhere in the run into an :class:`OutputError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sasrec.io import atomic_write_bytes
from sasrec.training.run_lock import OutputError

# Errors that mean "this file system does not take our files", not a bug.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)

# HDF5 spends about 2.4 KiB per variable (object header, group entries) on
# top of the numbers; 4 KiB per variable and per file is an upper bound.
H5_BYTES_PER_VARIABLE = 4096
H5_BYTES_PER_FILE = 16384
# The most checkpoint files a run holds at once: the backup and its previous
# copy (Keras' double checkpoint), the best weights, and one of them being
# written (a temporary file beside it).
CHECKPOINT_FILES_AT_ONCE = 4
# The version's JSON files beyond the vocabulary: metrics (with the
# validation curve), the history, data statistics, popularity, training.
VERSION_JSON_BYTES = 128 * 1024
BYTES_PER_ITEM_JSON = 48
BYTES_PER_EPOCH_JSON = 1024
# TensorBoard event files: the graph and a few scalars per epoch.
TENSORBOARD_BYTES = 8 * 1024 * 1024
# Files round up to blocks; the run writes a few dozen of them.
SLACK_BYTES = 1024 * 1024


def prepare_output(out: Path) -> Path:
    """Creates ``out`` (and its parents) if needed and returns it.

    Raises:
        OutputError: ``out`` cannot be created (read-only file system, no permission).
    """
    with output_faults(out):
        out.mkdir(parents=True, exist_ok=True)
    return out


def checkpoint_file_bytes(model: Any) -> int:
    """Upper bound of one checkpoint file: the weights and Adam's two moments, in HDF5.

    The model must be built; its optimizer need not be (Adam keeps two
    moments per trainable weight, the size of the weights).
    """
    weights = sum(_variable_bytes(v) for v in model.weights)
    moments = 2 * sum(_variable_bytes(v) for v in model.trainable_weights)
    variables = len(model.weights) + 2 * len(model.trainable_weights) + 2
    return weights + moments + H5_BYTES_PER_VARIABLE * variables + H5_BYTES_PER_FILE


def estimate_run_bytes(
    model: Any, *, num_items: int, vocabulary_bytes: int, epochs: int, tensorboard: bool
) -> int:
    """Upper bound of the bytes a run writes under ``OUT`` at its peak.

    The checkpoint at its fullest (:data:`CHECKPOINT_FILES_AT_ONCE` files)
    and the version (the model without optimizer state, the vocabulary and
    the JSON files), plus TensorBoard's logs when they are on.
    """
    weights = sum(_variable_bytes(v) for v in model.weights)
    model_file = weights + H5_BYTES_PER_VARIABLE * len(model.weights) + H5_BYTES_PER_FILE
    version = (
        model_file
        + vocabulary_bytes
        + VERSION_JSON_BYTES
        + BYTES_PER_ITEM_JSON * num_items
        + BYTES_PER_EPOCH_JSON * epochs
    )
    checkpoint = CHECKPOINT_FILES_AT_ONCE * checkpoint_file_bytes(model)
    return checkpoint + version + (TENSORBOARD_BYTES if tensorboard else 0) + SLACK_BYTES


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``path``."""
    return shutil.disk_usage(_existing(path)).free


def check_free_space(out: Path, needed: int) -> None:
    """Refuses a run whose files would not fit under ``out``.

    Raises:
        OutputError: naming ``out``, the free bytes and the bytes needed.
    """
    free = free_bytes(out)
    if free < needed:
        raise OutputError(
            f"--out {out}: not enough free space for this run: {free:,} bytes free, "
            f"about {needed:,} bytes needed (checkpoint and model version); free some "
            "space or use another --out",
            out,
            errno.ENOSPC,
        )


def write_weights(model: Any, path: Path) -> None:
    """Writes ``model.save_weights(path)``'s file atomically, never HDF5 to disk.

    The HDF5 file is built in memory (Keras' own writer, the same file
    ``save_weights`` makes), then written through a temporary file and a
    rename: a full disk is a plain ``OSError`` and leaves no partial file.
    """
    try:
        data = weights_bytes(model)
    except (ImportError, AttributeError, TypeError):  # Keras moved its writer: write to disk
        _save_weights_through_temporary(model, Path(path))
        return
    atomic_write_bytes(path, data)


def weights_bytes(model: Any) -> bytes:
    """The bytes of ``model.save_weights(...)``'s ``.weights.h5`` file, built in memory."""
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(
            model,
            weights_store=store,
            assets_store=None,
            inner_path="",
            visited_saveables=set(),
        )
    finally:
        store.close()
    return buffer.getvalue()


@contextlib.contextmanager
def output_faults(out: Path) -> Iterator[None]:
    """Turns a write refused by the file system into an :class:`OutputError`.

    The message names the file, what happened and, for a full disk, the
    free bytes left under ``out``.
    """
    try:
        yield
    except OSError as err:
        raise _as_output_error(err, out) from err


def is_storage_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


def _as_output_error(err: OSError, out: Path) -> BaseException:
    if not is_storage_error(err):
        return err
    path = Path(err.filename) if err.filename else out
    reason = os.strerror(err.errno)
    message = f"cannot write {path}: {reason}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        with contextlib.suppress(OSError):
            message += f" ({free_bytes(out):,} bytes free under --out {out})"
        message += "; free some space, then rerun (with --resume to continue the checkpoint)"
    elif err.errno == errno.EROFS:
        message += f"; --out {out} must be on a writable file system"
    else:
        message += f"; --out {out} must be writable by this user"
    return OutputError(message, path, err.errno)


def _save_weights_through_temporary(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name.removesuffix('.weights.h5')}.tmp.weights.h5")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _variable_bytes(variable: Any) -> int:
    import numpy as np

    size = int(np.prod(variable.shape)) if len(variable.shape) else 1
    return size * np.dtype(variable.dtype).itemsize
