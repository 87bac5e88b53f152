"""Where a Games training epoch goes: compiled step time per batch width vs ``model.fit``.

Builds the real training data of ``../shared/data/amazon-games/Video.txt``
(paper settings: d=50, 2 blocks, 1 head, maxlen 50, batch 128, BCE), takes
one epoch of batches out of the ``tf.data`` pipeline, then times:

1. the XLA-compiled ``train_step`` over those ready batches (waiting for
   each result: pure compute), with the median step time per batch width;
2. the same loop without waiting (TensorFlow's asynchronous dispatch);
3. ``model.fit`` on the dataset (data pipeline, callbacks and Keras loop
   included).

Usage::

    .venv/bin/python bench/bench_epoch.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-games" / "Video.txt"


def main() -> int:
    if not DATA.exists():
        raise SystemExit(f"{DATA}: not found (the shared data sets are not on this machine)")
    from sasrec.runtime import configure_threads

    configure_threads()
    import keras
    import tensorflow as tf

    from sasrec.data.dataset import make_training_dataset
    from sasrec.data.windows import training_windows
    from sasrec.models import SASRec
    from sasrec.training.train import DataOptions, prepare_data

    prepared = prepare_data(DataOptions(path=str(DATA), preset="sasrec", min_user=1, min_item=1))
    inputs, positives = training_windows(prepared.split.train, 50)
    num_items = prepared.vocabulary.num_items
    dataset = make_training_dataset(
        inputs, positives, num_items=num_items, batch_size=128, num_negatives=1, seed=0,
        exclude_seen=True,
    )  # fmt: skip
    start = time.perf_counter()
    batches = list(dataset)
    print(f"one epoch out of tf.data: {time.perf_counter() - start:.2f} s, {len(batches)} batches")

    keras.utils.set_random_seed(0)
    model = SASRec(
        num_items=num_items, max_len=50, hidden_dim=50, num_blocks=2, num_heads=1, dropout=0.5,
        loss="bce",
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_2=0.98), jit_compile=True)
    step = tf.function(model.train_step, jit_compile=True)
    for batch in batches:  # compile every width
        step(batch)
    per_width: dict[int, list[float]] = defaultdict(list)
    synced = []
    for _ in range(2):
        start = time.perf_counter()
        for batch in batches:
            t0 = time.perf_counter()
            step(batch)["loss"].numpy()
            per_width[int(batch["item_ids"].shape[1])].append(time.perf_counter() - t0)
        synced.append(time.perf_counter() - start)
    start = time.perf_counter()
    for batch in batches:
        logs = step(batch)
    logs["loss"].numpy()
    unsynced = time.perf_counter() - start
    model.fit(dataset, epochs=1, verbose=0)  # Keras' own train function compiles here
    fits = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        fits.append(time.perf_counter() - start)

    print(f"compiled steps, waiting for each: {statistics.median(synced):.2f} s per epoch")
    print(f"compiled steps, asynchronous:     {unsynced:.2f} s per epoch")
    print(f"model.fit:                        {statistics.median(fits):.2f} s per epoch")
    print("\n| width | batches | median step ms | seconds per epoch |")
    print("| ---: | ---: | ---: | ---: |")
    for width in sorted(per_width):
        times = per_width[width]
        print(
            f"| {width} | {len(times) // 2} | {1000 * statistics.median(times):.1f} "
            f"| {sum(times) / 2:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
