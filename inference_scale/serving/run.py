"""``serve``: for each state, service times per batch size, the simulator's highest rate under
the p99 budget, the real load test's (LoadGen's search), every probe measured and simulated, a
check at 70% of the measured rate, and (with ``qps``) the replicas to serve it."""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference_scale.atomic import check_output_path, write_json_atomic
from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InvalidValueError
from inference_scale.measure.suite import Options, Session
from inference_scale.runtime import cpu_name, threads
from inference_scale.serving.capacity import SERVE_KIND, candidate_policies, check_qps, plan_replicas
from inference_scale.serving.loadgen import batch_overhead_seconds, run_probe
from inference_scale.serving.search import Policy, Probe, batch_sizes, check_budget, min_queries, search_highest_rate
from inference_scale.serving.service import check_state, prepare, time_service
from inference_scale.serving.simulate import simulate_probe, simulated_highest_rate

__all__ = ["CHECK_LOAD", "serve"]

CHECK_LOAD = 0.7  # the simulator's p99 is checked against a real probe at this share of the highest rate
MAX_PROBES = 12  # per state: doubling and bisecting to 5% takes 5 to 9
MAX_PROBE_S: float = DEFAULTS["max_probe_s"]  # the check probe at 70% may run up to 1/0.7 of it


def _say(text: str) -> None:
    print(f"serve: {text}", file=sys.stderr, flush=True)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _probe_row(measured: Probe, simulated: Probe) -> dict[str, Any]:
    return {
        "offered_qps": measured.rate, "queries": measured.queries, "passed": measured.passed,
        "complete": measured.complete, "measured_p50_ms": _finite(measured.p50_ms),
        "measured_p99_ms": _finite(measured.p99_ms), "simulated_p50_ms": simulated.p50_ms,
        "simulated_p99_ms": simulated.p99_ms,
    }  # fmt: skip


def serve(
    model: str,
    *,
    states: Sequence[str],
    p99_ms: float,
    max_batch: int = 8,
    max_delay_ms: float = 2.0,
    qps: float | None = None,
    json_out: str | Path | None = None,
    plot_dir: str | Path | None = None,
    n_threads: int = 1,
    seed: int = 0,
    min_duration_s: float = 1.0,
    max_probe_s: float = MAX_PROBE_S,
    max_probe_queries: int = 20_000,
    session: Session | None = None,
) -> dict[str, Any]:
    """Load-test ``model`` in each state under ``p99_ms`` and simulate it; returns (and writes
    to ``json_out``) the serve record. Bad options raise before any work."""
    from inference_scale.subjects.resolve import subject_from_spec

    budget = check_budget(p99_ms)
    policy = Policy(max_batch, max_delay_ms)
    target = None if qps is None else check_qps(qps)
    if not math.isfinite(min_duration_s) or min_duration_s < 0:
        raise InvalidValueError(f"min_duration_s must be >= 0, got {min_duration_s}")
    if not math.isfinite(max_probe_s) or max_probe_s <= 0:
        raise InvalidValueError(f"--max-probe-seconds {max_probe_s!r} is not valid; give seconds > 0, such as 60")
    floor = min_queries()  # every probe runs at least this many queries
    if max_probe_queries < floor:
        raise InvalidValueError(f"max_probe_queries must be >= {floor} (the p99's early-stopping minimum)")
    if json_out is not None:
        check_output_path(json_out, what="--json")
    if plot_dir is not None:
        check_output_path(Path(plot_dir) / f"serve_{model}.png", what="--plot")
    session = session or Session(subject_from_spec)
    opts = Options(threads=n_threads)
    with threads(n_threads):
        slugs = list(dict.fromkeys(check_state(session, model, s, opts) for s in states))
        if not slugs:
            raise InvalidValueError("--states names nothing; give comma-separated state slugs such as fp32,int8-static")
        subject, _, _ = session.model(model)
        sizes = batch_sizes(policy.max_batch)
        served = []
        for slug in slugs:
            for size in sizes:
                _say(f"preparing {model} {slug} at batch {size}")
                served.append(prepare(session, model, slug, size, opts))
        from inference_scale.measure.suite import example_input

        pool = example_input(subject, 64)  # each request is one of these inputs
        with tempfile.TemporaryDirectory() as tmp:
            bench_json = Path(json_out).with_suffix(".bench.json") if json_out else Path(tmp) / "bench.json"
            times = time_service(served, session, opts, json_out=bench_json)
        result: dict[str, Any] = {
            "kind": SERVE_KIND, "model": model, "host": cpu_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
            time.gmtime()), "threads": n_threads, "p99_ms": budget, "seed": seed,
            "policy": {"max_batch": policy.max_batch, "max_delay_ms": policy.max_delay_ms},
            "batch_sizes": list(sizes), "padding": "a partial batch runs at the next prepared size",
            "min_queries": floor, "min_duration_s": min_duration_s, "max_probe_s": max_probe_s, "qps": target,
            "bench_json": str(bench_json) if json_out else None, "states": {},
        }  # fmt: skip
        for slug in slugs:
            entry = [s for s in served if s.state == slug]
            result["states"][slug] = _serve_state(
                slug,
                entry,
                times,
                pool,
                policy,
                budget,
                target,
                n_threads,
                seed,
                min_duration_s,
                max_probe_s,
                max_probe_queries,
            )
    if json_out is not None:
        write_json_atomic(result, json_out)
    if plot_dir is not None:
        from inference_scale.serving.plot import plot_serve

        _say(f"wrote {plot_serve(result, Path(plot_dir))}")
    return result


