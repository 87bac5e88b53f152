"""Numbered versions under one root: publishing, listing and ordering them.

``sasrec train --out DIR`` publishes ``DIR/1``, ``DIR/2``, ... each renamed
into place after it is complete; ``sasrec serve --model DIR`` serves the
highest one and follows new ones. A version is a numbered directory holding
``manifest.json`` (written last); staging directories (``.tmp-*``) and
numbered directories without a manifest are not versions (yet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sasrec.artifact.layout import MANIFEST_FILE
from sasrec.io import staging_directory


def is_version_dir(path: Path) -> bool:
    """Whether ``path`` is a complete model directory (it has its manifest).

    Example:
        >>> is_version_dir(Path("models/3"))  # doctest: +SKIP
        True
    """
    return (Path(path) / MANIFEST_FILE).is_file()


def list_versions(model_dir: str | os.PathLike) -> list[Path]:
    """Model versions under ``model_dir``, highest first.

    ``model_dir`` is either one version directory (returned alone) or a root of
    numbered version directories.

    Example:
        >>> [p.name for p in list_versions("models")]  # doctest: +SKIP
        ['12', '3']

    Raises:
        FileNotFoundError: ``model_dir`` does not exist.
    """
    root = Path(model_dir)
    if is_version_dir(root):
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: model directory not found")
    versions = [p for p in root.iterdir() if p.name.isdigit() and p.is_dir() and is_version_dir(p)]
    return sorted(versions, key=lambda p: int(p.name), reverse=True)


def latest_version(out_dir: str | os.PathLike) -> Path | None:
    """The highest numbered ``out_dir/N`` holding a manifest, or None."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, expected a directory of model versions")
    if not out_dir.is_dir():
        return None
    complete = [n for n in _numbered(out_dir) if is_version_dir(out_dir / str(n))]
    return out_dir / str(max(complete)) if complete else None


def is_older_version(candidate: Path, current: Path) -> bool:
    """Whether ``candidate`` is a lower version number than ``current``.

    Directories that are not both numbered are not ordered (False).

    Example:
        >>> is_older_version(Path("models/3"), Path("models/12"))
        True
        >>> is_older_version(Path("exported"), Path("models/12"))
        False
    """
    if candidate.name.isdigit() and current.name.isdigit():
        return int(candidate.name) < int(current.name)
    return False


def version_fingerprint(path: Path) -> tuple[str, int]:
    """``(path, manifest mtime)``: the same version unless it was published again.

    A loader that rejected a version remembers its fingerprint; a directory
    removed and republished under the same number gets a new one.
    """
    try:
        mtime = (Path(path) / MANIFEST_FILE).stat().st_mtime_ns
    except OSError:
        mtime = 0
    return (str(path), mtime)


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
        if not is_version_dir(target):
            raise ValueError(f"build_fn did not write a model directory with {MANIFEST_FILE}")
        if final.exists():
            raise ValueError(f"{final}: appeared while building; not overwriting it")
        try:
            os.rename(target, final)
        except OSError as err:
            raise ValueError(f"{final}: cannot publish version {version}: {err}") from err
    return final


def _numbered(out_dir: Path) -> list[int]:
    return [int(p.name) for p in out_dir.iterdir() if p.name.isdigit() and p.is_dir()]
