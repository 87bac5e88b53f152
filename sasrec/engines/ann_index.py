"""Approximate maximum-inner-product candidates over the item table (Faiss IVF).

SASRec scores are inner products ``h . E[i]`` with unnormalised item vectors,
so the index is made for maximum inner product: Faiss ``IndexIVFFlat`` with
``METRIC_INNER_PRODUCT`` (graph indexes built on raw inner products lose most
of their recall on such tables). It only proposes candidates; the engine
rescores them exactly (:mod:`sasrec.engines.ann_engine`).

The index is cached in the version directory (:data:`ANN_INDEX_FILE`, with
:data:`ANN_INDEX_META_FILE` naming the table it was built from), written
atomically. ``faiss`` is imported only here and only when an index is built or
loaded: below the catalogue size where serving switches to ANN nothing needs
it (``pip install sasrec[ann]``).
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.io import atomic_write_bytes, atomic_write_text

ANN_INDEX_FILE = "ann_index.faiss"
ANN_INDEX_META_FILE = "ann_index.json"
# Recall@10 of the candidates against the exact top 10 that tuning aims for
# on its own queries: above the 0.99 served, for the margin between a sample
# of queries and live traffic.
TARGET_RECALL = 0.995
# Candidates fetched per requested item: the exact rescoring picks the k best.
CANDIDATES_PER_K = 4
MIN_CANDIDATES = 40
_TUNE_K = 10
_FORMAT = "sasrec.ann.ivfflat.v1"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "approximate retrieval needs Faiss: pip install 'sasrec[ann]' (faiss-cpu)"
        ) from err
    return faiss


def table_checksum(table: np.ndarray) -> int:
    """CRC-32 of the table's bytes: which item table an index was built from.

    Example:
        >>> table_checksum(np.zeros((2, 2), np.float32))
        3971697493
    """
    return zlib.crc32(memoryview(np.ascontiguousarray(table, dtype=np.float32)).cast("B"))


def default_nlist(num_items: int) -> int:
    """Inverted lists for ``num_items`` vectors: about sqrt(N), at least 39 items per list.

    Example:
        >>> default_nlist(1_000_000), default_nlist(24_000), default_nlist(100)
        (1000, 154, 2)
    """
    return max(1, min(int(round(math.sqrt(num_items))), num_items // 39))


class AnnIndex:
    """IVF inner-product index over the item table rows 1..N (row 0 is padding).

    Args:
        index: A trained Faiss ``IndexIVFFlat`` holding rows 1..N with ids 1..N.
        num_items: N.
        dim: Vector width d.
        checksum: :func:`table_checksum` of the ``(N + 1, d)`` table.
        nprobe: Lists searched per query (see :meth:`tune`).

    Example:
        >>> index = AnnIndex.build(table)  # doctest: +SKIP
        >>> index.tune(queries)  # doctest: +SKIP
        >>> ids = index.search(queries, 40)  # (B, 40) int64, -1 where none
    """

    def __init__(self, index: Any, num_items: int, dim: int, checksum: int, nprobe: int) -> None:
        self.index = index
        self.num_items = int(num_items)
        self.dim = int(dim)
        self.checksum = int(checksum)
        self.nlist = int(index.nlist)
        self.recall = float("nan")  # measured by tune()
        self.set_nprobe(nprobe)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, table: np.ndarray, nlist: int | None = None, seed: int = 0) -> AnnIndex:
        """Trains the coarse quantizer on a sample of the rows and adds them all.

        Args:
            table: float32 ``(N + 1, d)`` item table; row 0 (padding) is left out.
            nlist: Inverted lists (default :func:`default_nlist`).
            seed: Seed of the k-means sample.
        """
        faiss = _faiss()
        table = np.ascontiguousarray(table, dtype=np.float32)
        rows = table[1:]
        num_items, dim = rows.shape
        if num_items < 1:
            raise ValueError("an ANN index needs at least one item")
        nlist = int(nlist or default_nlist(num_items))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # 64 points per centroid is plenty for k-means and keeps training
        # at seconds for a 1M-row table on two cores.
        rng = np.random.default_rng(seed)
        sample = rows[np.sort(rng.choice(num_items, min(num_items, 64 * nlist), replace=False))]
        index.cp.seed = seed
        index.train(sample)
        index.add_with_ids(rows, np.arange(1, num_items + 1, dtype=np.int64))
        return cls(index, num_items, dim, table_checksum(table), nprobe=1)

    def set_nprobe(self, nprobe: int) -> None:
        """Lists searched per query, clipped to ``1..nlist``."""
        self.nprobe = max(1, min(int(nprobe), self.nlist))
        self.index.nprobe = self.nprobe

    def tune(
        self,
        table: np.ndarray,
        queries: np.ndarray,
        target: float = TARGET_RECALL,
        k: int = _TUNE_K,
    ) -> float:
        """Smallest power-of-two ``nprobe`` whose candidates hold the exact top-k.

        Recall@k here is the share of each query's exact top-k (by inner
        product over rows 1..N) found among its :func:`candidate_count`
        candidates: after exact rescoring, exactly those items are in the
        answer. Sets :attr:`nprobe` and :attr:`recall`, returns the recall.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        exact = _exact_top(table, queries, k)
        fetch = candidate_count(k)
        nprobe = 1
        while True:
            self.set_nprobe(nprobe)
            found = self.search(queries, fetch)
            recall = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(exact, found)]))
            if recall >= target or self.nprobe >= self.nlist:
                self.recall = recall
                return recall
            nprobe *= 2

    # ------------------------------------------------------------------ query
    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        """``count`` candidate ids per query row, best first; -1 where none."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, ids = self.index.search(queries, int(min(count, self.num_items)))
        return ids

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path) -> None:
        """Writes the index and its description into ``directory``, each atomically.

        The index file comes first: a reader trusts only an index whose
        description (written last) matches it and the table.
        """
        directory = Path(directory)
        data = _faiss().serialize_index(self.index)
        atomic_write_bytes(directory / ANN_INDEX_FILE, data.tobytes())
        meta = {
            "format": _FORMAT,
            "num_items": self.num_items,
            "dim": self.dim,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "recall_at_10": None if math.isnan(self.recall) else round(self.recall, 4),
            "table_crc32": self.checksum,
            "index_bytes": int(data.size),
        }
        atomic_write_text(directory / ANN_INDEX_META_FILE, json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, table: np.ndarray) -> AnnIndex | None:
        """The index cached in ``directory`` if it was built from ``table``, else None.

        A missing, partial or foreign cache (another table, size or format)
        is not an error: the caller builds a new index.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / ANN_INDEX_META_FILE).read_text())
            data = (directory / ANN_INDEX_FILE).read_bytes()
        except (OSError, ValueError):
            return None
        expected = {
            "format": _FORMAT,
            "num_items": table.shape[0] - 1,
            "dim": table.shape[1],
            "index_bytes": len(data),
        }
        if any(meta.get(key) != value for key, value in expected.items()):
            return None
        if meta.get("table_crc32") != table_checksum(table):
            return None
        faiss = _faiss()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        loaded = cls(index, meta["num_items"], meta["dim"], meta["table_crc32"], meta["nprobe"])
        loaded.recall = float(meta["recall_at_10"] or "nan")
        return loaded


