"""Model directories: save, load and publish numbered versions atomically.

Layout of one version (see ``docs/architecture.md``)::

    model.keras        the Keras model (loads with safe_mode=True, no optimizer)
    config.json        SASRecConfig
    vocabulary.json    ItemVocabulary
    <extra>.json       optional: metrics.json, data_stats.json, history.json, ...
    manifest.json      written last; a directory without it is not a model

Every directory is built in a staging directory next to its final place and
renamed into place, so readers never see half a model.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

import sasrec
from sasrec.config import SASRecConfig
from sasrec.io import atomic_write_text, staging_directory
from sasrec.models import SASRec
from sasrec.vocabulary import ItemVocabulary

FORMAT = "sasrec.model.v1"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
_RESERVED = {MODEL_FILE, CONFIG_FILE, VOCABULARY_FILE, MANIFEST_FILE}
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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
        return _read_optional_json(self.path / _extra_file_name(name))


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
    extras = {_extra_file_name(name): value for name, value in (extra_json or {}).items()}
    config = SASRecConfig.from_dict(model.get_config())
    version = int(path.name) if path.name.isdigit() else 0
    manifest = {
        "format": FORMAT,
        "version": version,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "sasrec_version": sasrec.__version__,
        "num_items": model.num_items,
        "max_len": model.max_len,
    }
    with staging_directory(path.parent, prefix=f".tmp-{path.name}-") as tmp:
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
    try:
        model = keras.saving.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
    except Exception as err:  # zip, h5 and Keras errors all mean "corrupt"
        raise ValueError(f"{path / MODEL_FILE}: cannot load the Keras model: {err}") from err
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


def publish_version(out_dir: str | os.PathLike, build_fn: Callable[[Path], object]) -> Path:
    """Builds the next numbered version ``out_dir/N`` and renames it into place.

    ``N`` is one more than the largest numbered entry (complete or not, so a
    number is never reused). ``build_fn(target)`` must write a model
    directory at ``target`` (a path inside ``out_dir/.tmp-*`` that does not
    exist yet), typically ``lambda p: save_model_dir(p, model, vocab, extras)``.

    Returns:
        The published directory ``out_dir/N``.

    Raises:
        ValueError: ``out_dir`` is a file, ``build_fn`` wrote no manifest, or
            version ``N`` appeared concurrently.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, expected a directory of model versions")
    out_dir.mkdir(parents=True, exist_ok=True)
    version = max(_numbered(out_dir), default=0) + 1
    final = out_dir / str(version)
    with staging_directory(out_dir) as tmp:
        target = tmp / str(version)
        build_fn(target)
        if not (target / MANIFEST_FILE).is_file():
            raise ValueError(f"build_fn did not write a model directory with {MANIFEST_FILE}")
        if final.exists():
            raise ValueError(f"{final}: appeared while building; not overwriting it")
        try:
            os.rename(target, final)
        except OSError as err:
            raise ValueError(f"{final}: cannot publish version {version}: {err}") from err
    return final


def latest_version(out_dir: str | os.PathLike) -> Path | None:
    """The highest numbered ``out_dir/N`` holding a manifest, or None."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, expected a directory of model versions")
    if not out_dir.is_dir():
        return None
    complete = [n for n in _numbered(out_dir) if (out_dir / str(n) / MANIFEST_FILE).is_file()]
    return out_dir / str(max(complete)) if complete else None


def _numbered(out_dir: Path) -> list[int]:
    return [int(p.name) for p in out_dir.iterdir() if p.name.isdigit() and p.is_dir()]


def _inference_copy(model: SASRec) -> SASRec:
    """Same weights, no optimizer or compile state: a lean, deterministic file."""
    clone = SASRec.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def _extra_file_name(name: str) -> str:
    file_name = name if name.endswith(".json") else f"{name}.json"
    if not _EXTRA_NAME.match(file_name) or file_name in _RESERVED:
        raise ValueError(
            f"extra JSON name must be a plain file name other than {sorted(_RESERVED)}, "
            f"received {name!r}"
        )
    return file_name


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from err


def _read_optional_json(path: Path) -> Any | None:
    return _read_json(path) if path.is_file() else None
