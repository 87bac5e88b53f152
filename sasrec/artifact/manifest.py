"""``manifest.json``: what it records and how readers interpret it.

The manifest is written last into a version directory, so its presence marks
a complete model (see :mod:`sasrec.artifact.versions`).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import sasrec
from sasrec.artifact.layout import FORMAT
from sasrec.artifact.versions import version_number

logger = logging.getLogger("sasrec.artifact")


def new_manifest(version: int, num_items: int, max_len: int) -> dict[str, Any]:
    """The manifest of a version being saved now.

    Example:
        >>> manifest = new_manifest(3, num_items=40, max_len=50)
        >>> manifest["format"], manifest["version"], manifest["max_len"]
        ('sasrec.model.v1', 3, 50)
    """
    return {
        "format": FORMAT,
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "sasrec_version": sasrec.__version__,
        "num_items": num_items,
        "max_len": max_len,
    }


def manifest_max_len(manifest: dict[str, Any], model: Any) -> int:
    """The history window: the manifest's ``max_len``, else the model config's.

    Example:
        >>> manifest_max_len({"max_len": 4}, model=None)
        4
    """
    if "max_len" in manifest:
        return int(manifest["max_len"])
    return int(model.max_len)


def manifest_created_at(manifest: dict[str, Any]) -> dt.datetime | None:
    """When the version was saved (UTC if the text has no zone); None if unknown.

    Example:
        >>> manifest_created_at({"created_at": "2026-01-02T03:04:05Z"}).isoformat()
        '2026-01-02T03:04:05+00:00'
        >>> manifest_created_at({}) is None
        True
    """
    value = manifest.get("created_at")
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("manifest created_at is not ISO 8601: %r", value)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def version_name(path: Path | None, manifest: dict[str, Any]) -> str:
    """The version a directory serves as.

    A numbered directory's name is the version the watcher orders by (TF
    Serving style); any other directory reports the manifest's ``version``.

    Example:
        >>> version_name(Path("models/12"), {"version": 0})
        '12'
        >>> version_name(Path("exported"), {"version": 3})
        '3'
    """
    if path is not None and version_number(path.name) is not None:
        return path.name
    return str(manifest.get("version", path.name if path is not None else ""))
