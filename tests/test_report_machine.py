"""Numbers that carry their machine, as ``report``, ``advise`` and ``compare`` show them: the
host line, throughput in its dtype's unit and as a share of the run's peak, the roofline
bound, p90/p99 from the raw rounds (``-`` with the reason where they do not suffice), memory
and cold start; ``advise --p99-ms`` and ``--max-memory-mb`` on a run built from real
measurements; ``compare`` (and ``ab``) on runs whose CPUs differ in ISA; and none of it loads
torch."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference_scale.cli.main import main
from inference_scale.measure.bounds import lower_bound_ms
from inference_scale.measure.machine import ISA_FLAGS, host_info, host_line
from inference_scale.measure.record import BenchmarkRecord
from inference_scale.reporting.advice import BudgetError, Budgets
from inference_scale.verdicts import tails
from inference_scale.verdicts.ab import ABResult, _isa_between, format_ab

PEAKS = {"threads": 1, "fp32_gflops": 100.0, "bf16_gflops": 200.0, "int8_gops": 400.0, "bandwidth_gbs": 20.0,
         "theoretical": {"fp32_gflops": 120.0}}  # fmt: skip
COLUMNS = ("achieved", "% peak", "bound ms", "p90 ms", "p99 ms", "RAM MB", "cold ms")


def _machine(*, host: bool = True, peaks: dict[str, Any] | None = None, l3_bytes: int | None = 10**6) -> dict[str, Any]:
    """This machine's host record (read from /proc and /sys), its L3 set to ``l3_bytes`` so
    the records' 4 MB of weights exceed it (and their memory bound applies) unless told."""
    section: dict[str, Any] = {"threads": 1, "device": "cpu"}
    if host:
        section["host"] = {**host_info(torch_capability=False), "l3_bytes": l3_bytes}
    if peaks is not None:
        section["peaks"] = peaks
    return {"node": "n", "machine": "x86_64", "system": "Linux", "cpu": {"brand_raw": "test cpu"},
            "inference_scale": section}  # fmt: skip


def _record(state: str, *, model: str = "m", dtype: str = "float32", macs: int = 10**6, nbytes: int = 4 * 10**6,
            batch: int = 1, **extras: Any) -> dict[str, Any]:  # fmt: skip
    return BenchmarkRecord(model=model, family="cnn", kind="conv", state=state, batch_size=batch, device="cpu",
                           threads=1, dtype=dtype, params=1000, nonzero_params=1000, macs=macs, bytes=nbytes,
                           input_shape=[1, 28, 28], extras=extras).to_extra_info()  # fmt: skip


def _bench(record: dict[str, Any], rounds: list[float] | None, median: float | None = None) -> dict[str, Any]:
    if rounds is None:
        assert median is not None
        stats: dict[str, Any] = {"median": median, "iqr": median * 0.04, "rounds": 20, "iterations": 1}
    else:
        r = np.asarray(rounds)
        q1, q3 = np.percentile(r, [25, 75])
        stats = {"min": float(r.min()), "max": float(r.max()), "mean": float(r.mean()), "median": float(np.median(r)),
                 "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "rounds": len(r), "iterations": 1,
                 "data": [float(x) for x in r]}  # fmt: skip
    name = f"test_state[{record['model']}-{record['state']}-b{record['batch_size']}]"
    return {"group": record["model"], "name": name, "fullname": f"t.py::{name}", "params": None,
            "extra_info": record, "options": {}, "stats": stats}  # fmt: skip


