"""One model version directory: save it atomically, load and check it.

The file layout is in :mod:`sasrec.artifact.layout`. Every directory is built
in a staging directory next to its final place and renamed into place, so
readers never see half a model.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from sasrec.artifact.layout import (
    CONFIG_FILE,
    FORMAT,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    VOCABULARY_FILE,
    extra_file_name,
)
from sasrec.artifact.manifest import new_manifest
from sasrec.artifact.versions import version_number
from sasrec.config import SASRecConfig
from sasrec.io import atomic_write_text, errors_name, staging_directory
from sasrec.models import SASRec
from sasrec.vocabulary import ItemVocabulary


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model directory.

    Attributes:
        model: The :class:`sasrec.models.SASRec` (not compiled).
        config: Its :class:`sasrec.config.SASRecConfig`.
        vocabulary: Raw id <-> index mapping.
        manifest: The parsed ``manifest.json``.
        metrics: Parsed ``metrics.json`` or None when absent.
        path: The directory it was loaded from.

    Example:
        >>> artifact = load_model_dir(latest_version("models/games"))  # doctest: +SKIP
        >>> ids, scores = artifact.model.top_k(histories, k=10)  # doctest: +SKIP
        >>> artifact.vocabulary.decode(ids[0].numpy())  # doctest: +SKIP
    """

    model: SASRec
    config: SASRecConfig
    vocabulary: ItemVocabulary
    manifest: dict[str, Any]
    metrics: dict[str, Any] | None
    path: Path

    def read_extra(self, name: str) -> Any | None:
        """Parsed optional JSON file ``name`` (``.json`` optional), None if absent."""
        return _read_optional_json(self.path / extra_file_name(name))


def save_model_dir(
    path: str | os.PathLike,
    model: SASRec,
    vocabulary: ItemVocabulary,
    extra_json: dict[str, object] | None = None,
) -> Path:
    """Writes a model directory at ``path`` (which must not exist), atomically.

    Args:
        path: Destination directory. If its name is an integer (a published
            version), the manifest records it as ``version``; otherwise 0.
        model: A built :class:`SASRec`; a copy without optimizer state is saved.
        vocabulary: Vocabulary with ``model.num_items`` items.
        extra_json: Optional JSON documents by file name, e.g.
            ``{"metrics": {...}, "history.json": {...}}``.

    Returns:
        ``path``.

    Raises:
        ValueError: ``path`` exists, the vocabulary does not match the model,
            or an extra name is reserved or not a plain file name.
    """
    path = Path(path)
    if path.exists():
        raise ValueError(f"{path}: already exists; refusing to overwrite a model directory")
    if not isinstance(model, SASRec):
        raise ValueError(f"model must be a sasrec.models.SASRec, received {type(model).__name__}")
    if vocabulary.num_items != model.num_items:
        raise ValueError(
            f"vocabulary has {vocabulary.num_items} items but the model has "
            f"num_items={model.num_items}"
        )
    extras = {extra_file_name(name): value for name, value in (extra_json or {}).items()}
    config = SASRecConfig.from_dict(model.get_config())
    number = version_number(path.name)
    version = 0 if number is None else number
    manifest = new_manifest(version, model.num_items, model.max_len)
    with staging_directory(path.parent, prefix=f".tmp-{path.name}-") as tmp:
        # A full disk fails Keras' zip write without a file name: name it.
        with errors_name(path / MODEL_FILE):
            _inference_copy(model).save(tmp / MODEL_FILE)
        atomic_write_text(tmp / CONFIG_FILE, config.to_json())
        vocabulary.save(tmp / VOCABULARY_FILE)
        for file_name, value in extras.items():
            atomic_write_text(tmp / file_name, json.dumps(value, indent=2, sort_keys=True))
        atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True))
        os.rename(tmp, path)
    return path


def load_model_dir(path: str | os.PathLike) -> ModelArtifact:
    """Loads a directory written by :func:`save_model_dir`.

    Raises:
        ValueError: naming the file that is missing, corrupt or inconsistent.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a model directory (does not exist or is not a directory)")
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(
            f"{manifest_path}: missing; {path} is not a complete sasrec model directory"
        )
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: expected format {FORMAT!r}")
    for name in (CONFIG_FILE, VOCABULARY_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise ValueError(f"{path / name}: missing from model directory {path}")
    try:
        config = SASRecConfig.from_dict(_read_json(path / CONFIG_FILE))
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path / CONFIG_FILE}: invalid model config: {err}") from err
    vocabulary = ItemVocabulary.load(path / VOCABULARY_FILE)
    model_file = path / MODEL_FILE
    # Keras reports a .keras file that is not a zip archive (truncated, or
    # still being copied) as "File not found", which sends an operator
    # looking for the wrong fault.
    if not zipfile.is_zipfile(model_file):
        raise ValueError(
            f"{model_file}: not a Keras archive ({model_file.stat().st_size:,} bytes; "
            "truncated, damaged or still being copied)"
        )
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as err:  # zip, h5 and Keras errors all mean "corrupt"
        raise ValueError(f"{model_file}: cannot load the Keras model: {err}") from err
    if not isinstance(model, SASRec):
        raise ValueError(
            f"{path / MODEL_FILE}: expected a SASRec model, found {type(model).__name__}"
        )
    if SASRecConfig.from_dict(model.get_config()) != config:
        raise ValueError(f"{path / CONFIG_FILE}: does not match the model in {MODEL_FILE}")
    for name, value in (("num_items", config.num_items), ("max_len", config.max_len)):
        if manifest.get(name) != value:
            raise ValueError(
                f"{manifest_path}: {name}={manifest.get(name)!r} but the model has {name}={value}"
            )
    if vocabulary.num_items != config.num_items:
        raise ValueError(
            f"{path / VOCABULARY_FILE}: {vocabulary.num_items} items but the model has "
            f"num_items={config.num_items}"
        )
    return ModelArtifact(
        model=model,
        config=config,
        vocabulary=vocabulary,
        manifest=manifest,
        metrics=_read_optional_json(path / METRICS_FILE),
        path=path,
    )


def _inference_copy(model: SASRec) -> SASRec:
    """Same weights, no optimizer or compile state: a lean, deterministic file."""
    clone = SASRec.from_config(model.get_config())
    # Variable to variable: no NumPy copy of every weight on the way (the
    # item table of a large catalogue is tens of MB).
    for target, source in zip(clone.weights, model.weights, strict=True):
        target.assign(source)
    return clone


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from err


def _read_optional_json(path: Path) -> Any | None:
    return _read_json(path) if path.is_file() else None
