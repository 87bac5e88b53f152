"""Numbered versions under one root: publishing, listing and ordering them.

``sasrec train --out DIR`` publishes ``DIR/1``, ``DIR/2``, ... each renamed
into place after it is complete; ``sasrec serve --model DIR`` serves the
highest one and follows new ones.

What is a version (the one rule; the publisher and the watcher both use it):

- its name is a *version name*: ASCII digits ``0``-``9`` only, without a
  leading zero (regular expression ``0|[1-9][0-9]*``): ``1``, ``7``, ``12``
  are; ``007``, ``00``, ``+4``, ``-1``, `` 3``, ``1_0``, ``٣`` (Arabic-Indic),
  ``９`` (full-width) and ``²`` are not, although ``str.isdigit`` or ``int``
  accept some of them. Its number is ``int(name)``; versions are ordered by it.
- it is a directory holding a regular file ``manifest.json`` (written last),
  or a symlink that resolves to such a directory, wherever it points (see
  ``docs/serving.md``, "Hot reload: what it loads and what it ignores").

Everything else in a root is ignored and never raises: names starting with
``.`` (staging directories ``.tmp-*``, hidden files), any other name, numbered
plain files, dangling or looping symlinks, and numbered directories without a
manifest (not complete, or not yet). :func:`scan_versions` says why each
entry was ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sasrec.artifact.layout import MANIFEST_FILE, STAGING_PREFIX, STALE_STAGING_SECONDS
from sasrec.io import staging_directory

logger = logging.getLogger("sasrec.artifact")

_VERSION_NAME = re.compile(r"0|[1-9][0-9]*")


def version_number(name: str) -> int | None:
    """The number a root entry named ``name`` stands for, or None if it is no version name.

    A version name is ASCII digits only, without a leading zero.

    Example:
        >>> version_number("12"), version_number("0")
        (12, 0)
        >>> [version_number(n) for n in ("007", " 3", "+4", "٣", "²")]
        [None, None, None, None, None]
    """
    return int(name) if _VERSION_NAME.fullmatch(name) else None


@dataclass(frozen=True)
class IgnoredEntry:
    """An entry of a versions root that is not a version, and why.

    Attributes:
        name: The entry's name in the root.
        reason: Why it is not a version (for logs).
        kind: ``"hidden"`` (a name starting with ``.``: staging, dot files),
            ``"incomplete"`` (a numbered directory, or symlink to one, without
            ``manifest.json``: maybe still being written) or ``"stray"``
            (anything else: another name, a file, a broken symlink).
    """

    name: str
    reason: str
    kind: str


@dataclass(frozen=True)
class VersionScan:
    """One listing of a versions root.

    Attributes:
        versions: Complete versions, highest number first.
        ignored: Every other entry of the root, with the reason.
    """

    versions: tuple[Path, ...]
    ignored: tuple[IgnoredEntry, ...]


def is_version_dir(path: Path) -> bool:
    """Whether ``path`` is a complete model directory (it has its manifest).

    Example:
        >>> is_version_dir(Path("models/3"))  # doctest: +SKIP
        True
    """
    try:
        return (Path(path) / MANIFEST_FILE).is_file()
    except OSError:  # e.g. permission denied
        return False


def scan_versions(model_dir: str | os.PathLike) -> VersionScan:
    """The versions under ``model_dir`` (highest first) and the entries that are not.

    ``model_dir`` is either one version directory (returned alone) or a root of
    numbered version directories. No entry of the root makes this raise.

    Example:
        >>> scan = scan_versions("models")  # doctest: +SKIP
        >>> [p.name for p in scan.versions], [e.name for e in scan.ignored]  # doctest: +SKIP
        (['12', '3'], ['.tmp-x1y2', '007'])

    Raises:
        FileNotFoundError: ``model_dir`` does not exist.
        OSError: ``model_dir`` cannot be listed.
    """
    root = Path(model_dir)
    if is_version_dir(root):
        return VersionScan((root,), ())
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: model directory not found")
    return _scan_root(root)


def list_versions(model_dir: str | os.PathLike) -> list[Path]:
    """Model versions under ``model_dir``, highest first (see :func:`scan_versions`).

    Example:
        >>> [p.name for p in list_versions("models")]  # doctest: +SKIP
        ['12', '3']

    Raises:
        FileNotFoundError: ``model_dir`` does not exist.
    """
    return list(scan_versions(model_dir).versions)


def latest_version(out_dir: str | os.PathLike) -> Path | None:
    """The highest complete version ``out_dir/N``, or None."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, expected a directory of model versions")
    if not out_dir.is_dir():
        return None
    versions = _scan_root(out_dir).versions
    return versions[0] if versions else None


def is_older_version(candidate: Path, current: Path) -> bool:
    """Whether ``candidate`` is a lower version number than ``current``.

    Directories that are not both version names are not ordered (False).

    Example:
        >>> is_older_version(Path("models/3"), Path("models/12"))
        True
        >>> is_older_version(Path("exported"), Path("models/12"))
        False
    """
    older, newer = version_number(candidate.name), version_number(current.name)
    return older is not None and newer is not None and older < newer


