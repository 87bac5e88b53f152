"""Process-wide TensorFlow thread settings, applied before TensorFlow starts work.

A server with W gRPC workers feeding one micro-batching thread wants TF to use
the cores for one batch at a time, not W x cores threads fighting each other.
"""

from __future__ import annotations

import os
from typing import Any

_configured: tuple[int, int] | None = None


def configure_threads(intra_op: int | None = None, inter_op: int | None = None) -> tuple[int, int]:
    """Sets TensorFlow's intra/inter-op thread pools (and BLAS/OpenMP) once.

    Args:
        intra_op: Threads inside one op; default: the number of usable cores.
        inter_op: Ops run concurrently; default 1 (our graphs are sequential).

    Returns:
        The ``(intra_op, inter_op)`` in force. Later calls with different
        values are ignored because TensorFlow fixes its pools at first use.
    """
    global _configured
    if _configured is not None:
        return _configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    intra = int(intra_op or cores or 1)
    inter = int(inter_op or 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(intra))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        # TensorFlow already initialised its pools; report what it uses.
        intra = tf.config.threading.get_intra_op_parallelism_threads() or intra
        inter = tf.config.threading.get_inter_op_parallelism_threads() or inter
    _configured = (intra, inter)
    return _configured


def limit_blas_threads(threads: int) -> None:
    """Caps NumPy's BLAS pool at ``threads`` (the numpy serving engine).

    Environment variables are read when NumPy loads its BLAS, usually long
    before a server decides its thread layout, so the cap is set at run time
    (threadpoolctl). One thread per scoring worker leaves the other cores to
    the gRPC threads; idle BLAS threads spin and would compete with them.
    """
    if threads < 1:
        raise ValueError(f"BLAS threads must be >= 1, received {threads}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Keeps freed heap memory mapped for reuse, so XLA's steps stop page-faulting.

    XLA runs each compiled train step in one temporary buffer: 42 MB for a
    batch of 128 histories of width 50 at d=50. glibc serves a block that
    large with a fresh ``mmap`` and unmaps it on ``free`` (its mmap
    threshold stops adapting at 32 MB), so every step faulted all of it in
    again: 10,658 page faults per step, 85 ms instead of 58-65 ms per step on
    our VM. ``mallopt(M_MMAP_MAX, 0)`` serves large blocks from the heap and
    a 1 GiB ``M_TRIM_THRESHOLD`` keeps freed heap for the next step. The
    process's resident memory then stays near its peak: meant for training
    jobs, not for long-lived servers. ``SASREC_KEEP_FREED_MEMORY=0`` opts out.

    Returns:
        True if the settings were applied (glibc only; a no-op elsewhere).
    """
    if os.environ.get("SASREC_KEEP_FREED_MEMORY", "1") == "0":
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def release_freed_memory() -> bool:
    """Hands every free heap page back to the system (glibc ``malloc_trim(0)``).

    With :func:`keep_freed_memory` memory a phase frees stays resident for
    the next step, in the allocator arena of the thread that freed it: an
    XLA compile and its warm-up on the compile-ahead thread, the epoch's
    steps. The next phase (validation, the final evaluation, on the main
    thread) then allocates on top of it. Called between phases, this
    returns the free pages of every arena; the steps after it fault their
    buffers in once (a 177 MiB XLA step buffer: tens of milliseconds).

    Apache Arrow's allocator (mimalloc) keeps what Parquet reads freed the
    same way: if ``pyarrow`` is loaded, its pool returns that too.

    Returns:
        True if glibc returned memory (glibc only; a no-op elsewhere).
    """
    import sys

    arrow = sys.modules.get("pyarrow")
    if arrow is not None and hasattr(arrow, "default_memory_pool"):
        arrow.default_memory_pool().release_unused()
    trim = _glibc("malloc_trim")
    return False if trim is None else bool(trim(0))


def _glibc(name: str) -> Any:
    """glibc's function ``name`` through ctypes, or None (not Linux, or not glibc, e.g. musl)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
