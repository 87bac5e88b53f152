"""Percentile bootstrap confidence interval of a mean (vectorised, seeded)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# Bounds the (samples, n) index matrix drawn at once (~32 MB of int64).
_MAX_ELEMENTS_PER_CHUNK = 4_000_000


def bootstrap_ci(
    values: ArrayLike,
    num_samples: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval of ``mean(values)``.

    Resamples the values with replacement ``num_samples`` times, takes each
    resample's mean and returns the ``alpha / 2`` and ``1 - alpha / 2``
    quantiles of those means. Resamples are drawn as index matrices in chunks,
    so memory stays bounded for any number of users.

    Args:
        values: 1-D finite per-user metric values.
        num_samples: Number of bootstrap resamples.
        alpha: 0.05 gives a 95% interval.
        seed: Seed of the ``np.random.Generator``; the same seed gives the
            same interval.

    Returns:
        ``(low, high)`` as Python floats.

    Example:
        >>> low, high = bootstrap_ci([0.0, 1.0, 1.0, 0.0], num_samples=200, seed=1)
        >>> 0.0 <= low <= 0.5 <= high <= 1.0
        True
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, received shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("values must be finite (no NaN or inf)")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, received {num_samples!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), received alpha={alpha!r}")
    rng = np.random.default_rng(seed)
    n = data.size
    chunk = max(1, _MAX_ELEMENTS_PER_CHUNK // n)
    means = np.empty(num_samples, dtype=np.float64)
    for start in range(0, num_samples, chunk):
        stop = min(num_samples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = data[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)
