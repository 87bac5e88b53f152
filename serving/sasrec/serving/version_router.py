"""Several model versions at once: which one answers a request.

With ``--keep-versions N`` the server keeps the N highest loaded versions
(hot reload adds each new one and drops the oldest beyond N), as TF
Serving's ``model_version_policy: latest {N}``. Two labels name them, as TF
Serving's ``version_labels``: ``canary`` is the newest and ``stable`` the one
before it (with one version both labels name it); ``--version-label
stable=3`` pins a label to a version number instead.

A request may pin a version (``RecommendRequest.model_version``) or a label
(``version_label``); a version or label that is not loaded is ``NOT_FOUND``.
Unpinned requests go to ``stable``, except ``--canary-percent`` of them,
which go to ``canary``: by a hash of ``user_id`` when the request has one
(a user stays on one side of the split), else at random.
"""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from sasrec.serving.errors import VersionNotFoundError

STABLE = "stable"
CANARY = "canary"
LABELS = (STABLE, CANARY)


def parse_version_labels(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["stable=3"]`` -> ``{"stable": "3"}``; unknown labels or bad numbers raise.

    Example:
        >>> parse_version_labels(["stable=3", "canary=4"])
        {'stable': '3', 'canary': '4'}
    """
    labels: dict[str, str] = {}
    for value in values:
        label, _, version = value.partition("=")
        if label not in LABELS or not version.isdigit() or version != str(int(version)):
            raise ValueError(
                f"--version-label must be LABEL=VERSION with LABEL one of {LABELS} and "
                f"VERSION a version number, received {value!r}"
            )
        labels[label] = version
    return labels


class VersionRouter:
    """The loaded versions, their labels, and the pick for each request.

    Args:
        keep_versions: Versions kept loaded (>= 1): the highest ones.
        canary_percent: Share of unpinned requests sent to ``canary`` (0..100).
        labels: Label -> version number pins (``parse_version_labels``).
        on_change: Called with the loaded version names after each change (metrics).
        on_pick: Called with ``(version, label)`` of each :meth:`route` answer (metrics).
        seed: Seed of the random split of requests without ``user_id``.

    Example:
        >>> router = VersionRouter(keep_versions=2, canary_percent=10)
        >>> router.add(predictor_3); router.add(predictor_4)  # doctest: +SKIP
        >>> router.pick(version_label="canary").version  # doctest: +SKIP
        '4'
    """

    def __init__(
        self,
        keep_versions: int = 1,
        canary_percent: float = 0.0,
        labels: Mapping[str, str] | None = None,
        on_change: Callable[[tuple[str, ...]], None] | None = None,
        on_pick: Callable[[str, str], None] | None = None,
        seed: int | None = None,
    ) -> None:
        if keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, received {keep_versions}")
        if not 0.0 <= canary_percent <= 100.0:
            raise ValueError(f"canary_percent must be in 0..100, received {canary_percent}")
        self.keep_versions = int(keep_versions)
        self.canary_percent = float(canary_percent)
        self.labels = dict(labels or {})
        self._on_change = on_change
        self._on_pick = on_pick
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # version name -> predictor, ascending by version number; replaced
        # whole on change, so readers never take the lock.
        self._versions: dict[str, Any] = {}

    # ------------------------------------------------------------------ loading
    def add(self, predictor: Any) -> None:
        """Adds a loaded version; drops the lowest beyond ``keep_versions``.

        A version pinned by a label is never dropped for a newer one.
        """
        with self._lock:
            versions = dict(self._versions)
            versions[predictor.version] = predictor
            ordered = sorted(versions, key=_number)
            pinned = set(self.labels.values())
            while len(ordered) > self.keep_versions:
                victim = next((v for v in ordered if v not in pinned), ordered[0])
                ordered.remove(victim)
            self._versions = {v: versions[v] for v in ordered}
            names = tuple(ordered)
        if self._on_change is not None:
            self._on_change(names)

    @property
    def versions(self) -> tuple[str, ...]:
        """Loaded version names, lowest first."""
        return tuple(self._versions)

    def latest(self) -> Any | None:
        """The highest loaded version's predictor (None before the first load)."""
        versions = self._versions
        return versions[next(reversed(versions))] if versions else None

    def labelled(self, label: str) -> Any | None:
        """The predictor a label names now (None if nothing is loaded)."""
        versions = self._versions
        if not versions:
            return None
        pinned = self.labels.get(label)
        if pinned is not None:
            return versions.get(pinned)
        names = list(versions)
        if label == CANARY or len(names) == 1:
            return versions[names[-1]]
        return versions[names[-2]]

    def label_of(self, predictor: Any) -> str:
        """``canary``, ``stable`` or ``""`` for a version without a label now."""
        for label in (CANARY, STABLE):
            if self.labelled(label) is predictor:
                return label
        return ""

    # ------------------------------------------------------------------ routing
    def route(self, request: Any) -> tuple[Any, str]:
        """``(predictor, label)`` for a ``RecommendRequest`` (its pins and ``user_id``).

        Returns ``(None, "")`` before the first load; see :meth:`pick`.
        """
        predictor = self.pick(request.model_version, request.version_label, request.user_id)
        if predictor is None:
            return None, ""
        label = self.label_of(predictor)
        if self._on_pick is not None:
            self._on_pick(predictor.version, label)
        return predictor, label

    def pick(self, model_version: str = "", version_label: str = "", user_id: str = "") -> Any:
        """The predictor for a request; None when no version is loaded yet.

        Raises:
            VersionNotFoundError: the pinned version or label is not loaded.
        """
        versions = self._versions
        if not versions:
            return None
        if model_version:
            predictor = versions.get(model_version)
            if predictor is None:
                raise VersionNotFoundError(
                    f"model_version {model_version!r} is not loaded (loaded: {', '.join(versions)})"
                )
            return predictor
        if version_label:
            if version_label not in LABELS:
                raise VersionNotFoundError(
                    f"version_label {version_label!r} is not a label (labels: {', '.join(LABELS)})"
                )
            predictor = self.labelled(version_label)
            if predictor is None:
                raise VersionNotFoundError(
                    f"version_label {version_label!r} names version "
                    f"{self.labels.get(version_label)}, which is not loaded"
                )
            return predictor
        if self.canary_percent > 0 and self._to_canary(user_id):
            return self.labelled(CANARY) or self.latest()
        return self.labelled(STABLE) or self.latest()

    def _to_canary(self, user_id: str) -> bool:
        if user_id:
            bucket = zlib.crc32(user_id.encode("utf-8")) % 10_000
        else:
            bucket = self._random.randrange(10_000)
        return bucket < self.canary_percent * 100


def _number(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)