def version_fingerprint(path: Path) -> tuple[str, int]:
    """``(path, digest)``: changes whenever the content of version ``path`` may have.

    The digest covers where ``path`` resolves to (a re-pointed symlink is a
    different version) and the name, size and mtime of every entry directly
    inside it. It is 0 when ``path`` cannot be listed (e.g. it is gone). A
    loader that rejected a version remembers its fingerprint and tries again
    once it changes: a half-copied version that is completed, a version
    removed and republished under the same number.

    Example:
        >>> version_fingerprint(Path("models/3"))  # doctest: +SKIP
        ('models/3', 8151093474513874071)
    """
    path = Path(path)
    digest = hashlib.blake2b(digest_size=8)
    try:
        digest.update(os.fsencode(os.path.realpath(path)) + b"\0")
        with os.scandir(path) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            try:
                stat = entry.stat()
                facts = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError as err:  # a dangling link inside, or a file just removed
                facts = f"error:{err.errno}"
            digest.update(os.fsencode(entry.name) + b"\0" + facts.encode() + b"\0")
    except OSError:
        return (str(path), 0)
    return (str(path), int.from_bytes(digest.digest(), "big") or 1)


def remove_stale_staging(
    out_dir: str | os.PathLike,
    max_age_seconds: float = STALE_STAGING_SECONDS,
    now: float | None = None,
) -> list[Path]:
    """Removes staging directories (``.tmp-*``) left behind by killed publishes.

    A staging directory is removed only when neither it nor anything inside
    it was modified for ``max_age_seconds`` (an hour by default; saving a
    version takes seconds and keeps touching its files, so a publish in
    progress is never removed). Symlinks and files named ``.tmp-*`` are left
    alone, nothing is followed out of ``out_dir``, and errors are logged,
    never raised. :func:`publish_version` calls it first.

    Returns:
        The removed directories.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        with os.scandir(out_dir) as listing:
            entries = [e for e in listing if e.name.startswith(STAGING_PREFIX)]
    except OSError as err:
        logger.warning("cannot list %s for stale staging directories: %s", out_dir, err)
        return removed
    for entry in entries:
        path = Path(entry.path)
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            idle = now - _newest_mtime(path)
        except OSError:  # changing under our feet: someone is working in it
            continue
        if idle < max_age_seconds:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):
            logger.warning("cannot remove stale staging directory %s", path)
        else:
            logger.info("removed staging directory %s (untouched for %.0f s)", path, idle)
            removed.append(path)
    return removed


def publish_version(out_dir: str | os.PathLike, build_fn: Callable[[Path], object]) -> Path:
    """Builds the next numbered version ``out_dir/N`` and renames it into place.

    First removes staging directories of killed publishes
    (:func:`remove_stale_staging`). ``N`` is one more than the largest entry
    with a version name, whatever it is (a version, a directory without
    manifest, a file, a broken symlink), so a number is never reused.
    ``build_fn(target)`` must write a model directory at ``target`` (a path
    inside ``out_dir/.tmp-*`` that does not exist yet), typically
    ``lambda p: save_model_dir(p, model, vocab, extras)``.

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
    remove_stale_staging(out_dir)
    version = max(_numbered(out_dir), default=0) + 1
    final = out_dir / str(version)
    with staging_directory(out_dir, prefix=STAGING_PREFIX) as tmp:
        target = tmp / str(version)
        build_fn(target)
        if not is_version_dir(target):
            raise ValueError(f"build_fn did not write a model directory with {MANIFEST_FILE}")
        if os.path.lexists(final):
            raise ValueError(f"{final}: appeared while building; not overwriting it")
        try:
            os.rename(target, final)
        except OSError as err:
            raise ValueError(f"{final}: cannot publish version {version}: {err}") from err
    return final


def _scan_root(root: Path) -> VersionScan:
    with os.scandir(root) as listing:
        names = sorted(entry.name for entry in listing)
    numbered: list[tuple[int, Path]] = []
    ignored: list[IgnoredEntry] = []
    for name in names:
        why = _not_a_version(root, name)
        if why is None:
            numbered.append((int(name), root / name))
        else:
            ignored.append(why)
    numbered.sort(key=lambda item: item[0], reverse=True)
    return VersionScan(tuple(path for _, path in numbered), tuple(ignored))


def _not_a_version(root: Path, name: str) -> IgnoredEntry | None:
    """Why entry ``name`` of ``root`` is not a version; None when it is one."""
    if name.startswith("."):
        return IgnoredEntry(name, "staging directory or hidden entry", "hidden")
    if version_number(name) is None:
        return IgnoredEntry(
            name, "not a version name (ASCII digits without a leading zero)", "stray"
        )
    path = root / name
    try:
        link = path.is_symlink()
        if not os.path.isdir(path):  # follows links: False when dangling or looping
            if link:
                reason = "symlink that does not resolve to a directory (dangling, loop or file)"
            else:
                reason = "not a directory"
            return IgnoredEntry(name, reason, "stray")
        if not (path / MANIFEST_FILE).is_file():
            what = f"symlink to {os.path.realpath(path)}" if link else "directory"
            return IgnoredEntry(
                name, f"{what} without {MANIFEST_FILE} (not a complete version yet)", "incomplete"
            )
    except OSError as err:  # e.g. permission denied
        return IgnoredEntry(name, f"cannot inspect it: {err}", "stray")
    return None


def _numbered(out_dir: Path) -> list[int]:
    numbers = (version_number(name) for name in os.listdir(out_dir))
    return [number for number in numbers if number is not None]


def _newest_mtime(path: Path) -> float:
    """The latest mtime of ``path`` and everything under it (links not followed)."""

    def fail(err: OSError) -> None:
        raise err

    newest = os.lstat(path).st_mtime
    for folder, dirs, files in os.walk(path, onerror=fail):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest
