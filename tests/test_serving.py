"""Serving: the simulator against outside oracles (M/D/1 exact, M/D/c by Erlang C), against
the real load test on LeNet, Ctrl-C during a load test, and bad input."""

from __future__ import annotations

import _thread
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from inference_scale.cli.main import main
from inference_scale.cli.serve import DRIFT
from inference_scale.serving import Policy, min_queries, replicas_for, serve, simulated_highest_rate
from inference_scale.serving.loadgen import run_probe
from inference_scale.serving.run import choose_max_batch
from inference_scale.serving.search import SPIN_S, Probe, search_highest_rate, steady
from inference_scale.serving.simulate import simulate
from inference_scale.serving.times import (
    IDLE_GAPS_MS,
    SAME,
    SLEEP,
    SPIN_GAPS_MS,
    ServiceTimes,
    sleep_key,
    wait_key,
)

from ._timing import TIMING

REPO = Path(__file__).resolve().parents[1]


def test_min_queries_is_the_binomial_early_stopping_count() -> None:
    # MLPerf LoadGen's figure for p99 at 99% confidence, one query over the bound allowed.
    assert min_queries() == 662
    n = min_queries()
    assert 0.99**n + n * 0.01 * 0.99 ** (n - 1) <= 0.01 < 0.99 ** (n - 1) + (n - 1) * 0.01 * 0.99 ** (n - 2)


def _md1_wait_cdf(t: float, lam: float, d: float) -> float:
    """Erlang's M/D/1 waiting-time distribution (FCFS, constant service d):
    P(W <= t) = (1 - rho) * sum_{k=0}^{floor(t/d)} (lam (k d - t))^k / k! * exp(-lam (k d - t))."""
    rho = lam * d
    return (1 - rho) * sum((lam * (k * d - t)) ** k / math.factorial(k) * math.exp(-lam * (k * d - t))
                           for k in range(int(t // d) + 1))  # fmt: skip


def test_simulator_matches_md1_exactly() -> None:
    d, budget_ms = 1e-3, 5.0  # constant 1 ms service, p99 sojourn <= 5 ms: wait <= 4 ms
    oracle = brentq(lambda lam: _md1_wait_cdf(budget_ms / 1e3 - d, lam, d) - 0.99, 1.0, 0.999 / d)
    rate, _ = simulated_highest_rate({1: [d]}, Policy(1, 0.0), budget_ms, queries=100_000)
    assert rate is not None
    assert rate == pytest.approx(oracle, rel=0.05)


def _erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability an arrival waits in M/M/c with offered load a = lam / mu."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_replicas_match_mdc_hand_calculation() -> None:
    # Constant 10 ms per request, no batching, 400 q/s at p99 <= 25 ms. M/D/c by Erlang C with
    # the deterministic-service correction (Cosmetatos; Kingman's heavy-traffic tail: an M/D/c
    # queue's wait decays twice as fast as M/M/c's): P(W > t) ~ C(c, a) exp(-2 (c mu - lam) t).
    d, qps, budget_ms = 10e-3, 400.0, 25.0
    a, t = qps * d, budget_ms / 1e3 - d
    hand = next(c for c in range(math.ceil(a) + 1, 100) if _erlang_c(c, a) * math.exp(-2 * (c / d - qps) * t) <= 0.01)
    found = replicas_for({1: [d]}, Policy(1, 0.0), qps, budget_ms)
    assert found is not None
    assert found[0] > a  # the hard bound: fewer servers than the offered load never keep up
    assert abs(found[0] - hand) <= 1, (found, hand)


def test_max_batch_is_chosen_by_the_capacity_each_size_gives() -> None:
    # Constant 10 ms at batch 1 and 11 ms at batch 2, no delay, p99 <= 200 ms. One worker at max
    # batch 1 serves at most 1 / 10 ms = 100 q/s and at max batch 2 at most 2 / 11 ms = 182 q/s
    # (a queue under a higher rate grows without bound), and batching a queue at 100 q/s keeps
    # it bounded: the highest rates fall either side of 100 q/s.
    service = ServiceTimes({(1, SAME): [10e-3], (2, SAME): [11e-3]})
    rates = choose_max_batch(service, Policy(2, 0.0), 200.0)
    assert list(rates) == [1, 2]
    assert rates[1] is not None and rates[2] is not None
    assert rates[1] < 100.0 < rates[2] < 2 / 11e-3
    assert list(choose_max_batch(service, Policy(1, 0.0), 200.0)) == [1]  # never above the cap


def test_a_repeated_probe_is_steady_when_its_last_three_agree_within_10_percent() -> None:
    # Triton perf_analyzer's rule: max / min of the recent three within --stability-percentage.
    assert steady([2.0, 1.0, 1.05, 1.1])  # 1.1 / 1.0 = 1.10: within
    assert not steady([1.0, 1.0, 1.11])  # 1.11: over
    assert not steady([1.0, 1.0])  # fewer than three
    assert not steady([1.0, math.inf, 1.0])  # a probe that did not finish
    assert steady([1.0, 1.0, 1.19], within=0.2)


@pytest.fixture(scope="module")
def lenet_serve(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    # A budget far above this shared host's scheduling noise (ms), so the highest rate is set by
    # queueing rather than by another process's time slice; probes of 662+ queries and 0.5 s.
    out = tmp_path_factory.mktemp("serve")
    result = serve("lenet", states=["fp32"], p99_ms=20.0, max_batch=8, max_delay_ms=2.0, seed=0,
                   min_duration_s=0.5, json_out=out / "serve.json")  # fmt: skip
    return result, out


def test_lenet_load_test_runs_the_search(lenet_serve: tuple[dict[str, Any], Path]) -> None:
    result, out = lenet_serve
    entry = result["states"]["fp32"]
    bench = json.loads((out / "serve.bench.json").read_text())
    timed: dict[tuple[int, str], list[list[float]]] = {}
    for b in bench["benchmarks"]:
        timed.setdefault((b["extra_info"]["batch_size"], b["extra_info"]["after"]), []).append(b["stats"]["data"])
    sizes = [1, 2, 4, 8]
    # each size back to back, after each of the worker's spins (0.25 and 0.5 ms) and sleeps (2, 8
    # and 32 ms) and after each other size; all of them before the load test, and again in each
    # of five blocks of at least 5 rounds spread over it
    waits = {"spin0.25ms", "spin0.5ms", "sleep2ms", "sleep8ms", "sleep32ms"}
    want = {(s, k) for s in sizes for k in {"same"} | waits | {f"b{o}" for o in sizes if o != s}}
    assert set(timed) == want
    assert all(len(v) == 1 + 5 and all(len(run) >= 5 for run in v) for v in timed.values())
    # the simulator draws pytest-benchmark's own saved rounds, the six runs of each pooled
    for (size, after), runs in timed.items():
        assert entry["service_s"][str(size)][after] == [t for run in runs for t in run]
    assert json.loads((out / "serve.json").read_text())["states"]["fp32"]["probes"] == entry["probes"]
    assert all(p["queries"] >= 662 for p in entry["probes"])
    fastest_ms = 1e3 * min(t for by in entry["service_s"].values() for times in by.values() for t in times)
    assert all(p["measured_longest_batch_ms"] >= fastest_ms for p in entry["probes"])  # a batch, in ms
    rates = [p["offered_qps"] for p in entry["probes"]]
    passed = [p["offered_qps"] for p in entry["probes"] if p["passed"]]
    assert entry["measured_highest_qps"] == max(passed)
    assert any(not p["passed"] and p["offered_qps"] > max(passed) for p in entry["probes"])  # bracketed
    assert len(set(rates)) == len(rates)
    assert entry["policy"] == {"max_batch": 8, "max_delay_ms": 2.0}  # as given: not chosen
    assert result["policy"]["max_batch_chosen"] is False and "simulated_qps_by_max_batch" not in entry
    check = entry["check"]
    assert check["offered_qps"] == pytest.approx(0.7 * entry["measured_highest_qps"])
    # check probes, each its own seed, until the last three p99s are within 10% of each other
    # (perf_analyzer's rule) or ten have run; the figures are the medians of those three, else of all
    p99s = [math.inf if t["measured_p99_ms"] is None else t["measured_p99_ms"] for t in check["trials"]]
    assert [t["seed"] for t in check["trials"]] == list(range(len(p99s)))
    settled = [n for n in range(3, len(p99s) + 1)
               if max(p99s[n - 3 : n]) <= 1.1 * min(p99s[n - 3 : n]) < math.inf]  # fmt: skip
    assert check["steady"] == bool(settled)
    assert settled == ([len(p99s)] if settled else []) and (settled or len(p99s) == 10)  # it stopped at the first
    used = check["trials"][-3:] if settled else check["trials"]
    assert check["seeds"] == [t["seed"] for t in used]
    for key in ("measured_p99_ms", "simulated_p99_ms"):
        assert check[key] == float(np.median([t[key] for t in used]))


# With the service times per what ran before (a sleep, a spin, another size), taken on both
# sides of the load test and on a fresh thread's stack as the worker's (runtime.on_fresh_stack),
# the simulator was within 14% of the measured highest rate in 11 of 11 runs of this case
# (2026-12-04, AMD EPYC host; before the spin pools, 12 of 17, reading up to 41% high):
# docs/serving.md. The test reads the host's steadiness from the run itself and skips, naming
# it, where the host moved: the check probes at 70% never settled, or the load test's batches
# ran more than 10% off the benchmark's times the simulator drew (the `note:` serve prints). In
# a clean-clone .ci/run that day the measured rate read 11,142 q/s against 15,502 simulated.
# INFERENCE_SCALE_TIMING_TESTS=0 skips it outright.
@TIMING
def test_simulator_agrees_with_load_test_on_lenet(lenet_serve: tuple[dict[str, Any], Path]) -> None:
    entry = lenet_serve[0]["states"]["fp32"]
    moved = [f"{key} {r:.2f}x" for key, r in entry["service_drift"].items() if abs(r - 1.0) > DRIFT]
    if moved or not entry["check"]["steady"]:
        p99s = ", ".join(f"{t['measured_p99_ms']:.2f}" for t in entry["check"]["trials"])
        pytest.skip(f"the host moved during the load test: batches ran {', '.join(moved) or 'as benchmarked'}; "
                    f"the probes at 70% read p99 {p99s} ms (steady: {entry['check']['steady']})")  # fmt: skip
    assert entry["simulated_highest_qps"] == pytest.approx(entry["measured_highest_qps"], rel=0.15)


# The check repeats 0.5 s probes at 70% until three in a row agree within 10% (Triton
# perf_analyzer's rule), and compares their median with the simulator's. Where the host never
# settles in ten, the test skips with the probes' p99s: a slow stretch of this shared host ran
# LeNet's batches of 8 at 1.5x their time for a while, and probes through one read p99s of 2-13
# ms against 1.5-1.6 ms in quiet ones (2026-12-04, AMD EPYC host); no simulator fed by service
# times taken seconds before or after can say when those stretches come.
@TIMING
def test_simulated_p99_at_70_percent_agrees_on_lenet(lenet_serve: tuple[dict[str, Any], Path]) -> None:
    check = lenet_serve[0]["states"]["fp32"]["check"]
    if not check["steady"]:
        p99s = ", ".join(f"{t['measured_p99_ms']:.2f}" for t in check["trials"])
        pytest.skip(f"the host never settled: ten probes at 70% read p99 {p99s} ms, no three within 10%")
    assert check["simulated_p99_ms"] == pytest.approx(check["measured_p99_ms"], rel=0.20)


def test_each_batch_draws_the_time_measured_after_what_ran_before_it() -> None:
    # Hand-computed: 1 ms for a batch of 1 back to back, 3 ms after a batch of 2, 7 ms after a
    # sleep; 2 ms for a batch of 2. Max batch 2, no delay. Three requests at 0: a batch of 2
    # (0-2 ms), then one of 1 after it (2-5 ms). One at 1 s: the worker waited, so it slept
    # (1.000-1.007 s). One at 1.005 s, queued behind it: back to back (1.007-1.008 s, 3 ms).
    service = ServiceTimes({(1, SAME): [1e-3], (1, "b2"): [3e-3], (1, SLEEP): [7e-3], (2, SAME): [2e-3]})
    latency = simulate(np.array([0.0, 0.0, 0.0, 1.0, 1.005]), service, Policy(2, 0.0))
    assert latency * 1e3 == pytest.approx([2.0, 2.0, 5.0, 7.0, 3.0])


def test_a_sleep_draws_the_times_taken_after_the_nearest_sleep() -> None:
    # Hand-computed, max batch 1, no delay: 1 ms back to back, 2 ms after a 2 ms sleep, 4 ms
    # after an 8 ms one, none measured after 32 ms. At 0: nothing before (0-1 ms). At 4 ms, after
    # 3 idle: the 2 ms sleep's (4-6 ms). At 20 ms, after 14: the 8 ms sleep's (20-24 ms). At
    # 1 s: a sleep of 32 ms or more, never measured, draws the next shorter (1.000-1.004 s).
    # At 1.0045 s, 0.5 ms after that ends, the worker spins for it; no spin was measured, so it
    # draws back to back (1 ms).
    assert [sleep_key(ms) for ms in (1.5, 4.0, 4.5, 16.0, 17.0, 900.0)] == [
        "sleep2ms", "sleep2ms", "sleep8ms", "sleep8ms", "sleep32ms", "sleep32ms"
    ]  # fmt: skip
    service = ServiceTimes({(1, SAME): [1e-3], (1, "sleep2ms"): [2e-3], (1, "sleep8ms"): [4e-3]})
    latency = simulate(np.array([0.0, 0.004, 0.020, 1.0, 1.0045]), service, Policy(1, 0.0))
    assert latency * 1e3 == pytest.approx([1.0, 2.0, 4.0, 4.0, 1.0])


def test_a_spin_draws_the_times_taken_after_the_nearest_spin() -> None:
    # Hand-computed, max batch 1, no delay: 1 ms back to back, 1.5 ms after a 0.25 ms spin, 2 ms
    # after a 0.5 ms one. At 0: 0-1 ms. At 1.1 ms, 0.1 ms after it ends (under half the shortest
    # spin, so no wait): back to back (1.1-2.1 ms). At 2.4 ms, after 0.3: the 0.25 ms spin's
    # (2.4-3.9 ms). At 4.6 ms, after 0.7: the 0.5 ms spin's (4.6-6.6 ms). At 7.6 ms, after 1.0
    # ms (still spun, SPIN_S): the 0.5 ms spin's too (7.6-9.6 ms).
    assert max(SPIN_GAPS_MS) < SPIN_S * 1e3 < min(IDLE_GAPS_MS)  # every spin is spun, every sleep slept
    assert [wait_key(ms) for ms in (0.2, 0.5, 0.6, 1.0, 1.5)] == [
        "spin0.25ms", "spin0.25ms", "spin0.5ms", "spin0.5ms", "sleep2ms"
    ]  # fmt: skip
    service = ServiceTimes({(1, SAME): [1e-3], (1, "spin0.25ms"): [1.5e-3], (1, "spin0.5ms"): [2e-3]})
    latency = simulate(np.array([0.0, 1.1e-3, 2.4e-3, 4.6e-3, 7.6e-3]), service, Policy(1, 0.0))
    assert latency * 1e3 == pytest.approx([1.0, 1.0, 1.5, 2.0, 2.0])


def test_service_times_read_back_from_a_record_old_and_new() -> None:
    new = ServiceTimes({(1, SAME): [1e-3, 2e-3], (1, SLEEP): [5e-3], (2, SAME): [4e-3]})
    assert ServiceTimes.from_record(json.loads(json.dumps(new.to_record()))) == new
    old = ServiceTimes.from_record({"1": [1e-3], "2": [4e-3]})  # a bare list: back to back
    assert old.sizes == (1, 2) and old.draws(1, SLEEP) == [1e-3]
    one_sleep = ServiceTimes.from_record({"1": {"same": [1e-3], "sleep": [5e-3]}})  # before the 2/8/32 ms sleeps
    assert one_sleep.draws(1, "sleep8ms") == [5e-3]


def test_ctrl_c_in_a_probe_stops_and_joins_its_thread() -> None:
    run = lambda x: lambda: torch.relu(x[0])  # noqa: E731 - a real torch call, microseconds
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_probe({1: run}, (torch.zeros(4, 3),), Policy(1, 0.0), 2.0, 1000, 10.0, seed=0, threads=1, max_seconds=600)
    assert time.perf_counter() - start < 5
    timer.join()
    assert not [t for t in threading.enumerate() if t.name.startswith("serve-") and t.is_alive()]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_sigint_stops_the_serve_command_and_leaves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "inference_scale.cli.main", "serve", "lenet", "--states", "fp32", "--p99-ms", "20",
           "--max-batch", "1", "--min-seconds", "1", "--json", str(tmp_path / "s.json")]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # wait until the load test runs (its first probe is done)
        lines.append(line)
        if "probe 1:" in line:
            break
    else:
        pytest.fail("serve ended before its load test: " + "".join(lines[-5:]))
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    assert _session_pids(proc.pid) == []
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--p99-ms", "0"], "--p99-ms"),
        (["--p99-ms", "-5"], "--p99-ms"),
        (["--p99-ms", "nan"], "--p99-ms"),
        (["--p99-ms", "50", "--max-batch", "0"], "--max-batch"),
        (["--p99-ms", "50", "--max-delay-ms", "-1"], "--max-delay-ms"),
        (["--p99-ms", "50", "--qps", "0"], "--qps"),
        (["--p99-ms", "50", "--qps", "-3"], "--qps"),
        (["--p99-ms", "50", "--max-probe-seconds", "0"], "--max-probe-seconds"),
        (["--p99-ms", "50", "--max-probe-seconds", "nan"], "--max-probe-seconds"),
    ],
)
def test_bad_serve_input_is_one_line(args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "lenet", "--states", "fp32", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_bad_advise_capacity_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", str(tmp_path / "none.json"), "--qps", "0", "--p99-ms", "10"]) == 2
    assert "--qps" in capsys.readouterr().err


def test_budget_below_a_lone_request_is_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "lenet", "--states", "fp32", "--p99-ms", "0.001", "--max-batch", "1"]) == 1
    out = capsys.readouterr().out
    assert "below fp32's single-request latency" in out


