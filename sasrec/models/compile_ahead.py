"""XLA programs compiled on a background thread while the first batches train without XLA."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sasrec.runtime import release_freed_memory

logger = logging.getLogger(__name__)


# From this size of weights plus optimizer state, every width compiles in
# place (:func:`in_place_widths`): the thread's zero copies of them and the
# plain-graph steps beside its compiles cost more memory than the compiles
# take time. 703,061 items at d=16 with Adam: 135 MiB; Games' 24k items at
# d=50: 14 MiB, where compiling 12 widths before the first step would
# cost several of its 3-second epochs.
IN_PLACE_MIN_BYTES = 64 << 20


def in_place_widths(model: keras.Model, widths: Sequence[int]) -> int:
    """How many of ``widths`` to compile in place: all of them for a large model, else none.

    Example:
        >>> in_place_widths(model, [50, 40, 30])  # doctest: +SKIP
        3
    """
    optimizer_variables = list(model.optimizer.variables) if model.optimizer else []
    size = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in list(model.trainable_variables) + optimizer_variables
    )
    return len(widths) if size >= IN_PLACE_MIN_BYTES else 0


class CompileAhead:
    """A train function that runs each batch width under XLA once its program is ready.

    With ``jit_compile=True`` Keras compiles the train step for every new
    batch shape on the training thread, the first time that shape arrives:
    on Games' 12 bucket widths that is 12 compiles of 4-6 s of CPU each
    before the first epoch ends. Here the train step exists twice, the XLA
    one and the same step as a plain TensorFlow graph (one trace for every
    width, no compile). Each step picks the XLA program when its width is
    marked ready and the plain graph otherwise (a ``tf.cond`` on a boolean
    per width, inside Keras' ``steps_per_execution`` loop), while one
    background thread compiles the widths in the given order (``sasrec
    train``: the widths carrying most positions of the epoch first) and
    marks each ready as soon as it is compiled.

    The background thread compiles by running Keras' train function itself
    (as traced by the training thread's first call) on one batch of zeros of
    that width, with every captured variable (weights, optimizer slots,
    metrics) replaced by a zero copy of the same shape and the ready flags
    by all-true ones, so the real variables never see the warm-up.
    TensorFlow keys an XLA program by the compiled cluster of that function
    and the argument shapes, so the training thread's XLA steps of that
    width find it in the cache. (The step's own ``tf.function`` called
    outside the train function is another cluster: it would compile again.)
    If that private entry point (``ConcreteFunction._call_flat``) fails,
    every width is marked ready and steps compile on the training thread,
    as plain ``jit_compile=True`` does.

    The first ``in_place`` widths are compiled before the first step
    instead, on the training thread and on the real variables, with a batch
    whose every position is padding: its gradients are exactly zero, so on
    a fresh optimizer (zero Adam moments, iteration 0) the step leaves the
    weights and moments bit for bit as they were; the optimizer's
    iteration counter, the dropout seeds and the metrics it advanced are
    put back. No zero copies of the weights and moments (the item table and
    its two moments: 135 MiB for 703,061 items at d=16) and no plain-graph
    steps run beside that compile: the process's memory high-water mark is
    the compile's alone. Where the optimizer has stepped already (the
    moments would decay), those widths go to the thread as well.

    The warm-up call runs its kernels on TensorFlow's inter-op thread pool,
    as the training thread's calls do: with one inter-op thread (our
    default, ``sasrec.runtime.configure_threads``) a compile holds it and
    the training steps wait for the compile to end, so configure two
    (``configure_threads(inter_op=2)``, what ``sasrec train`` does).

    Both paths run the same step (``model.train_step``) on the same
    variables, so the updates are the same up to float rounding: XLA fuses
    and reorders floating-point work.

    Args:
        model: A compiled Keras model with ``jit_compile=True`` whose train
            batches are dicts of integer tensors, ``(B, t)`` or ``(B, t, n)``
            with the width ``t`` on axis 1 (``(B, 1, n)`` stays ``1``).
        element_spec: The training dataset's ``element_spec``.
        batch_size: Rows of every batch (the dataset pads the short one).
        widths: Batch widths to compile, in order; duplicates are ignored.
        max_width: The largest width a batch can have.
        in_place: Leading widths of ``widths`` compiled on the real
            variables before training starts (:meth:`start`); the rest on
            the thread.

    Example:
        >>> ahead = CompileAhead(model, dataset.element_spec, 128, [50, 8, 1], 50)
        ... # doctest: +SKIP
        >>> model.fit(dataset, epochs=2, callbacks=[ahead.callback()])  # doctest: +SKIP
        >>> ahead.compiled  # doctest: +SKIP
        [50, 8, 1]
    """

    def __init__(
        self,
        model: keras.Model,
        element_spec: Mapping[str, tf.TensorSpec],
        batch_size: int,
        widths: Sequence[int],
        max_width: int,
        in_place: int = 0,
    ) -> None:
        if not model.jit_compile:
            raise ValueError("CompileAhead needs a model compiled with jit_compile=True")
        if batch_size < 1 or max_width < 1 or in_place < 0:
            raise ValueError(
                f"need batch_size >= 1, max_width >= 1 and in_place >= 0, received "
                f"batch_size={batch_size}, max_width={max_width}, in_place={in_place}"
            )
        bad = [w for w in widths if not 1 <= int(w) <= max_width]
        if bad:
            raise ValueError(f"widths must be in 1..{max_width}, received {bad}")
        self.model = model
        self.element_spec = dict(element_spec)
        self.batch_size = int(batch_size)
        self.widths = list(dict.fromkeys(int(w) for w in widths))
        self.max_width = int(max_width)
        self.in_place = int(in_place)
        # Widths whose XLA program is compiled (in place or on the thread), in order.
        self.compiled: list[int] = []
        # Wall seconds of each of those compiles.
        self.seconds: list[float] = []
        # Wall seconds from start() until the last width was marked ready.
        self.ready_after: float | None = None
        # The first epoch (1-based) that began with every width compiled:
        # from there on every step runs the same XLA programs as plain
        # ``jit_compile=True`` (None: no epoch did).
        self.all_ready_epoch: int | None = None
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Not a model attribute: it must not enter checkpoints or saved weights.
        self._ready = tf.Variable(tf.zeros([self.max_width + 1], tf.bool), trainable=False)
        self._xla_step = tf.function(model.train_step, jit_compile=True)
        self._install()

    def _install(self) -> None:
        model, ready, xla_step = self.model, self._ready, self._xla_step

        def step(data: Any) -> Any:
            width = tf.shape(data["item_ids"])[1]
            ready_now = tf.gather(ready, tf.minimum(width, self.max_width))
            return tf.cond(ready_now, lambda: xla_step(data), lambda: model.train_step(data))

        # Keras' loop (steps_per_execution, distribution) around our step; the
        # step itself must not be one XLA cluster, so jit_compile is off while
        # Keras wraps it.
        model._jit_compile = False
        try:
            model.train_function = model._make_function(step)
        finally:
            model._jit_compile = True

    def start(self) -> None:
        """Compiles the ``in_place`` widths, then starts the background compiles.

        Once; later calls do nothing. Call it before the first step (the
        callback does, when ``fit`` starts): the in-place compiles run the
        step on the real variables.
        """
        if self._thread is not None:
            return
        self._started = time.perf_counter()
        self._compile_in_place(self.widths[: self.in_place])
        if tf.config.threading.get_inter_op_parallelism_threads() == 1:
            logger.warning(
                "one inter-op thread: training steps wait for each compile "
                "(configure_threads(inter_op=2) before TensorFlow starts)"
            )
        self._thread = threading.Thread(target=self._run, name="sasrec-compile-ahead", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Skips the widths not started; ``wait``: also waits for the compile under way."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join()

    def stop_when_done(self) -> None:
        """Waits until every width is compiled (or the compiles failed)."""
        if self._thread is not None:
            self._thread.join()

    def ready_widths(self) -> list[int]:
        """Widths whose steps run under XLA now, ascending."""
        return [int(w) for w in np.flatnonzero(self._ready.numpy())]

    def callback(self, wait_at_end: bool = True) -> keras.callbacks.Callback:
        """A callback that starts the compiles when ``fit`` starts and stops them at its end.

        With ``wait_at_end=False`` the end of ``fit`` does not wait for the
        compile under way (up to one compile); the caller must then call
        :meth:`stop` before the process exits.
        """
        return _CompileAheadCallback(self, wait_at_end)

    def _zeros(self, width: int) -> dict[str, tf.Tensor]:
        batch = {}
        for key, spec in self.element_spec.items():
            dims = list(spec.shape)
            if dims[0] is None:
                # A static first axis (a batch's one set of negatives) stays.
                dims[0] = self.batch_size
            if len(dims) > 1 and dims[1] is None:
                dims[1] = width
            if any(d is None for d in dims):
                raise ValueError(f"cannot build a warm-up batch for {key!r} of shape {spec.shape}")
            batch[key] = tf.zeros(dims, spec.dtype)
        return batch

    def _run(self) -> None:
        remaining = [w for w in self.widths if w not in self.compiled]
        if not remaining:
            self.ready_after = round(time.perf_counter() - self._started, 2)
            return
        try:
            function = self._train_concrete_function()
            variables = {id(v.handle): v for v in function.variables}
            ready = id(self._ready.handle)
            # Zero copies of every captured variable (the warm-up steps update
            # these), and a copy of the ready flags with every width ready.
            captures = [
                tf.Variable(tf.ones_like(self._ready)).handle
                if id(c) == ready
                else tf.Variable(tf.zeros(variables[id(c)].shape, variables[id(c)].dtype)).handle
                if id(c) in variables
                else c
                for c in function.captured_inputs
            ]
            for width in remaining:
                if self._stop.is_set():
                    return
                start = time.perf_counter()
                iterator = iter(self._warm_up_batch(width))
                function._call_flat(tf.nest.flatten(iterator, expand_composites=True), captures)
                self.seconds.append(round(time.perf_counter() - start, 2))
                self.compiled.append(width)
                self._ready[width].assign(True)
                # The compile's and the warm-up's freed memory, before the next width's.
                release_freed_memory()
            self.ready_after = round(time.perf_counter() - self._started, 2)
        except Exception:  # noqa: BLE001 - any failure falls back to compiling in the step
            logger.warning(
                "compiling XLA widths ahead failed; the train step compiles each width "
                "when it first runs",
                exc_info=True,
            )
            self._ready.assign(tf.ones_like(self._ready))

    def _compile_in_place(self, widths: Sequence[int]) -> None:
        """Compiles ``widths`` by all-padding steps on the real variables (fresh optimizer only).

        The step's gradients are zero, and Adam's update of zero moments by
        a zero gradient is zero: the weights and moments keep their bits.
        What the step advances regardless (the optimizer's iterations, the
        dropout seed generators, the loss tracker) is saved before and
        assigned back after; those are a few scalars. No training step runs
        yet, so the widths compile concurrently, one per inter-op thread:
        every concurrent write of a weight or moment writes its own bits.
        """
        optimizer = self.model.optimizer
        if not widths or optimizer is None or int(optimizer.iterations.numpy()) != 0:
            return
        if getattr(optimizer, "weight_decay", None) or getattr(optimizer, "use_ema", False):
            # Decay and moving averages move the weights without a gradient.
            return
        try:
            function = self._train_concrete_function()
        except TypeError:
            return
        iterations = id(optimizer.iterations.handle)
        # Weights and moments: left unchanged by the zero step, never copied.
        untouched = {id(v.handle) for v in self.model.trainable_variables} | {
            id(v.handle) for v in optimizer.variables if id(v.handle) != iterations
        }
        saved = [
            (v, np.array(v.numpy(), copy=True))
            for v in function.variables
            if id(v.handle) not in untouched and v.handle is not self._ready.handle
        ]
        for width in widths:
            self._ready[width].assign(True)

        def compile_width(width: int) -> float:
            start = time.perf_counter()
            iterator = iter(self._warm_up_batch(width))
            function._call_flat(
                tf.nest.flatten(iterator, expand_composites=True), function.captured_inputs
            )
            return round(time.perf_counter() - start, 2)

        # 0: TensorFlow's default, one inter-op thread per core.
        threads = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 1
        try:
            with ThreadPoolExecutor(max(1, min(threads, len(widths)))) as pool:
                seconds = list(pool.map(compile_width, widths))
        except Exception:  # noqa: BLE001 - the thread (or the step) compiles them instead
            logger.warning("compiling XLA widths %s in place failed", list(widths), exc_info=True)
            for width in widths:
                self._ready[width].assign(False)
            return
        finally:
            for variable, value in saved:
                variable.assign(value)
            release_freed_memory()
        self.seconds.extend(seconds)
        self.compiled.extend(widths)

    def _train_concrete_function(self) -> Any:
        """Keras' train function as traced for the dataset.

        The XLA program TensorFlow caches is that of the compiled cluster
        inside this very function, so the warm-up must run through it: the
        same step called on its own is another cluster, compiled again.
        """
        # Keras returns a Python wrapper around its tf.function (the steps loop).
        cells = getattr(self.model.train_function, "__closure__", None) or ()
        functions = [
            c.cell_contents
            for c in cells
            if hasattr(c.cell_contents, "_list_all_concrete_functions")
        ]
        if len(functions) != 1:
            raise TypeError("cannot find the tf.function of Keras' train function")
        function = functions[0]
        traced = function._list_all_concrete_functions()
        if traced:
            return traced[0]
        # The iterator's trace type is its element spec: the training thread's
        # first call finds this trace (tf.function traces one call at a time).
        return function.get_concrete_function(iter(self._warm_up_batch(1)))

    def _warm_up_batch(self, width: int) -> tf.data.Dataset:
        """One batch of zeros of this width, with the dataset's element spec."""
        zeros = self._zeros(width)
        shapes = {key: spec.shape for key, spec in self.element_spec.items()}
        return tf.data.Dataset.from_tensors(zeros).map(
            lambda batch: {
                key: tf.raw_ops.PlaceholderWithDefault(input=value, shape=shapes[key])
                for key, value in batch.items()
            }
        )


class _CompileAheadCallback(keras.callbacks.Callback):
    def __init__(self, ahead: CompileAhead, wait_at_end: bool) -> None:
        super().__init__()
        self.ahead = ahead
        self.wait_at_end = wait_at_end

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.ahead.start()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        ahead = self.ahead
        if ahead.all_ready_epoch is None and ahead.ready_after is not None and ahead.compiled:
            ahead.all_ready_epoch = epoch + 1

    def on_train_end(self, logs: dict | None = None) -> None:
        self.ahead.stop(wait=self.wait_at_end)
