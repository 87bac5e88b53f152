"""Which retrieval a served version uses: the full scan or index candidates.

``exact`` scores every item (``h . E`` over the table): right for tens of
thousands of items. ``ann`` takes candidates from an inverted-file index and
rescores them exactly (:class:`~sasrec.engines.ann_engine.AnnEngine`).
``auto`` (the default of ``sasrec serve --retrieval``) is ``ann`` from
:data:`ANN_MIN_ITEMS` items on: there the full scan costs over 16M
multiply-adds per request at d = 64 and the index is more than 10x faster
at recall@10 >= 0.99 (``docs/benchmarks.md``, "Retrieval at scale").

The index is built when ``sasrec train`` publishes a version at or above that
size (:func:`write_ann_index`), or else on the first load, and cached in the
version directory (:func:`ann_index_for`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # NumPy is imported where used: the CLI reads the names at start-up.
    import numpy as np

RETRIEVALS: tuple[str, ...] = ("auto", "exact", "ann")
DEFAULT_RETRIEVAL = "auto"
# Catalogue size from which `auto` serves with the index.
ANN_MIN_ITEMS = 250_000
# Histories whose states tune nprobe.
_TUNING_QUERIES = 512

logger = logging.getLogger("sasrec.engines")


def check_retrieval_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is one of :data:`RETRIEVALS`.

    Example:
        >>> check_retrieval_name("hnsw")
        Traceback (most recent call last):
        ...
        ValueError: retrieval must be one of ('auto', 'exact', 'ann'), received retrieval='hnsw'
    """
    if name not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {RETRIEVALS}, received retrieval={name!r}")


def resolve_retrieval(name: str, num_items: int, engine: str = "numpy") -> str:
    """``"exact"`` or ``"ann"`` for a catalogue of ``num_items`` items.

    ``auto`` is ``ann`` from :data:`ANN_MIN_ITEMS` items on with an engine
    of :data:`~sasrec.engines.registry.NUMPY_ENGINES` (numpy, compiled,
    auto); the tensorflow engine (the exported graph) always scans.

    Example:
        >>> resolve_retrieval("auto", 23_715), resolve_retrieval("auto", 1_000_000)
        ('exact', 'ann')
        >>> resolve_retrieval("auto", 1_000_000, engine="tensorflow")
        'exact'

    Raises:
        ValueError: an unknown name, or ``ann`` with the tensorflow engine.
    """
    from sasrec.engines.registry import NUMPY_ENGINES

    check_retrieval_name(name)
    if name == "ann" and engine not in NUMPY_ENGINES:
        raise ValueError(
            f"retrieval 'ann' needs one of the engines {NUMPY_ENGINES}, received engine={engine!r}"
        )
    if name == "auto":
        return "ann" if engine in NUMPY_ENGINES and num_items >= ANN_MIN_ITEMS else "exact"
    return name


def tuning_queries(
    exact: Any, counts: np.ndarray | None = None, count: int = _TUNING_QUERIES, seed: int = 0
) -> np.ndarray:
    """Hidden states of ``count`` sampled histories: what nprobe is tuned on.

    Histories of 1..max_len items drawn in proportion to ``counts`` (the
    version's training popularity, so the states look like live traffic's)
    or uniformly without counts.

    Args:
        exact: A :class:`~sasrec.engines.numpy_engine.NumpyEngine`.
        counts: float ``(N + 1,)`` popularity by index, or None.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = exact.num_items
    weights = None
    if counts is not None and float(np.sum(counts[1:])) > 0:
        weights = np.asarray(counts[1:], dtype=np.float64)
        weights /= weights.sum()
    lengths = rng.integers(1, exact.max_len + 1, size=count)
    histories = [rng.choice(n, size=int(length), p=weights) + 1 for length in lengths]
    states = []
    for start in range(0, count, 64):
        states.append(exact.encode(histories[start : start + 64])[1])
    return np.concatenate(states)


def build_ann_index(exact: Any, counts: np.ndarray | None = None) -> Any:
    """A tuned :class:`~sasrec.engines.ann_index.AnnIndex` of the engine's item table."""
    from sasrec.engines.ann_index import AnnIndex

    index = AnnIndex.build(exact.item_table)
    index.tune(exact.item_table, tuning_queries(exact, counts))
    return index


def write_ann_index(version_dir: str | Path, model: Any, counts: np.ndarray | None) -> Any:
    """Builds, tunes and saves the index of ``model`` into ``version_dir`` (publishing)."""
    from sasrec.engines.numpy_engine import NumpyEngine

    # Encoding and the table only: no transposed scoring copy of the table.
    index = build_ann_index(NumpyEngine(model, scoring_copy=False), counts)
    index.save(version_dir)
    return index


def ann_index_for(version_dir: str | Path | None, exact: Any, counts: np.ndarray | None) -> Any:
    """The version's cached index if it matches the table, else a new one (cached if writable).

    A server may mount the versions read-only: failing to write the cache
    is logged and the index is used from memory.
    """
    from sasrec.engines.ann_index import AnnIndex

    if version_dir is not None:
        cached = AnnIndex.load(version_dir, exact.item_table)
        if cached is not None:
            return cached
    index = build_ann_index(exact, counts)
    if version_dir is not None:
        try:
            index.save(version_dir)
        except OSError as err:
            logger.warning(
                "ANN index not cached",
                extra={"fields": {"path": str(version_dir), "error": str(err)}},
            )
    return index
