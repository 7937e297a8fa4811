"""Unit facts shared by sizing, the reference workload and the reports, without torch."""

from __future__ import annotations

__all__ = ["flops_from_macs"]


def flops_from_macs(macs: int) -> int:
    """FLOPs of ``macs`` multiply-accumulates: 2 each, one multiply and one add (ptflops counts
    MACs; some tools, fvcore among them, call a MAC one "flop", which halves this figure)."""
    return 2 * int(macs)