def _write(path: Path, benches: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    data = {"machine_info": machine, "commit_info": {"id": "abc", "dirty": False}, "benchmarks": benches,
            "datetime": "2026-12-01T10:00:00", "version": "5.3.1"}  # fmt: skip
    path.write_text(json.dumps(data))
    return str(path)


def _rounds(n: int, median_s: float, seed: int) -> list[float]:
    """``n`` latencies around ``median_s`` with a right tail (the shape of timed rounds)."""
    rng = np.random.default_rng(seed)
    return list(median_s * np.exp(rng.normal(0.0, 0.05, n) + rng.exponential(0.02, n)))


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _csv(out: str) -> dict[str, dict[str, str]]:
    return {row["state"].removesuffix(" *"): row for row in csv.DictReader(io.StringIO(out))}


# --- report ------------------------------------------------------------------------------------

ROUNDS = {"fp32": _rounds(700, 1e-3, 0), "int8-dynamic": _rounds(100, 1e-3, 1), "near": _rounds(40, 1e-3, 2),
          "over": _rounds(700, 1e-3, 3)}  # fmt: skip


@pytest.fixture
def machine_run(tmp_path: Path) -> str:
    benches = [
        _bench(_record("fp32", peak_rss_bytes=52_300_000, weights_bytes_in_memory=4_100_000, load_s=0.8123,
                       first_call_s=0.0453), ROUNDS["fp32"]),
        _bench(_record("int8-dynamic", dtype="int8", nbytes=10**6,
                       memory_failed="child killed by signal 9 (out of memory?)"), ROUNDS["int8-dynamic"]),
        # compute bound 2 x 4e7 / 1e11 s = 0.8 ms against a ~1 ms median: within 1.5x
        _bench(_record("near", macs=4 * 10**7), ROUNDS["near"]),
        # 2 x 2e8 ops in ~1 ms is ~400 GFLOP/s: twice the bf16 peak, so the peak is wrong
        _bench(_record("over", dtype="bfloat16", macs=2 * 10**8), ROUNDS["over"]),
        _bench(_record("fp16", dtype="float16"), None, median=1e-3),  # no raw rounds, no fp16 peak
    ]  # fmt: skip
    return _write(tmp_path / "machine.json", benches, _machine(peaks=PEAKS))


def test_report_columns_are_the_runs_figures(machine_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["report", machine_run, "--format", "csv"], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 6  # csv: one header and a line per benchmark, nothing else
    rows = _csv(out)
    assert all(c in rows["fp32"] for c in COLUMNS) and "GFLOP/s" not in rows["fp32"]  # the unit is in the cell
    for state, peak, unit in (("fp32", 100.0, "GFLOP/s"), ("int8-dynamic", 400.0, "GOP/s"),
                              ("over", 200.0, "GFLOP/s")):  # fmt: skip
        median = float(np.median(ROUNDS[state]))
        macs = {"over": 2 * 10**8}.get(state, 10**6)
        achieved = 2 * macs / median / 1e9
        assert rows[state]["achieved"] == f"{achieved:.1f} {unit}"
        pct = 100 * achieved / peak
        assert rows[state]["% peak"] == (f"{pct:.1f}" if pct >= 1 else f"{pct:.2g}")
    bound = lower_bound_ms(macs_per_sample=10**6, batch=1, peak_ops_per_s=100e9, bytes_read=4e6,
                           bandwidth_bytes_per_s=20e9)  # fmt: skip
    assert bound is not None and rows["fp32"]["bound ms"] == f"{bound:.3g}" == "0.2"  # 4 MB at 20 GB/s
    assert rows["fp16"]["% peak"] == "-" and rows["fp16"]["achieved"] == "2.0 GFLOP/s"  # no fp16 peak measured
    # every percentile is numpy.percentile of the same rounds, or "-" where the rounds are too few
    for state, rounds in ROUNDS.items():
        for q, column in ((90, "p90 ms"), (99, "p99 ms")):
            enough = len(rounds) >= tails.min_samples(q)
            want = f"{np.percentile(rounds, q) * 1e3:.3f}" if enough else "-"
            assert rows[state][column] == want, (state, q)
    assert rows["fp16"]["p90 ms"] == rows["fp16"]["p99 ms"] == "-"
    assert rows["fp32"]["RAM MB"] == "52.3" and rows["fp32"]["cold ms"] == "812+45.3"
    assert rows["int8-dynamic"]["RAM MB"] == rows["int8-dynamic"]["cold ms"] == "-"
    assert err.strip().splitlines() == [next(line for line in err.splitlines() if "m over b1" in line)]
    assert "warning: m over b1 runs at" in err and "peak is wrong" in err


def test_report_table_has_the_host_line_notes_and_the_peak_warning(
    machine_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(["report", machine_run], capsys)
    assert code == 0
    lines = out.splitlines()
    host = json.loads(Path(machine_run).read_text())["machine_info"]
    assert lines[1] == f"host: {host_line(host)}" and "- cores" not in lines[1]  # this machine's figures
    assert lines[2].startswith("peaks on 1 thread (measured): fp32 100 GFLOP/s (theoretical 120)")
    header = next(i for i, line in enumerate(lines) if "median ms" in line)
    assert header > 2 and all(c in lines[header] for c in COLUMNS)
    notes = "\n".join(lines[header:])
    assert "p90 needs 64 rounds, have 40: m near b1" in notes
    assert "p99 needs 662 rounds, have 40 to 100: m int8-dynamic b1, m near b1" in notes
    assert "p90, p99 -: no raw rounds (save them with --benchmark-save-data): m fp16 b1" in notes
    assert "within 1.5x of the bound: m near b1 (" in notes and "compute)" in notes
    assert "m fp32 b1" not in notes.split("within 1.5x")[1].split("\n")[0]  # 0.2 ms bound, 1 ms median: not near
    assert "memory probe failed: m int8-dynamic b1 (child killed by signal 9 (out of memory?))" in notes
    warning = next(line for line in lines if line.startswith("warning:"))
    assert re.search(r"m over b1 runs at 1\d\d% of the run's bfloat16 peak", warning) and "peak is wrong" in warning


def test_weights_in_l3_have_no_memory_bound_and_csr_counts_its_nonzero_macs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 4 MB of weights at 20 GB/s is a 0.2 ms memory bound; a 0.1 ms median beats it unless the
    # weights stay in L3 between calls. A CSR record with 10x fewer executed MACs than dense ones
    # reads 10x less achieved throughput; counted dense, it would read 200% of the fp32 peak.
    rounds = _rounds(80, 1e-4, 4)
    benches = [_bench(_record("fp32"), rounds),
               _bench(_record("csr-90", macs=10**7, nonzero_macs=10**6), rounds)]  # fmt: skip
    median = float(np.median(rounds))
    for l3, warned in ((64 * 10**6, False), (10**6, True)):
        path = _write(tmp_path / f"l3-{l3}.json", benches, _machine(peaks=PEAKS, l3_bytes=l3))
        code, out, err = _cli(["report", path, "--format", "csv"], capsys)
        assert code == 0, err
        rows = _csv(out)
        compute = 2 * 10**6 / 100e9 * 1e3
        assert rows["fp32"]["bound ms"] == (f"{max(compute, 0.2):.3g}" if warned else f"{compute:.3g}")
        assert ("m fp32 b1's median" in err and "below its memory bound" in err) is warned
        achieved = 2 * 10**6 / median / 1e9  # the non-zero MACs, by hand
        assert rows["csr-90"]["achieved"] == f"{achieved:.1f} GFLOP/s"
        assert rows["csr-90"]["% peak"] == f"{100 * achieved / 100.0:.1f}"
        assert "csr-90 b1 runs at" not in err  # under 100% of the peak


def test_report_markdown_keeps_host_notes_and_warning(machine_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["report", machine_run, "--format", "md"], capsys)
    assert code == 0 and not err
    assert out.startswith("host: ") and "| model | state |" in out and "| achieved | % peak |" in out
    assert "\n- p99 needs 662 rounds" in out and "\n- warning: m over b1 runs at" in out


def test_an_old_run_reads_as_before_with_dashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = [_bench(_record(s), None, median=ms / 1e3) for s, ms in (("fp32", 10.0), ("int8-static", 4.0))]
    machine = {"cpu": {"brand_raw": "test cpu"}}  # no host, no peaks: every run before this record
    path = _write(tmp_path / "old.json", old, machine)
    code, out, err = _cli(["report", path, "--format", "csv"], capsys)
    assert code == 0 and not err and len(out.strip().splitlines()) == 3
    rows = _csv(out)
    for row in rows.values():
        assert all(row[c] == "-" for c in COLUMNS if c != "achieved")
    assert rows["fp32"]["achieved"] == "0.2 GFLOP/s" and rows["int8-static"]["speedup"] == "2.50x"
    code, out, _ = _cli(["report", path], capsys)
    assert code == 0
    assert out.splitlines()[1] == "host: -, - cores (- logical), ISA -, L2 -, L3 -, -, torch capability -"
    assert "peaks" not in out and "warning" not in out and "bound ms:" not in out


# --- advise: the tail and memory budgets, on real measurements ------------------------------------

# One function, three ways to answer it, each measured in its own fresh process on one thread:
# the model answers ids (an embedding table, then an MLP to 10 logits) ...
CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch

    torch.set_num_threads(1)
    state, rounds = sys.argv[1], int(sys.argv[2])

    def status(key):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))

    try:  # reset the high-water mark to the current RSS (Linux >= 4.0), so the peak is this state's
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    baseline = status("VmRSS")
    torch.manual_seed(0)
    N, WIDTH = 16384, 2048
    embed = torch.randn(N, 512)
    net = torch.nn.Sequential(torch.nn.Linear(512, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, WIDTH),
                              torch.nn.ReLU(), torch.nn.Linear(WIDTH, 10)).eval()
    torch.set_grad_enabled(False)
    tensors = [embed, *net.parameters()]
    if state == "fp32":  # ... computed on every call (slow, lean, no tail)
        def call(i):
            return net(embed[i : i + 1])
    elif state == "table":  # ... from a table of every id's hidden activations (fast, big)
        table = torch.empty(N, WIDTH)
        for start in range(0, N, 1024):
            table[start : start + 1024] = net[:4](embed[start : start + 1024])
        head = net[4]
        tensors = [table, *head.parameters()]
        def call(i):
            return head(table[i : i + 1])
    else:  # "memo": from a cache of 256 ids, refreshed in full every 50th call (fast, a heavy tail)
        ids = torch.arange(256)
        cache, calls = net(embed[ids]), [0]
        tensors.append(cache)
        def call(i):
            calls[0] += 1
            if calls[0] % 50 == 0:
                cache.copy_(net(embed[ids]))
            return cache[i % 256 : i % 256 + 1]
    for i in range(20):
        call(i)
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        call(i % 256)
        times.append(time.perf_counter() - t0)
    preds = [int(call(i).argmax()) for i in range(256)]
    print(json.dumps({"rounds": times, "peak_rss_bytes": status("VmHWM") - baseline, "preds": preds,
                      "bytes": sum(t.numel() * t.element_size() for t in tensors)}))
    """
)
MACS = {"fp32": 512 * 2048 + 2048 * 2048 + 2048 * 10, "table": 2048 * 10, "memo": 2048 * 10}


def _measure(state: str, rounds: int, folder: Path) -> dict[str, Any]:
    script = folder / "child.py"
    script.write_text(CHILD)
    done = subprocess.run([sys.executable, str(script), state, str(rounds)], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("measured")
    rounds = tails.min_samples(99) + 40  # enough for a p99 by the early-stopping rule
    return {state: _measure(state, rounds, folder) for state in ("fp32", "table", "memo")}


def _measured_run(measured: dict[str, dict[str, Any]], path: Path, cut: dict[str, int] | None = None) -> str:
    """The measurements as a saved run; ``cut`` keeps only the first N rounds of a state."""
    base = measured["fp32"]["preds"]
    benches = []
    for state, m in measured.items():
        agree = float(np.mean([a == b for a, b in zip(m["preds"], base, strict=True)]))
        record = _record(
            state,
            model="toy-mlp",
            macs=MACS[state],
            nbytes=m["bytes"],
            peak_rss_bytes=m["peak_rss_bytes"],
            **({} if state == "fp32" else {"top1_agreement": agree}),
        )
        benches.append(_bench(record, m["rounds"][: (cut or {}).get(state)]))  # fmt: skip
    return _write(path, benches, _machine())


def _pick(out: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(("pick for toy-mlp", "nothing fits toy-mlp")))
    return line.split(": ")[1] if line.startswith("pick") else "none"


def test_tail_and_memory_budgets_change_the_pick(
    measured: dict[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p99 = {s: tails.percentiles(m["rounds"], qs=(99,))[99] for s, m in measured.items()}
    ram = {s: m["peak_rss_bytes"] for s, m in measured.items()}
    median = {s: float(np.median(m["rounds"])) for s, m in measured.items()}
    facts = f"p99 {p99}, RAM {ram}, median {median}"
    # what the three states are, as measured: both caches beat computing; one holds a table, one has a tail
    assert max(median["table"], median["memo"]) < median["fp32"], facts
    assert None not in p99.values() and max(p99["fp32"], p99["table"]) < p99["memo"], facts  # type: ignore[type-var]
    assert ram["table"] > 1.5 * max(ram["fp32"], ram["memo"]), facts
    p99_ms = str(math.sqrt(max(p99["fp32"], p99["table"]) * p99["memo"]) * 1e3)  # type: ignore[operator]
    memory_mb = str(math.sqrt(max(ram["fp32"], ram["memo"]) * ram["table"]) / 1e6)
    run = _measured_run(measured, tmp_path / "measured.json")

    def pick(*flags: str) -> tuple[str, str]:
        code, out, err = _cli(["advise", run, *flags], capsys)
        assert code in (0, 1) and not err, err
        return _pick(out), out

    free, _ = pick()
    assert free == min(("table", "memo"), key=median.__getitem__)
    tail, out = pick("--p99-ms", p99_ms)
    assert tail == "table", out  # the memo's refresh puts its p99 over the budget
    if free == "memo":
        assert "the faster memo breaks --p99-ms (p99 " in out
    lean, out = pick("--max-memory-mb", memory_mb)
    assert lean == "memo", out  # the table's resident memory is over the budget
    both, out = pick("--p99-ms", p99_ms, "--max-memory-mb", memory_mb)
    assert both == "fp32", out
    assert "--max-memory-mb (RAM " in out and "--p99-ms (p99 " in out
    assert "fp32 <- pick" in out  # shown even where the pick is off the latency/bytes/quality front
    # p99 from too few rounds cannot pass a tail budget: the same rounds, cut short, say why
    short = _measured_run(measured, tmp_path / "short.json", cut={"table": 100})
    code, out, _ = _cli(["advise", short, "--p99-ms", p99_ms], capsys)
    assert code == 0 and _pick(out) == "fp32", out
    assert "breaks --p99-ms (p99 needs 662 rounds, have 100)" in out
    # the report of the same run shows those figures
    code, out, _ = _cli(["report", run, "--format", "csv"], capsys)
    rows = _csv(out)
    assert rows["memo"]["p99 ms"] == f"{p99['memo'] * 1e3:.3f}"  # type: ignore[operator]
    assert rows["table"]["RAM MB"] == f"{ram['table'] / 1e6:.1f}"


def test_memory_without_a_figure_does_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "r.json", [_bench(_record("fp32"), None, median=1e-3)], _machine(host=False))
    code, out, _ = _cli(["advise", path, "--max-memory-mb", "100"], capsys)
    assert code == 1 and "no state's memory is known: memory not measured" in out
    code, out, _ = _cli(["advise", path, "--p99-ms", "100"], capsys)
    assert code == 1 and "no state's p99 can be estimated: no raw rounds (run with --benchmark-save-data)" in out


@pytest.mark.parametrize(
    ("flags", "words"),
    [(["--p99-ms", "0"], "--p99-ms"), (["--p99-ms", "-3"], "--p99-ms"), (["--p99-ms", "nan"], "--p99-ms"),
     (["--p99-ms", "inf"], "--p99-ms"), (["--max-memory-mb", "0.5"], "--max-memory-mb"),
     (["--max-memory-mb", "-1"], "--max-memory-mb"), (["--max-memory-mb", "nan"], "--max-memory-mb")],
)  # fmt: skip
def test_bad_budgets_are_one_line(
    flags: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "r.json", [_bench(_record("fp32"), None, median=1e-3)], _machine(host=False))
    code, out, err = _cli(["advise", path, *flags], capsys)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and words in err, err
    with pytest.raises(BudgetError):
        Budgets(max_p99_ms=0.0)
    with pytest.raises(BudgetError):
        Budgets(max_memory_mb=0.99)
    assert Budgets(max_memory_mb=1.0).max_memory_mb == 1.0


def test_a_serve_json_without_qps_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serve = tmp_path / "s.json"
    serve.write_text(json.dumps({"kind": "inference-scale-serve", "model": "m", "states": {}}))
    code, _, err = _cli(["advise", str(serve), "--p99-ms", "20"], capsys)
    assert code == 2 and "is a serve JSON" in err and "--qps" in err and len(err.strip().splitlines()) == 1


# --- compare and ab: runs from CPUs that differ in ISA -------------------------------------------


def _isa_pair(tmp_path: Path) -> tuple[str, str, dict[str, Any]]:
    benches = [_bench(_record(s), _rounds(60, ms / 1e3, i)) for i, (s, ms) in enumerate((("fp32", 10), ("q", 4)))]
    base = _machine(peaks=PEAKS)
    isa = base["inference_scale"]["host"]["isa"]
    assert set(isa) == set(ISA_FLAGS)
    edited = copy.deepcopy(base)
    flipped = {"avx512_vnni": True, "amx_int8": True} if not isa["amx_int8"] else {"avx512_vnni": False,
                                                                                 "amx_int8": False}  # fmt: skip
    edited["inference_scale"]["host"]["isa"].update(flipped)
    changed = [f for f in ISA_FLAGS if edited["inference_scale"]["host"]["isa"][f] != isa[f]]
    assert changed
    return _write(tmp_path / "b.json", benches, base), _write(tmp_path / "n.json", benches, edited), {"flags": changed}


def test_compare_warns_on_isa_and_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new, info = _isa_pair(tmp_path)
    code, out, err = _cli(["compare", base, new], capsys)
    assert code == 0, out + err
    warning = next(line for line in out.splitlines() if "ISA flags differ" in line)
    assert all(f"{f} (base " in warning for f in info["flags"]), warning
    code, out, err = _cli(["compare", base, new, "--strict"], capsys)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert all(f in err for f in info["flags"]) and "--strict refuses" in err
    # the same machine on both sides, or a side that never recorded its ISA: nothing to refuse
    assert _cli(["compare", base, base, "--strict"], capsys)[0] == 0
    data = json.loads(Path(new).read_text())
    del data["machine_info"]["inference_scale"]["host"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    code, out, _ = _cli(["compare", base, str(old), "--strict"], capsys)
    assert code == 0 and "ISA" not in out


def test_ab_warns_on_isa(tmp_path: Path) -> None:
    base, new, info = _isa_pair(tmp_path)
    found = _isa_between([Path(base), Path(new)])
    assert found is not None and all(f"{f} (A " in found for f in info["flags"])
    assert _isa_between([Path(base), Path(base)]) is None
    text = format_ab(ABResult(isa=found))
    assert "warning: ISA flags differ between A and B" in text


# --- torch-free ---------------------------------------------------------------------------------


def test_report_compare_and_advise_of_saved_runs_load_no_torch(machine_run: str, tmp_path: Path) -> None:
    base, new, _ = _isa_pair(tmp_path)
    for argv in (["report", machine_run], ["report", machine_run, "--format", "csv"], ["compare", base, new],
                 ["advise", machine_run, "--p99-ms", "5", "--max-memory-mb", "100"]):  # fmt: skip
        code = f"import sys; from inference_scale.cli.main import main; print(main({argv!r}), 'torch' in sys.modules)"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        rc, torch_loaded = done.stdout.strip().splitlines()[-1].split()
        assert rc in ("0", "1") and torch_loaded == "False", (argv, done.stdout[-500:])
