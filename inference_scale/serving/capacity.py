"""Capacity on paper, from the simulator: how many replicas (each with its own cores, all fed
by one queue, as Triton's instances of one model are) serve ``qps`` with p99 within the budget,
for each batching policy, and the policy that needs the fewest cores. Also ``advise --qps N
--p99-ms X`` on a serve JSON: the state and policy needing the fewest cores within the quality
budget."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_scale.errors import MissingFileError
from inference_scale.serving.search import Policy, ServingError, batch_sizes, check_budget
from inference_scale.serving.simulate import SIM_QUERIES, simulate_probe
from inference_scale.serving.times import ServiceTimes

__all__ = [
    "Plan",
    "add_capacity_options",
    "advise_serve",
    "candidate_policies",
    "check_qps",
    "plan_replicas",
    "replicas_for",
]

MAX_REPLICAS = 4096  # beyond this the answer is "another machine class", not a count
SERVE_KIND = "inference-scale-serve"


def check_qps(qps: float) -> float:
    if isinstance(qps, bool) or not isinstance(qps, (int, float)) or not math.isfinite(qps) or qps <= 0:
        raise ServingError(f"--qps {qps!r} is not valid; give a rate in queries per second > 0, such as 200")
    return float(qps)


@dataclass(frozen=True)
class Plan:
    """Replicas of one policy that serve ``qps`` within the budget, and its simulated p99."""

    policy: Policy
    replicas: int
    cores: int
    p99_ms: float


def candidate_policies(max_batch: int, max_delay_ms: float) -> list[Policy]:
    """Every prepared batch size as max batch, each with delays 0, half and all of ``max_delay_ms``."""
    delays = sorted({0.0, max_delay_ms / 2, float(max_delay_ms)})
    return [Policy(b, d) for b in batch_sizes(max_batch) for d in delays if b > 1 or d == 0.0]


def replicas_for(
    service: ServiceTimes | Mapping[int, Sequence[float]],
    policy: Policy,
    qps: float,
    budget_ms: float,
    *,
    seed: int = 0,
) -> tuple[int, float] | None:
    """The fewest replicas sharing one queue whose simulated p99 at ``qps`` is within the
    budget, and that p99; None when a lone request already misses it or it takes too many."""
    sizes = ServiceTimes.of(service).up_to(policy.max_batch)
    if sizes.median(sizes.sizes[0]) * 1e3 > budget_ms:
        return None
    full = sizes.sizes[-1]
    # Below this count the replicas cannot keep up even with every batch full (utilization >= 1).
    c = max(1, math.ceil(qps * sizes.median(full) / full))
    n = max(SIM_QUERIES, int(qps * 10))
    while c <= MAX_REPLICAS:
        probe = simulate_probe(qps, n, sizes, policy, budget_ms, servers=c, seed=seed)
        if probe.passed:
            return c, probe.p99_ms
        c = c + 1 if c < 64 else math.ceil(c * 1.05)
    return None


def plan_replicas(
    service: ServiceTimes | Mapping[int, Sequence[float]],
    policies: Sequence[Policy],
    qps: float,
    budget_ms: float,
    *,
    threads: int,
    seed: int = 0,
) -> list[Plan]:
    """Each policy's replica count for ``qps``, fewest cores first (ties: lower p99)."""
    plans = []
    for policy in policies:
        found = replicas_for(service, policy, qps, budget_ms, seed=seed)
        if found is not None:
            plans.append(Plan(policy=policy, replicas=found[0], cores=found[0] * threads, p99_ms=found[1]))
    return sorted(plans, key=lambda p: (p.cores, p.p99_ms))


def add_capacity_options(p: argparse.ArgumentParser, number: Any) -> None:
    """``advise --qps N --p99-ms X``: capacity advice from a serve JSON."""
    p.add_argument("--qps", type=float, metavar="N", help="with a serve JSON: queries per second to serve")
    p.add_argument("--p99-ms", type=float, metavar="X", help="with a serve JSON: the p99 latency budget in ms")


def _quality_drop(states: Mapping[str, Any], slug: str) -> float | None:
    """Points of accuracy below fp32 (else top-1 disagreement with fp32); 0 for fp32 itself."""
    q = states[slug].get("quality", {})
    base = states.get("fp32", {}).get("quality", {})
    if "accuracy" in q and "accuracy" in base:
        return 100.0 * (base["accuracy"] - q["accuracy"])
    if "top1_agreement" in q:
        return 100.0 * (1.0 - q["top1_agreement"])
    return 0.0 if slug == "fp32" else None


def advise_serve(args: argparse.Namespace) -> int:
    """The state and policy needing the fewest cores for ``--qps`` at ``--p99-ms`` within
    ``--max-accuracy-drop``, from serve JSON files. Exit 0 with a pick, 1 when none fits."""
    if args.qps is None or args.p99_ms is None:
        raise ServingError("capacity advice needs both --qps N and --p99-ms X (with a serve JSON)")
    qps, budget = check_qps(args.qps), check_budget(args.p99_ms)
    if not args.runs:
        raise ServingError("give the serve JSON to plan from, e.g. `advise serve.json --qps 200 --p99-ms 100`")
    status = 0
    for spec in args.runs:
        path = Path(spec)
        if not path.is_file():
            raise MissingFileError(f"serve JSON {spec!r} does not exist (write one with `inference-scale serve`)")
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("kind") != SERVE_KIND:
            raise ServingError(f"{spec} is not a serve JSON (from `inference-scale serve ... --json`)")
        policies = candidate_policies(data["policy"]["max_batch"], data["policy"]["max_delay_ms"])
        best: tuple[str, Plan] | None = None
        print(f"{data['model']}: {qps:g} queries/s at p99 <= {budget:g} ms ({data['host']}, {data['threads']} "
              f"thread(s) per replica)")  # fmt: skip
        for slug, entry in data["states"].items():
            drop = _quality_drop(data["states"], slug)
            if drop is None or drop > args.max_accuracy_drop:
                why = "no quality measured" if drop is None else f"quality drop {drop:.2f} points"
                print(f"  {slug}: out ({why} > {args.max_accuracy_drop:g})")
                continue
            service = ServiceTimes.from_record(entry["service_s"])
            plans = plan_replicas(service, policies, qps, budget, threads=data["threads"], seed=data["seed"])
            if not plans:
                one = service.median(service.sizes[0]) * 1e3
                print(f"  {slug}: no policy meets p99 <= {budget:g} ms (a lone request takes {one:.2f} ms)")
                continue
            top = plans[0]
            print(f"  {slug}: {top.replicas} replica(s), {top.cores} core(s), {top.policy.label}, "
                  f"simulated p99 {top.p99_ms:.2f} ms")  # fmt: skip
            if best is None or (top.cores, top.p99_ms) < (best[1].cores, best[1].p99_ms):
                best = (slug, top)
        if best is None:
            print(f"  pick: none: no state meets p99 <= {budget:g} ms within the quality budget")
            status = 1
        else:
            slug, top = best
            print(f"  pick: {slug} with {top.policy.label}: {top.replicas} replica(s) = {top.cores} core(s)")
    return status
