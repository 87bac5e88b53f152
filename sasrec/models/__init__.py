"""Models: :class:`SASRec` (encoder + next-item task)."""

from sasrec.models.sasrec import SASRec

__all__ = ["SASRec"]