@pytest.fixture
def user_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A team's own model, outside the registry: a module:factory with no declared inputs."""
    source = ["import torch.nn as nn", "def build():", "    return nn.Sequential(nn.Flatten(), nn.Linear(48, 10))"]
    (tmp_path / "served_user_mod.py").write_text("\n".join(source) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "served_user_mod:build"


def test_a_module_factory_is_served_with_the_input_flags_bench_takes(
    user_factory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same --input-shape as bench: the factory is resolved, its state prepared and timed;
    # a budget of 1 us is below its lone request's latency, a verdict that needs that timing.
    assert main(["serve", user_factory, "--input-shape", "3,4,4", "--states", "fp32", "--p99-ms", "0.001",
                 "--max-batch", "1"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert f"{user_factory}: highest rate" in out and "below fp32's single-request latency" in out, out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "is a factory: give its example inputs"),
        (["--input-shape", "3,4,x"], "--input-shape: input shape '3,4,x' is not valid"),
        (["--input-shape", "3,5,5"], "does not run on its example inputs"),
    ],
)
def test_a_module_factory_without_usable_inputs_is_one_line(
    user_factory: str, args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", user_factory, "--states", "fp32", "--p99-ms", "50", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize(
    ("model", "name"),
    [("resnet50", "serve_resnet50.png"), ("mypkg.nets:build", "serve_mypkg.nets_build.png"),
     ("hf:/models/bert base", "serve_hf_models_bert_base.png"), ("timm:vit_tiny", "serve_timm_vit_tiny.png")],
)  # fmt: skip
def test_the_plot_of_any_model_is_one_file_in_the_folder(tmp_path: Path, model: str, name: str) -> None:
    from inference_scale.serving.plot import plot_path

    assert plot_path(tmp_path, model) == tmp_path / name


def test_a_rate_too_slow_for_a_valid_probe_in_time_is_not_load_tested(capsys: pytest.CaptureFixture[str]) -> None:
    # 662 queries in 0.05 s needs 13,240 q/s, well above LeNet's rate at batch 1: the verdict
    # says so and no probe runs (none could meet both its query count and its time bound).
    code = main(["serve", "lenet", "--states", "fp32", "--p99-ms", "20", "--max-batch", "1",
                 "--max-probe-seconds", "0.05"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "fp32: not load-tested" in out and "raise --max-probe-seconds" in out, out
    assert "(662 queries) fits in a 0.05 s probe" in out


def test_the_search_stops_below_the_slowest_measurable_rate() -> None:
    seen: list[float] = []

    def probe(rate: float) -> Probe:  # every probe fails: the search halves towards min_rate
        seen.append(rate)
        return Probe(rate=rate, p50_ms=math.nan, p99_ms=math.inf, queries=662, passed=False)

    best, _ = search_highest_rate(probe, start=100.0, max_probes=20, min_rate=10.0)
    assert best is None and seen == [100.0, 50.0, 25.0, 12.5]


def test_advise_on_a_serve_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A serve record with constant service times: 2 ms at batch 1, 4 ms at batch 2.
    record = {"kind": "inference-scale-serve", "model": "m", "host": "h", "threads": 1, "seed": 0,
              "policy": {"max_batch": 2, "max_delay_ms": 1.0},
              "states": {"fp32": {"service_s": {"1": [2e-3], "2": [4e-3]}, "quality": {}}}}  # fmt: skip
    (tmp_path / "s.json").write_text(json.dumps(record))
    assert main(["advise", str(tmp_path / "s.json"), "--qps", "1000", "--p99-ms", "20"]) == 0
    out = capsys.readouterr().out
    pick = next(line for line in out.splitlines() if "pick:" in line)
    replicas = int(pick.split(": ")[2].split(" ")[0])
    assert replicas >= math.ceil(1000 * 2e-3)  # every policy needs at least the offered load
