"""File names of a model version directory and of a versions root.

One version (``save_model_dir``) holds::

    model.keras        the Keras model (loads with safe_mode=True, no optimizer)
    config.json        SASRecConfig
    vocabulary.json    ItemVocabulary
    <extra>.json       optional: metrics.json, popularity.json, history.json, ...
    manifest.json      written last; a directory without it is not a model

A versions root (``sasrec train --out``) holds numbered versions ``1``, ``2``,
... next to staging directories (``.tmp-*``) that are never versions.
"""

from __future__ import annotations

import re

FORMAT = "sasrec.model.v1"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
POPULARITY_FILE = "popularity.json"
DATA_STATS_FILE = "data_stats.json"
HISTORY_FILE = "history.json"
TRAINING_FILE = "training.json"
# Versions root: staging directories start with STAGING_PREFIX; a publish
# removes those untouched (nothing inside modified) for STALE_STAGING_SECONDS.
STAGING_PREFIX = ".tmp-"
STALE_STAGING_SECONDS = 3600.0
# Files save_model_dir writes itself; an extra document may not replace them.
RESERVED_FILES = frozenset({MODEL_FILE, CONFIG_FILE, VOCABULARY_FILE, MANIFEST_FILE})
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def extra_file_name(name: str) -> str:
    """The file name of an extra JSON document (``"metrics"`` -> ``"metrics.json"``).

    Example:
        >>> extra_file_name("metrics"), extra_file_name("history.json")
        ('metrics.json', 'history.json')

    Raises:
        ValueError: ``name`` is reserved or not a plain file name.
    """
    file_name = name if name.endswith(".json") else f"{name}.json"
    if not _EXTRA_NAME.match(file_name) or file_name in RESERVED_FILES:
        raise ValueError(
            f"extra JSON name must be a plain file name other than {sorted(RESERVED_FILES)}, "
            f"received {name!r}"
        )
    return file_name
