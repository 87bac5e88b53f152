"""File names and columns of a PREPARED folder (``sasrec data prepare --out``).

Both engines (pandas and Spark) write this layout and :mod:`sasrec.data.prepared`
reads it; nothing else spells these names::

    PREPARED/
      manifest.json        written last: format, engine, options, counts, shard files
      vocabulary.json      ItemVocabulary (raw item id -> 1..N)
      data_stats.json      the cleaning report (DataReport)
      split.json           how the split was made (Split.summary())
      sequences/shard=K/part-NNNNN.parquet   one row per user, users hashed into shards

Example:
    >>> shard_of(["u1", "u2"], 8).tolist()
    [6, 4]
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

FORMAT = "sasrec.prepared.v1"
MANIFEST = "manifest.json"
VOCABULARY = "vocabulary.json"
DATA_STATS = "data_stats.json"
SPLIT = "split.json"
SEQUENCES = "sequences"
SHARD = "shard"
STAGING_PREFIX = ".tmp-prepared-"

# One row per user. ``items``/``timestamps`` are the user's whole cleaned
# sequence, oldest first; the split is three prefix lengths of it:
# train = items[:train_length] (0: not trained on), validation predicts
# items[valid_length] from items[:valid_length] (-1: no validation case), and
# test likewise with test_length.
USER_INDEX = "user_index"
USER_ID = "user_id"
ITEMS = "items"
TIMESTAMPS = "timestamps"
TRAIN_LENGTH = "train_length"
VALID_LENGTH = "valid_length"
TEST_LENGTH = "test_length"
COLUMNS = (USER_INDEX, USER_ID, ITEMS, TIMESTAMPS, TRAIN_LENGTH, VALID_LENGTH, TEST_LENGTH)

DEFAULT_SHARDS = 8
DEFAULT_ROWS_PER_FILE = 100_000


def shard_of(user_ids: Sequence[str] | np.ndarray, shards: int) -> np.ndarray:
    """``int32`` shard of each user: CRC-32 of the UTF-8 id modulo ``shards``.

    Spark's ``crc32`` function computes the same hash, so both engines put a
    user in the same shard.
    """
    return np.fromiter(
        (zlib.crc32(str(u).encode("utf-8")) % shards for u in user_ids),
        dtype=np.int32,
        count=len(user_ids),
    )


def part_name(number: int) -> str:
    """The name of a shard's ``number``-th file (pandas engine; Spark names its own)."""
    return f"part-{number:05d}.parquet"
