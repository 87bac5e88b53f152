"""Micro-benchmark: what the item table's dense Adam update costs a train step.

Two measurements, both at the SASRec paper's Games sizes (N = 23,715
items, d = 50, batch 128, BCE with one negative):

1. ``step``: for each batch width, two models built alike, one with the
   item table trainable (as trained) and one with it frozen, run alternating
   loops of 32 compiled (XLA) train steps in the same process. The median of
   the per-pair ratios frozen / trainable is the share of the step that the
   table's gradient and Adam update take. Alternating in one process keeps
   the ratio meaningful on a machine whose speed drifts by 2x within minutes.
2. ``update``: the table's update alone, compiled: the dense segment-sum
   gradient of ``M`` looked-up rows plus ``keras.optimizers.Adam`` on the
   ``(N + 1, d)`` table, per call.

Usage::

    .venv/bin/python bench/bench_table_update.py --widths 2 4 8 16 50 --reps 12
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sasrec.runtime import configure_threads, keep_freed_memory

NUM_ITEMS = 23_715
HIDDEN = 50


def timed_loop(tf, step, args, steps):
    """A compiled loop of ``steps`` calls of ``step``; returns ms per call."""

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            step(*args)
        return 0

    loop(tf.constant(4))  # trace and compile
    return lambda: _ms(lambda: loop(tf.constant(steps)), steps)


def _ms(run, steps):
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / steps * 1000


def train_step(tf, keras, frozen: bool):
    """A compiled SASRec train step with the table trainable or frozen."""
    from sasrec.models import SASRec

    keras.utils.set_random_seed(0)
    model = SASRec(
        num_items=NUM_ITEMS,
        max_len=50,
        hidden_dim=HIDDEN,
        dropout=0.5,
        loss="bce",
        loss_denominator=800.0,
    )
    optimizer = keras.optimizers.Adam(1e-3, beta_2=0.98)
    table = model.encoder.item_embeddings
    variables = [v for v in model.trainable_variables if not (frozen and v is table)]
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=batch, y_pred=model(batch, training=True))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16, 50])
    parser.add_argument("--rows", type=int, nargs="+", default=[768, 6144, 19200])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()

    configure_threads()
    keep_freed_memory()
    import keras
    import tensorflow as tf
    from bench_train_step import synthetic_batch

    rng = np.random.default_rng(0)
    result: dict = {"step": {}, "update": {}}
    for width in args.widths:
        batch = {
            k: tf.constant(v) for k, v in synthetic_batch(rng, 128, width, NUM_ITEMS, 1).items()
        }
        runs = [
            timed_loop(tf, train_step(tf, keras, frozen), (batch,), args.steps)
            for frozen in (False, True)
        ]
        trained, frozen = [], []
        for _ in range(args.reps):
            trained.append(runs[0]())
            frozen.append(runs[1]())
        result["step"][width] = {
            "trainable_ms": round(float(np.median(trained)), 2),
            "frozen_ms": round(float(np.median(frozen)), 2),
            "frozen_over_trainable": round(float(np.median(np.divide(frozen, trained))), 3),
        }
        print(width, result["step"][width], flush=True)

    table = keras.Variable(rng.normal(size=(NUM_ITEMS + 1, HIDDEN)).astype(np.float32))
    optimizer = keras.optimizers.Adam(1e-3, beta_2=0.98)
    optimizer.build([table])

    @tf.function(jit_compile=True)
    def update(ids, rows):
        gradient = tf.math.unsorted_segment_sum(rows, ids, NUM_ITEMS + 1)
        optimizer.apply([gradient], [table])

    for count in args.rows:
        ids = tf.constant(rng.integers(1, NUM_ITEMS + 1, size=count).astype(np.int32))
        rows = tf.constant(rng.normal(size=(count, HIDDEN)).astype(np.float32))
        run = timed_loop(tf, update, (ids, rows), 50)
        result["update"][count] = round(float(np.median([run() for _ in range(args.reps)])), 3)
        print(count, "rows: update ms", result["update"][count], flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
