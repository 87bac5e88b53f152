"""Micro-benchmark: SASRec ``model.fit`` time per train step on synthetic batches.

For each batch width ``t`` it reports the median wall time per step of
``model.fit`` (after the first, compiling, call), with and without XLA
(``jit_compile``), plus the time of that first call (tracing and, with XLA,
compilation for the new shape). Finally it feeds one dataset whose widths
vary between batches (as length bucketing does) and counts how often the
train step is traced.

Usage::

    .venv/bin/python bench/bench_train_step.py --widths 8 16 24 50 --steps 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sasrec.runtime import configure_threads


def synthetic_batch(
    rng: np.random.Generator, batch: int, width: int, num_items: int, num_negatives: int
) -> dict[str, np.ndarray]:
    """A training batch of the pipeline contract: left-padded, varied lengths."""
    lengths = rng.integers(2, width + 1, size=batch)
    item_ids = np.zeros((batch, width), dtype=np.int32)
    for row, length in enumerate(lengths):
        item_ids[row, width - length :] = rng.integers(1, num_items + 1, size=length)
    positives = np.zeros_like(item_ids)
    positives[:, :-1] = item_ids[:, 1:]
    positives[:, -1] = rng.integers(1, num_items + 1, size=batch)
    positives[item_ids == 0] = 0
    shape = (batch, width, num_negatives)
    negatives = rng.integers(1, num_items + 1, size=shape).astype(np.int32)
    return {"item_ids": item_ids, "positives": positives, "negatives": negatives}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 24, 50])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-items", type=int, default=23715)
    parser.add_argument("--hidden-dim", type=int, default=50)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=1)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--loss", default="bce")
    parser.add_argument("--num-negatives", type=int, default=1)
    parser.add_argument("--jit", choices=["off", "on", "both"], default="both")
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    configure_threads(args.threads, 1)
    import keras
    import tensorflow as tf

    from sasrec.models import SASRec

    class StepClock(keras.callbacks.Callback):
        """Wall time between consecutive ``on_train_batch_end`` calls."""

        def on_train_begin(self, logs=None):
            self.stamps = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def intervals(self) -> list[float]:
            return np.diff(self.stamps).tolist()

    class CountingSASRec(SASRec):
        traces = 0

        def train_step(self, data):
            CountingSASRec.traces += 1  # Python runs once per trace, not per step
            return super().train_step(data)

    rng = np.random.default_rng(0)
    print(
        f"batch={args.batch} N={args.num_items} d={args.hidden_dim} blocks={args.num_blocks} "
        f"heads={args.num_heads} max_len={args.max_len} dropout={args.dropout} "
        f"loss={args.loss} threads={tf.config.threading.get_intra_op_parallelism_threads()}"
    )
    jit_modes = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    for jit in jit_modes:
        for spe in args.steps_per_execution:
            keras.utils.set_random_seed(0)
            model = CountingSASRec(
                num_items=args.num_items,
                max_len=args.max_len,
                hidden_dim=args.hidden_dim,
                num_blocks=args.num_blocks,
                num_heads=args.num_heads,
                dropout=args.dropout,
                loss=args.loss,
                num_negatives=args.num_negatives,
            )
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit, steps_per_execution=spe
            )
            label = f"jit_compile={jit!s:5} steps_per_execution={spe:2d}"
            for width in args.widths:
                batch = synthetic_batch(rng, args.batch, width, args.num_items, args.num_negatives)
                # padded_batch gives unknown (None) widths, as a bucketing pipeline does.
                rows = tf.data.Dataset.from_tensor_slices(batch)
                data = rows.padded_batch(args.batch).cache().repeat()
                start = time.perf_counter()
                model.fit(data, steps_per_epoch=spe, epochs=1, verbose=0)
                first = time.perf_counter() - start
                steps, calls = [], []
                for _ in range(args.repeats):
                    clock = StepClock()
                    start = time.perf_counter()
                    model.fit(
                        data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[clock]
                    )
                    calls.append(time.perf_counter() - start)
                    steps.extend(clock.intervals()[1:])  # the first includes fit() setup
                step_ms = statistics.median(steps) * 1000 / spe
                overhead = statistics.median(calls) - statistics.median(steps) * (args.steps / spe)
                print(
                    f"{label} width={width:3d}: median {step_ms:6.2f} ms/step "
                    f"(p10 {np.percentile(steps, 10) * 1000 / spe:.2f}, "
                    f"p90 {np.percentile(steps, 90) * 1000 / spe:.2f}); "
                    f"per fit() call +{overhead * 1000:.0f} ms; first call {first:.1f} s"
                )
            # Widths varying between batches (length bucketing): count traces.
            before = CountingSASRec.traces
            mixed = None
            for w in args.widths:
                batch = synthetic_batch(rng, args.batch, w, args.num_items, args.num_negatives)
                part = tf.data.Dataset.from_tensor_slices(batch).padded_batch(args.batch)
                mixed = part if mixed is None else mixed.concatenate(part)
            model.fit(mixed.repeat(4), epochs=1, verbose=0)
            print(
                f"{label} widths {args.widths} in one dataset, {4 * len(args.widths)} steps: "
                f"{CountingSASRec.traces - before} new trace(s)"
            )


if __name__ == "__main__":
    main()
