"""Domain errors of the serving layer; the servicer maps each to a gRPC status code.

| error | gRPC status |
| --- | --- |
| :class:`InvalidRequestError` | ``INVALID_ARGUMENT`` (+ ``google.rpc.BadRequest``) |
| :class:`ModelUnavailableError` | ``UNAVAILABLE`` |
| :class:`DeadlineExceededError` | ``DEADLINE_EXCEEDED`` |
| :class:`OverloadedError` | ``RESOURCE_EXHAUSTED`` |
| :class:`VersionNotFoundError` | ``NOT_FOUND`` |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, e.g. ``FieldViolation("history[3]", "empty item id")``."""

    field: str
    description: str


class InvalidRequestError(ValueError):
    """A request the model cannot answer as asked; names every bad field.

    Example:
        >>> err = InvalidRequestError([FieldViolation("k", "must be <= 1000, received 5000")])
        >>> str(err)
        'k: must be <= 1000, received 5000'
    """

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    def prefixed(self, prefix: str) -> InvalidRequestError:
        """The same violations with fields under ``prefix`` (e.g. ``requests[2].``)."""
        return InvalidRequestError(
            [FieldViolation(prefix + v.field, v.description) for v in self.violations]
        )


class ModelUnavailableError(RuntimeError):
    """No model is loaded yet, or the server is shutting down."""


class DeadlineExceededError(TimeoutError):
    """The caller's deadline passed before the work started; the work was skipped."""


class OverloadedError(RuntimeError):
    """The scoring queue is full; the caller should back off and retry."""


class VersionNotFoundError(LookupError):
    """The request pins a model version or label that is not loaded."""
