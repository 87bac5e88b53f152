"""MovieLens archives: download once into a cache, verify, extract, read.

``load_movielens("ml-100k") -> (df, report)`` downloads
``https://files.grouplens.org/datasets/movielens/ml-100k.zip`` (or ``ml-1m``)
into ``cache_dir`` (default ``$SASREC_CACHE`` or ``~/.cache/sasrec``) when the
archive is not there yet, checks it, extracts it and reads it with the
matching preset.

Integrity: the archive's SHA-256 must match ``sha256=`` or, for the official
archives, the pinned value in ``ARCHIVES`` (the published GroupLens files; the
ml-1m value matches the MD5 GroupLens publishes). A cached archive is checked
again before it is extracted. Downloads go to a temporary file and extraction
to a staging directory, both renamed into place: an interrupted or corrupt
download leaves nothing behind. ``url=`` may be any URL ``urllib`` opens,
including ``file://`` (tests use that; they never touch the network).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.io import staging_directory

BASE_URL = "https://files.grouplens.org/datasets/movielens"
# name -> (ratings file inside the extracted folder, reader preset, SHA-256 of the zip)
ARCHIVES: dict[str, tuple[str, str, str]] = {
    "ml-100k": (
        "u.data",
        "ml-100k",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    ),
    "ml-1m": (
        "ratings.dat",
        "ml-1m",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    ),
}


def default_cache_dir() -> Path:
    """``$SASREC_CACHE`` or ``~/.cache/sasrec``."""
    return Path(os.environ.get("SASREC_CACHE") or Path.home() / ".cache" / "sasrec")


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise DataError(f"cannot download {url}: {err}", path=target) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _verify(archive: Path, expected: str) -> None:
    """Raises (and deletes the archive) unless its SHA-256 is ``expected``."""
    actual = _digest(archive, "sha256")
    if actual != expected.lower():
        archive.unlink(missing_ok=True)
        raise DataError(
            f"sha256 checksum mismatch: expected {expected.lower()}, found {actual}; the "
            "archive was removed, try again",
            path=archive,
        )


def _extract(archive: Path, name: str, destination: Path) -> None:
    try:
        with staging_directory(destination.parent) as staging:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    resolved = (staging / member).resolve()
                    if not str(resolved).startswith(str(staging.resolve())):
                        raise DataError(f"unsafe member path {member!r} in archive", path=archive)
                zf.extractall(staging)
            inner = staging / name
            source = inner if inner.is_dir() else staging
            os.rename(source, destination)
    except zipfile.BadZipFile as err:
        archive.unlink(missing_ok=True)
        raise DataError(f"not a valid zip archive ({err})", path=archive) from None


def download_movielens(
    name: str = "ml-100k",
    cache_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Makes sure the extracted archive is in the cache; returns its folder.

    Args:
        name: ``"ml-100k"`` or ``"ml-1m"`` (other names need ``url`` and ``sha256``).
        cache_dir: Cache folder (default :func:`default_cache_dir`).
        url: Where to download from (default the GroupLens URL).
        sha256: Expected SHA-256 of the zip (default: the pinned official value).

    Returns:
        ``cache_dir / name``, holding the archive's files (e.g. ``u.data``).

    Raises:
        DataError: Download failure, checksum mismatch or a broken archive.
    """
    if name not in ARCHIVES and (url is None or sha256 is None):
        raise ValueError(
            f"unknown MovieLens archive {name!r} (known: {sorted(ARCHIVES)}); "
            "other names need url= and sha256="
        )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache / name
    archive = cache / f"{name}.zip"
    if folder.is_dir():
        return folder
    if not archive.exists():
        _download(url or f"{BASE_URL}/{name}.zip", archive)
    _verify(archive, sha256 or ARCHIVES[name][2])
    _extract(archive, name, folder)
    return folder


def load_movielens(
    name: str = "ml-100k",
    cache_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    **options: Any,
) -> tuple[pd.DataFrame, DataReport]:
    """Downloads (if needed) and reads a MovieLens ratings file.

    Example:
        ``df, report = load_movielens("ml-1m")`` gives 6,040 users and 1,000,209
        events (needs the network the first time).
    """
    from sasrec.data.readers import load_interactions

    folder = download_movielens(name, cache_dir, url=url, sha256=sha256)
    file, preset, _ = ARCHIVES.get(name, ("u.data", "ml-100k", ""))
    return load_interactions(folder / file, preset=preset, **options)
