"""Process-wide TensorFlow thread settings, applied before TensorFlow starts work.

A server with W gRPC workers feeding one micro-batching thread wants TF to use
the cores for one batch at a time, not W x cores threads fighting each other.
"""

from __future__ import annotations

import os

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
