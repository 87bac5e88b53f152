"""Interaction-log pipeline (pandas): logs -> clean frame -> sequences -> tf.data.

The orchestrator reads top to bottom::

    from sasrec.data import (load_interactions, prepare, build_vocabulary,
        encode_sequences, leave_one_out, training_windows, make_training_dataset)

    df, report = load_interactions(path, preset="ml-1m")        # readers.py
    df, report = prepare(df, min_user=5, min_item=5, report=report)  # cleaning.py
    vocab = build_vocabulary(df)                                 # encoding.py
    seqs = encode_sequences(df, vocab)                           # UserSequences (CSR)
    split = leave_one_out(seqs)      # or temporal_split(seqs)   # splitting.py
    inputs, positives = training_windows(split.train, max_len)  # windows.py
    dataset = make_training_dataset(inputs, positives, vocab.num_items,
                                    batch_size=128, num_negatives=1, seed=0)
    report.save(model_dir / "data_stats.json")

Names are loaded lazily, so importing this package (e.g. by the ``sasrec``
command line) does not import pandas or TensorFlow.
"""

from __future__ import annotations

from sasrec.lazy_exports import lazy_exports

_EXPORTS = {
    "DataError": "errors",
    "DataReport": "data_report",
    "compute_stats": "data_report",
    "ReaderOptions": "reader_options",
    "get_preset": "presets",
    "preset_names": "presets",
    "load_interactions": "readers",
    "read_interactions": "readers",
    "parse_timestamps": "timestamps",
    "prepare": "cleaning",
    "canonicalize": "cleaning",
    "drop_missing_ids": "cleaning",
    "drop_duplicate_events": "cleaning",
    "collapse_consecutive_repeats": "cleaning",
    "filter_min_rating": "cleaning",
    "filter_event_types": "cleaning",
    "sort_events": "cleaning",
    "k_core": "cleaning",
    "build_vocabulary": "encoding",
    "encode_sequences": "encoding",
    "UserSequences": "user_sequences",
    "EvalSet": "eval_set",
    "Split": "split",
    "leave_one_out": "splitting",
    "temporal_split": "splitting",
    "training_windows": "windows",
    "make_training_dataset": "dataset",
    "sample_negatives": "negatives",
    "generate_synthetic_log": "synthetic",
    "load_movielens": "movielens",
    "download_movielens": "movielens",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
