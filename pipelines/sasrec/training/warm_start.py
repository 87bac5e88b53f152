"""``sasrec train --init-from VERSION``: start from a published model instead of from scratch.

A weekly update: last week's model, this week's log, a few epochs. What is
kept and what is new:

- **Vocabulary**: the base model's items keep their indices (1..N_old, same
  order, same meaning), items new in the log are appended after them (sorted
  as strings, as :func:`~sasrec.data.encoding.build_vocabulary` sorts), and
  base items absent from the new log stay (their rows are kept, untrained).
- **Weights**: every weight of the base model is copied; the item table's
  rows 0..N_old are copied and the new rows keep the fresh model's
  initialisation (the same initialiser as a run from scratch).
- **Architecture**: the base model's (``max_len``, ``hidden_dim``, blocks,
  heads, ...); a model flag that changes it is refused, since no weight
  could be reused. The loss and its settings may change.
- **Optimizer**: a fresh Adam (moments at zero), as after a restart; the
  learning rate and epochs are the command's.

Pass the shop's whole current log (or a recent window of it), not only the
new events: training on the new events alone would fit the model to a few
days and forget the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.config import SASRecConfig
from sasrec.models.sasrec import ENCODER_SETTINGS
from sasrec.vocabulary import ItemVocabulary


def base_version(path: str | os.PathLike) -> Path:
    """``path`` if it is a model version, else the newest version published under it."""
    from sasrec.artifact import MANIFEST_FILE, latest_version

    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"--init-from {path}: no such model version or model root")
    latest = latest_version(path)
    if latest is None:
        raise ValueError(f"--init-from {path}: neither a model version nor a root with versions")
    return Path(latest)


def extended_vocabulary(base: ItemVocabulary, fresh: ItemVocabulary) -> ItemVocabulary:
    """``base``'s items in their order, then ``fresh``'s items ``base`` lacks.

    Example:
        >>> extended_vocabulary(ItemVocabulary(["b", "a"]), ItemVocabulary(["a", "c"])).item_ids
        ['b', 'a', 'c']
    """
    known = set(base.item_ids)
    return ItemVocabulary([*base.item_ids, *(i for i in fresh.item_ids if i not in known)])


def warm_config(
    base: SASRecConfig, model_overrides: dict[str, Any], num_items: int
) -> tuple[SASRecConfig, dict[str, Any]]:
    """The base config with the new catalogue size; the overrides that remain to apply.

    Raises:
        ValueError: An override changes the architecture (an encoder setting).
    """
    changed = {
        name: value
        for name, value in model_overrides.items()
        if name in ENCODER_SETTINGS and name != "num_items" and getattr(base, name) != value
    }
    if changed:
        shown = ", ".join(
            f"{name}={value!r} (base: {getattr(base, name)!r})" for name, value in changed.items()
        )
        raise ValueError(
            f"--init-from keeps the base model's architecture; these model flags change it: "
            f"{shown}. Drop them, or train from scratch."
        )
    rest = {k: v for k, v in model_overrides.items() if k not in ENCODER_SETTINGS}
    # The loss denominator is a property of the data (mean positions per batch): recomputed.
    return base.replace(num_items=num_items, loss_denominator=None), rest


def copy_base_weights(target: Any, base: Any, base_num_items: int) -> int:
    """Copies ``base``'s weights into ``target`` (built); returns the item rows copied.

    Weights are matched by path below the model's own name. A weight whose first axis is
    (``num_items + 1`` rows) gets the base rows ``0..base_num_items`` and keeps
    its own initial values below them; every other weight must have the same
    shape in both.

    Raises:
        ValueError: The two models' weights do not correspond.
    """
    base_weights = {_inner_path(w): w for w in base.weights}
    target_weights = {_inner_path(w): w for w in target.weights}
    if set(base_weights) != set(target_weights):
        missing = sorted(set(base_weights) ^ set(target_weights))[:5]
        raise ValueError(
            f"--init-from: the base model's weights differ from this model's: {missing}"
        )
    rows = 0
    for path, weight in target_weights.items():
        old = np.asarray(base_weights[path].numpy())
        new = np.asarray(weight.numpy())
        if old.shape == new.shape:
            weight.assign(old)
        elif old.shape[1:] == new.shape[1:] and old.shape[0] == base_num_items + 1 <= new.shape[0]:
            new[: old.shape[0]] = old
            weight.assign(new)
            rows = old.shape[0] - 1
        else:
            raise ValueError(
                f"--init-from: weight {path} has shape {old.shape} in the base model and "
                f"{new.shape} here"
            )
    return rows


def _inner_path(weight: Any) -> str:
    """The path below the model: ``sas_rec_3/encoder/x`` and ``encoder/x`` -> ``encoder/x``.

    A model built here carries its own name in front; one loaded from a file does not.
    """
    parts = weight.path.split("/")
    return "/".join(parts[parts.index("encoder") :] if "encoder" in parts else parts[1:])
