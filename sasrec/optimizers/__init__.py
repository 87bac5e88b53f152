"""Optimizers, registered for serialization (package ``sasrec``)."""

from sasrec.optimizers.fused_adam import FusedAdam

__all__ = ["FusedAdam"]
