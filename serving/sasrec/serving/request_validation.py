"""Checking a recommendation request against the server's limits, before any encoding."""

from __future__ import annotations

import numpy as np

from sasrec.serving.domain import DEFAULT_K, Limits, RecommendationRequest
from sasrec.serving.errors import FieldViolation, InvalidRequestError


def validate_request(request: RecommendationRequest, limits: Limits) -> None:
    """Raises :class:`InvalidRequestError` listing every field that breaks a limit.

    ``k`` must be in ``0..max_k`` (0 means the default), each id list within
    its cap and free of empty ids. All violations are reported at once, in
    field order.

    Example:
        >>> validate_request(RecommendationRequest(history=("a",), k=3), Limits())
        >>> validate_request(RecommendationRequest(history=("",)), Limits())
        Traceback (most recent call last):
        ...
        sasrec.serving.errors.InvalidRequestError: history[0]: empty item id
    """
    violations: list[FieldViolation] = []
    k = request.k
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 0 <= k <= limits.max_k:
        violations.append(
            FieldViolation("k", f"must be in 0..{limits.max_k} (0 means {DEFAULT_K}), received {k}")
        )
    for name, ids, cap in (
        ("history", request.history, limits.max_history),
        ("allowed_items", request.allowed_items, limits.max_item_list),
        ("excluded_items", request.excluded_items, limits.max_item_list),
    ):
        if len(ids) > cap:
            violations.append(FieldViolation(name, f"at most {cap} item ids, received {len(ids)}"))
        elif "" in ids:
            violations.append(FieldViolation(f"{name}[{ids.index('')}]", "empty item id"))
    if violations:
        raise InvalidRequestError(violations)
