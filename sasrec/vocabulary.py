"""Raw item id <-> model index mapping saved beside every model."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sasrec.io import atomic_write_text, atomic_write_with

# Ids per json.dumps call when streaming: C-encoder speed, bounded memory.
_CHUNK = 65_536


class ItemVocabulary:
    """Maps opaque raw item ids (strings) to model indices 1..N (0 is padding).

    Args:
        item_ids: Raw ids in index order: ``item_ids[i]`` gets index ``i + 1``.

    Example:
        >>> vocab = ItemVocabulary(["sku-7", "sku-3"])
        >>> vocab.encode(["sku-3", "nope"])
        (array([2, 0], dtype=int32), ['nope'])
        >>> vocab.decode([1])
        ['sku-7']
    """

    FORMAT = "sasrec.vocabulary.v1"

    def __init__(self, item_ids: Sequence[str]) -> None:
        ids = [str(i) for i in item_ids]
        self._ids = ids
        # The raw id -> index map is built on the first lookup: training from
        # a PREPARED folder never looks an id up, and for 703k items the map
        # holds about 80 MiB of the training process's peak.
        self._lookup: dict[str, int] | None = None
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(x for x in ids if x in seen or seen.add(x))
            raise ValueError(f"item_ids must be unique, received duplicate id {dup!r}")
        if any(raw == "" for raw in ids):
            raise ValueError("item_ids must not contain the empty string")
        self._ids_array = np.asarray(ids, dtype=object)

    @property
    def _index(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {raw: i + 1 for i, raw in enumerate(self._ids)}
        return self._lookup

    @property
    def num_items(self) -> int:
        """N, the number of real items (indices 1..N)."""
        return len(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw_id: object) -> bool:
        return str(raw_id) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemVocabulary) and self._ids == other._ids

    @property
    def item_ids(self) -> list[str]:
        """Raw ids in index order (index ``i + 1`` for position ``i``)."""
        return list(self._ids)

    def index(self, raw_id: str) -> int:
        """Index of one raw id, 0 if unknown."""
        return self._index.get(str(raw_id), 0)

    def encode(self, raw_ids: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """Encodes raw ids; unknown ones map to 0 and are also returned."""
        raw = [str(r) for r in raw_ids]
        lookup = self._index
        idx = np.fromiter((lookup.get(r, 0) for r in raw), dtype=np.int32, count=len(raw))
        unknown = [r for r, i in zip(raw, idx) if i == 0]
        return idx, unknown

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Raw ids of indices 1..N (0 and out-of-range indices raise)."""
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if idx.size and (idx.min() < 1 or idx.max() > len(self._ids)):
            raise ValueError(f"indices must be in 1..{len(self._ids)}, received {idx.tolist()}")
        return self._ids_array[idx.astype(np.int64) - 1].tolist()

    def to_json(self) -> str:
        return "".join(self._json_parts(self._ids))

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary as JSON, atomically."""
        self.write_ids(path, self._ids)

    @classmethod
    def write_ids(cls, path: str | os.PathLike, item_ids: Iterable[str]) -> int:
        """Writes raw ids in index order as a vocabulary file, streaming; returns N.

        The bytes are those :meth:`save` writes for ``ItemVocabulary(item_ids)``
        (``json.dumps`` of the whole object), but ``item_ids`` may be any
        iterable (a Spark job's rows, fetched a partition at a time): at most
        a chunk of ids is held, never the catalogue. Ids must be non-empty;
        uniqueness is the caller's (a Spark ``groupBy`` key is unique). The
        file appears complete or not at all.

        Example:
            >>> ItemVocabulary.write_ids("vocabulary.json", iter(["a", "é"]))  # doctest: +SKIP
            2
        """
        count = 0

        def counted(ids: Iterable[str]) -> Iterator[str]:
            nonlocal count
            for raw in ids:
                count += 1
                yield raw

        def write(fh: BinaryIO) -> None:
            for part in cls._json_parts(counted(item_ids)):
                fh.write(part.encode("utf-8"))

        atomic_write_with(Path(path), write)
        return count

    @classmethod
    def _json_parts(cls, item_ids: Iterable[str]) -> Iterator[str]:
        """``json.dumps({"format": ..., "item_ids": [...]})`` in pieces, a chunk of ids each.

        The one encoder of the file format: ``json.dumps`` of a chunk without
        its brackets is that chunk's part of the whole list's encoding (same
        ``", "`` separator, same escapes).
        """
        yield json.dumps({"format": cls.FORMAT, "item_ids": []})[:-2]
        ids = iter(item_ids)
        first = True
        while chunk := [str(raw) for raw in itertools.islice(ids, _CHUNK)]:
            if "" in chunk:
                raise ValueError("item_ids must not contain the empty string")
            yield ("" if first else ", ") + json.dumps(chunk)[1:-1]
            first = False
        yield "]}"

    @classmethod
    def load(cls, path: str | os.PathLike) -> ItemVocabulary:
        """Reads a vocabulary written by :meth:`save`."""
        path = Path(path)
        return ItemVocabulary.from_json(path.read_text(encoding="utf-8"), source=str(path))

    @staticmethod
    def from_json(text: str, source: str = "vocabulary") -> ItemVocabulary:
        """The vocabulary of :meth:`to_json`'s text; ``source`` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: not a vocabulary JSON file ({err})") from err
        if not isinstance(data, dict) or data.get("format") != ItemVocabulary.FORMAT:
            raise ValueError(f"{source}: expected format {ItemVocabulary.FORMAT!r}")
        return ItemVocabulary(data["item_ids"])


class VocabularyText(ItemVocabulary):
    """An :class:`ItemVocabulary` kept as its JSON text until its ids are needed.

    Training from a PREPARED folder needs the number of items and, to
    publish, the vocabulary file; 703,060 raw ids as Python strings held
    about 60 MiB of the training process, the text 10 MiB. The text is
    checked as :meth:`ItemVocabulary.load` checks it (format, unique
    non-empty ids) when it is read; the ids are parsed again on the first
    lookup, decode or comparison.

    Example:
        >>> text = ItemVocabulary(["sku-7", "sku-3"]).to_json()
        >>> vocab = VocabularyText(text)
        >>> vocab.num_items, vocab.to_json() == text
        (2, True)
        >>> vocab.decode([2])
        ['sku-3']
    """

    def __init__(self, text: str, source: str = "vocabulary") -> None:
        # Parsed once to check it, then only the text and the count are kept.
        self._count = ItemVocabulary.from_json(text, source).num_items
        self._text = text
        self._source = source
        self._lookup = None
        self._parsed: ItemVocabulary | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> VocabularyText:
        """Reads (and checks) a vocabulary file written by :meth:`save`, keeping its text."""
        path = Path(path)
        return cls(path.read_text(encoding="utf-8"), source=str(path))

    def _vocabulary(self) -> ItemVocabulary:
        if self._parsed is None:
            self._parsed = ItemVocabulary.from_json(self._text, self._source)
        return self._parsed

    @property
    def _ids(self) -> list[str]:  # type: ignore[override]
        return self._vocabulary()._ids

    @property
    def _ids_array(self) -> np.ndarray:  # type: ignore[override]
        return self._vocabulary()._ids_array

    @property
    def num_items(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def to_json(self) -> str:
        return self._text

    def save(self, path: str | os.PathLike) -> None:
        """Writes the text it was read from (checked then), atomically; no ids parsed."""
        atomic_write_text(Path(path), self._text)
