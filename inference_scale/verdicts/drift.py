"""The drift of the machine between and within runs, read from the reference workload that
:mod:`inference_scale.measure.reference` recorded in each run's ``machine_info``. Torch-free."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from inference_scale.verdicts.runs import Run

__all__ = ["KEY", "ReferenceSpeed", "drift", "reference_speed"]

KEY = "reference"  # under machine_info["inference_scale"]


@dataclass(frozen=True)
class ReferenceSpeed:
    """A run's reference: ``speed`` is the geometric mean of its GEMM and conv GFLOP/s over
    the start and end measurements; ``within`` is end/start speed (None with only one)."""

    speed: float
    within: float | None


def _speed(sample: Any) -> float | None:
    if not isinstance(sample, dict):
        return None
    values = [sample.get("gemm_gflops"), sample.get("conv_gflops")]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
        return None
    return math.sqrt(float(values[0]) * float(values[1]))  # type: ignore[arg-type]


def reference_speed(machine_info: dict[str, Any]) -> ReferenceSpeed | None:
    """The reference recorded in ``machine_info``, or None when the run has none."""
    section = machine_info.get("inference_scale") if isinstance(machine_info, dict) else None
    ref = section.get(KEY) if isinstance(section, dict) else None
    if not isinstance(ref, dict):
        return None
    start, end = _speed(ref.get("start")), _speed(ref.get("end"))
    speeds = [s for s in (start, end) if s is not None]
    if not speeds:
        return None
    return ReferenceSpeed(
        speed=math.exp(statistics.fmean(math.log(s) for s in speeds)),
        within=None if start is None or end is None else end / start,
    )


def drift(base: Run, new: Run, threshold: float) -> tuple[float | None, list[str]]:
    """The new/base speed factor of the machine (None where a run has no reference) and the
    lines that describe it."""
    rb, rn = reference_speed(base.machine_info), reference_speed(new.machine_info)
    lines = []
    for label, ref in (("base", rb), ("new", rn)):
        if ref is not None and ref.within is not None:
            lines.append(f"reference within the {label} run (end/start): {ref.within:.3f}")
    if rb is None or rn is None:
        if rb is not None or rn is not None:
            lines.append("only one run has a reference workload: machine drift between them is unknown")
        return None, lines
    factor = rn.speed / rb.speed
    lines.append(f"reference between runs (new/base speed): {factor:.3f}")
    moved = [abs(math.log(x)) > math.log1p(threshold) for x in (factor, rb.within or 1.0, rn.within or 1.0)]
    if any(moved):
        lines.append(
            f"the machine drifted by more than the {threshold:.0%} threshold: timings moved for reasons outside "
            "the code (--normalize divides the between-run factor out; `inference-scale ab` interleaves instead)"
        )
    return factor, lines