def candidate_count(k: int) -> int:
    """Candidates the index fetches for a top-``k`` answer.

    Example:
        >>> candidate_count(10), candidate_count(5), candidate_count(100)
        (40, 40, 400)
    """
    return max(CANDIDATES_PER_K * int(k), MIN_CANDIDATES)


def limit_faiss_threads(threads: int) -> None:
    """Caps Faiss' OpenMP pool (as :func:`sasrec.runtime.limit_blas_threads` caps BLAS).

    A serving worker scores one batch at a time on one thread by default;
    Faiss would otherwise start an OpenMP thread per core for each search.
    """
    if threads < 1:
        raise ValueError(f"Faiss threads must be >= 1, received {threads}")
    _faiss().omp_set_num_threads(int(threads))


# Scores held at once while the exact top-k is found: a few tuning queries
# against a million-item table, not all of them (see _exact_top).
_EXACT_CHUNK_BYTES = 16 << 20


def _exact_top(table: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` ids (1..N) by inner product: ``int64 (Q, k)``, unordered within a row.

    Queries go in chunks of at most 64 whose scores (4 bytes an item) and
    ``argpartition``'s indices (8 bytes an item) fit ``_EXACT_CHUNK_BYTES``
    together: 1 query a chunk on a 703k-item table, 8.4 MB (sized on the
    scores alone at 64 MiB, 23 queries held 194 MB while a version was
    published; top-k's ``argpartition`` costs as much per query either way),
    and each chunk's ``k`` ids are copied out: a row sliced from the chunk's
    ``(chunk, N + 1)`` argpartition would keep the whole of it alive (512
    tuning queries on a 703k-item table held 2.9 GB that way).

    Example:
        >>> table = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
        >>> np.sort(_exact_top(table, np.array([[1, 0]], np.float32), 2), axis=1).tolist()
        [[1, 3]]
    """
    rows_per_chunk = int(max(1, min(64, _EXACT_CHUNK_BYTES // (12 * max(table.shape[0], 1)))))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), rows_per_chunk):
        scores = queries[start : start + rows_per_chunk] @ table.T
        scores[:, 0] = -np.inf
        np.negative(scores, out=scores)
        out[start : start + len(scores)] = np.argpartition(scores, k - 1, axis=1)[:, :k]
        del scores
    return out
