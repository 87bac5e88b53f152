"""Model artifacts: the one owner of the on-disk format of trained models.

Everything that knows a file name, reads a file or orders versions lives
here; training writes through it and serving reads through it.

- :mod:`~sasrec.artifact.layout`: file names (``model.keras``, ``manifest.json``, ...).
- :mod:`~sasrec.artifact.model_dir`: save / load one version directory.
- :mod:`~sasrec.artifact.versions`: publish, list and order numbered versions.
- :mod:`~sasrec.artifact.manifest`: what ``manifest.json`` records.
- :mod:`~sasrec.artifact.popularity`: ``popularity.json`` (serving's fallback ranking).
- :mod:`~sasrec.artifact.metrics`: ``metrics.json`` as reported by a served version.

Example:
    >>> from sasrec.artifact import latest_version, load_model_dir  # doctest: +SKIP
    >>> artifact = load_model_dir(latest_version("models/games"))  # doctest: +SKIP
    >>> artifact.manifest["version"], artifact.vocabulary.num_items  # doctest: +SKIP
    (3, 17208)
"""

from sasrec.artifact.layout import (
    CONFIG_FILE,
    DATA_STATS_FILE,
    FORMAT,
    HISTORY_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    POPULARITY_FILE,
    STAGING_PREFIX,
    STALE_STAGING_SECONDS,
    TRAINING_FILE,
    VOCABULARY_FILE,
)
from sasrec.artifact.manifest import manifest_created_at, manifest_max_len, version_name
from sasrec.artifact.metrics import summary_metrics
from sasrec.artifact.model_dir import ModelArtifact, load_model_dir, save_model_dir
from sasrec.artifact.popularity import (
    Popularity,
    counts_by_index,
    popularity_document,
    read_popularity,
)
from sasrec.artifact.versions import (
    IgnoredEntry,
    VersionScan,
    is_older_version,
    is_version_dir,
    latest_version,
    list_versions,
    publish_version,
    remove_stale_staging,
    scan_versions,
    version_fingerprint,
    version_number,
)

__all__ = [
    "CONFIG_FILE",
    "DATA_STATS_FILE",
    "HISTORY_FILE",
    "TRAINING_FILE",
    "FORMAT",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "POPULARITY_FILE",
    "STAGING_PREFIX",
    "STALE_STAGING_SECONDS",
    "VOCABULARY_FILE",
    "IgnoredEntry",
    "ModelArtifact",
    "Popularity",
    "counts_by_index",
    "is_older_version",
    "is_version_dir",
    "latest_version",
    "list_versions",
    "load_model_dir",
    "manifest_created_at",
    "manifest_max_len",
    "popularity_document",
    "publish_version",
    "read_popularity",
    "remove_stale_staging",
    "save_model_dir",
    "scan_versions",
    "summary_metrics",
    "VersionScan",
    "version_fingerprint",
    "version_name",
    "version_number",
]