def _serve_state(
    slug: str,
    entry: list[Any],
    times: dict[tuple[str, int], list[float]],
    pool: Any,
    policy: Policy,
    budget: float,
    target: float | None,
    n_threads: int,
    seed: int,
    min_duration_s: float,
    max_probe_s: float,
    max_probe_queries: int,
) -> dict[str, Any]:
    runners = {s.batch: s.prepared.runner for s in entry}
    overhead = batch_overhead_seconds(runners, pool)  # under serve's thread setting, as the worker
    model_s = {s.batch: times[(slug, s.batch)] for s in entry}
    # What the simulator draws from: each timed call plus what a fresh batch costs over it.
    service = {k: [t + overhead[k] for t in v] for k, v in model_s.items()}
    one_ms = float(np.median(service[1])) * 1e3
    out: dict[str, Any] = {
        "service_s": {str(k): v for k, v in service.items()},
        "model_median_ms": {str(k): float(np.median(v)) * 1e3 for k, v in model_s.items()},
        "batch_overhead_ms": {str(k): v * 1e3 for k, v in overhead.items()},
        "service_median_ms": {str(k): float(np.median(v)) * 1e3 for k, v in service.items()},
        "single_request_ms": one_ms, "quality": entry[0].extras, "probes": [], "verdict": None,
        "measured_highest_qps": None, "simulated_highest_qps": None, "ratio": None, "check": None,
    }  # fmt: skip
    sim_rate, _ = simulated_highest_rate(service, policy, budget, seed=seed)
    out["simulated_highest_qps"] = sim_rate
    if sim_rate is None:
        out["verdict"] = (
            f"no rate meets p99 <= {budget:g} ms: the budget is below {slug}'s single-request latency "
            f"({one_ms:.2f} ms at batch 1)"
        )
        _say(f"{slug}: {out['verdict']}")
        return out
    floor = min_queries()
    slowest = floor / max_probe_s  # the lowest rate whose probe fits in max_probe_s
    if sim_rate < slowest:
        out["verdict"] = (
            f"not load-tested: the simulator's highest rate, {sim_rate:.3g} q/s, is below {slowest:.3g} q/s, the "
            f"slowest whose p99 ({floor} queries) fits in a {max_probe_s:g} s probe (it would take "
            f"{floor / sim_rate:.0f} s; raise --max-probe-seconds to measure it)"
        )
        _say(f"{slug}: {out['verdict']}")
        return out
    batch_times: list[tuple[int, float]] = []

    def probe(rate: float) -> Probe:
        n = min(max_probe_queries, max(floor, math.ceil(rate * min_duration_s)))
        measured, batches = run_probe(
            runners, pool, policy, rate, n, budget, seed=seed, threads=n_threads,
            max_seconds=min(2.0 * n / rate, 2.0 * max_probe_s) + 1.0 + 10 * budget / 1e3,
        )  # fmt: skip
        batch_times.extend(batches)
        simulated = simulate_probe(rate, n, service, policy, budget, seed=seed)
        out["probes"].append(_probe_row(measured, simulated))
        verdict = "pass" if measured.passed else "FAIL"
        _say(f"{slug}: probe {len(out['probes'])}: {rate:.1f} q/s x {n}: p50 {measured.p50_ms:.2f} ms, p99 "
             f"{measured.p99_ms:.2f} ms ({verdict}; simulated p99 {simulated.p99_ms:.2f} ms)")  # fmt: skip
        return measured

    # LoadGen starts from a user's target rate; ours is half the simulator's answer (a pass, if
    # the simulator is right), from which the search doubles and bisects on real probes alone.
    measured_rate, _ = search_highest_rate(probe, start=0.5 * sim_rate, max_probes=MAX_PROBES, min_rate=slowest)
    out["measured_highest_qps"] = measured_rate
    if measured_rate is None:
        out["verdict"] = (
            f"no probe down to {out['probes'][-1]['offered_qps']:.2f} q/s met p99 <= {budget:g} ms (slower rates "
            f"need probes over {max_probe_s:g} s)"
        )
        _say(f"{slug}: {out['verdict']}")
        return out
    out["ratio"] = sim_rate / measured_rate
    check_rate = CHECK_LOAD * measured_rate
    before = len(out["probes"])
    probe(check_rate)
    row = out["probes"].pop(before)
    out["check"] = {"load": CHECK_LOAD, **row}
    by_size: dict[int, list[float]] = {}
    for size, sec in batch_times:
        by_size.setdefault(size, []).append(sec)
    out["load_test_service_median_ms"] = {str(k): float(np.median(v)) * 1e3 for k, v in sorted(by_size.items())}
    m99, s99 = row["measured_p99_ms"], row["simulated_p99_ms"]
    _say(f"{slug}: highest rate at p99 <= {budget:g} ms: measured {measured_rate:.1f} q/s, simulated "
         f"{sim_rate:.1f} q/s (simulated/measured {out['ratio']:.3f}); at {CHECK_LOAD:.0%}: p99 measured "
         f"{m99:.2f} ms, simulated {s99:.2f} ms")  # fmt: skip
    if target is not None:
        policies = candidate_policies(policy.max_batch, policy.max_delay_ms)
        plans = plan_replicas(service, policies, target, budget, threads=n_threads, seed=seed)
        out["capacity"] = [
            {"max_batch": p.policy.max_batch, "max_delay_ms": p.policy.max_delay_ms, "replicas": p.replicas,
             "cores": p.cores, "simulated_p99_ms": p.p99_ms} for p in plans
        ]  # fmt: skip
    return out
