"""The one switch for tests whose verdict rests on timing real compute on this host (a 20% step
in a history, a simulator against a load test): ``INFERENCE_SCALE_TIMING_TESTS=0`` skips them,
by choice, on a host whose speed swings wider than what they check."""

from __future__ import annotations

import os

import pytest

__all__ = ["TIMING"]

TIMING = pytest.mark.skipif(
    os.environ.get("INFERENCE_SCALE_TIMING_TESTS") == "0",
    reason="timing-sensitive (checks figures against this host's noise), skipped by INFERENCE_SCALE_TIMING_TESTS=0",
)
