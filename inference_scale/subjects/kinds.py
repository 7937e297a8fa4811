"""The kinds of model the suite tells apart (some quantizers and compilers treat them
differently), without torch: the CLI lists them in ``--help``."""

from __future__ import annotations

__all__ = ["KINDS"]

KINDS: tuple[str, ...] = ("conv", "transformer", "mlp")
