"""Issue 20, the items outside the suite: a NaN accuracy never passes a gate, channel pruning
never grows a model, masked pruning does not chain, damaged sparse files and absurd distillation
settings fail in one line, atomic writes keep permissions and sweep only their own files, ``ab``
cleans up after SIGTERM and refuses an empty selection, and damaged storage folders or deeply
nested JSON are usage errors (exit 2) or skipped with a warning, never a traceback."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inference_scale.atomic import stale_temp_files, write_bytes_atomic
from inference_scale.cli.main import main
from inference_scale.reporting.advice import Budgets, advise
from inference_scale.reporting.report import Row, format_rows
from inference_scale.states import CompositionError, get_state
from inference_scale.subjects.data import Split
from inference_scale.subjects.models import get_model
from inference_scale.subjects.train import NonFiniteLossError, train
from inference_scale.techniques.distill import DistillConfig, kd_loss
from inference_scale.techniques.prune import prune_channels, prune_global
from inference_scale.techniques.sparse_io import SparseFileError, load_sparse, save_sparse
from inference_scale.verdicts.compare import compare_runs
from inference_scale.verdicts.runs import BadRunError, parse_run

RECORD = dict(family="spin", kind="mlp", batch_size=1, device="cpu", threads=1, dtype="float32", params=10,
              nonzero_params=10, macs=1000, bytes=400, input_shape=[4])  # fmt: skip


def _bench(name: str, median: float, **extra: Any) -> dict[str, Any]:
    rounds = [median * (1 + 0.01 * (i % 5)) for i in range(12)]
    return {"name": name, "fullname": f"t.py::{name}", "stats": {"median": median, "data": rounds},
            "extra_info": {**RECORD, **extra}}  # fmt: skip


def _run(*benches: dict[str, Any]) -> dict[str, Any]:
    return {"machine_info": {}, "benchmarks": list(benches)}


def _write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, allow_nan=True))
    return str(path)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# --- item 3: a non-finite accuracy never passes ---------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_runs_reject_a_non_finite_record_value(bad: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _run(_bench("test_x", 0.01, model="m", state="fp32", accuracy=bad))
    with pytest.raises(BadRunError, match="accuracy"):
        parse_run(data)
    path = _write(tmp_path / "bad.json", data)
    for command in ("report", "advise"):
        code, out, err = _cli([command, path], capsys)
        assert code == 2 and "nan%" not in out and len(err.strip().splitlines()) == 1, (command, err)
        assert "must be finite" in err


def test_report_prints_a_dash_not_nan_percent() -> None:
    row = Row(name="t", model="m", family="f", state="fp32", batch=1, device="cpu", median_s=0.01, iqr_s=None,
              params=1, macs=1, bytes=1, accuracy=math.nan, speedup=1.0, cosine=math.nan)  # fmt: skip
    text = format_rows([row], "csv")
    assert "nan" not in text.lower() and "acc nan" not in row.quality


def _row(state: str, ms: float, accuracy: float) -> Row:
    return Row(name=state, model="m", family="f", state=state, batch=1, device="cpu", median_s=ms / 1e3,
               iqr_s=None, params=10, macs=10, bytes=400, accuracy=accuracy, speedup=None)  # fmt: skip


@pytest.mark.parametrize("budget", [1.0, None, 100.0])
def test_advise_never_picks_a_nan_state(budget: float | None) -> None:
    rows = [_row("fp32", 10.0, 0.90), _row("int8-static", 2.0, math.nan), _row("prune-l1-50", 8.0, 0.899)]
    (a,) = advise(rows, budgets=Budgets(max_accuracy_drop=budget))
    assert a.pick is not None and a.pick.state == "prune-l1-50", a.reason


def test_advise_with_only_nan_states_picks_nothing() -> None:
    (a,) = advise([_row("fp32", 10.0, math.nan)], budgets=Budgets())
    assert a.pick is None and "finite" in a.reason


def test_compare_counts_a_missing_accuracy_as_undecided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = parse_run(_run(_bench("test_x", 0.01, model="m", state="fp32", accuracy=0.10)))
    new = parse_run(_run(_bench("test_x", 0.01, model="m", state="fp32")))
    (change,) = compare_runs(base, new).changes
    assert change.verdict == "undecided" and "accuracy" in change.reason
    b = _write(tmp_path / "b.json", _run(_bench("test_x", 0.01, model="m", state="fp32", accuracy=0.10)))
    n = _write(tmp_path / "n.json", _run(_bench("test_x", 0.01, model="m", state="fp32", accuracy=math.nan)))
    code, _, err = _cli(["compare", b, n], capsys)
    assert code == 2 and "must be finite" in err  # a NaN accuracy is bad input, never 0 regressions
    code, out, _ = _cli(["compare", b, _write(tmp_path / "m.json", _run(_bench("test_x", 0.01, model="m",
                                                                                state="fp32")))], capsys)  # fmt: skip
    assert "1 undecided" in out
    assert _cli(["compare", b, str(tmp_path / "m.json"), "--strict"], capsys)[0] == 1


# --- item 6: channel pruning is monotone in the ratio ----------------------------------------------


class TinyResNet(nn.Module):
    """Two residual stages (8 and 16 channels, a strided projection between them): the add
    couples channels across layers, which is what Torch-Pruning's dependency graph tracks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                               nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))  # fmt: skip
        self.b = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                               nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))  # fmt: skip
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.a(x))
        x = torch.relu(self.proj(x) + self.b(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _lenet() -> nn.Module:
    return get_model("lenet")


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "lenet": (_lenet, (1, 1, 28, 28)),
    "tiny-resnet": (TinyResNet, (1, 3, 16, 16)),
}


@pytest.fixture(scope="module")
def built() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return {k: (make().eval(), torch.randn(shape)) for k, (make, shape) in MODELS.items()}


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(sorted(MODELS)), st.floats(0.05, 0.99), st.floats(0.05, 0.99))
def test_params_never_grow_with_the_ratio(
    built: dict[str, tuple[nn.Module, torch.Tensor]], name: str, r1: float, r2: float
) -> None:
    model, x = built[name]
    low, high = sorted((r1, r2))
    small = prune_channels(model, high, example_inputs=x)
    assert _params(small) <= _params(prune_channels(model, low, example_inputs=x)), (name, low, high)
    assert small(x).shape == model(x).shape


def test_high_ratios_keep_one_channel_per_layer(built: dict[str, tuple[nn.Module, torch.Tensor]]) -> None:
    model, x = built["lenet"]
    sizes = [_params(prune_channels(model, r, example_inputs=x)) for r in (0.90, 0.95, 0.99)]
    assert sizes == sorted(sizes, reverse=True), sizes  # b2f5f3a: 680, 4,192, ...
    convs = [m for m in prune_channels(model, 0.99, example_inputs=x).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [1, 1]  # 6 and 16 channels, 99% pruned: one left each


# --- item 7: masked pruning does not silently chain -------------------------------------------------


def test_channel_pruning_a_masked_model_makes_it_smaller(built: dict[str, tuple[nn.Module, torch.Tensor]]) -> None:
    model, x = built["lenet"]
    masked = prune_global(model, 0.5)
    out = prune_channels(masked, 0.5, example_inputs=x)
    assert _params(out) < _params(model) and out(x).shape == (1, 10)
    assert not any(hasattr(m, "weight_mask") for m in out.modules())


@pytest.mark.parametrize("after", ["prune-channels-50", "int8-static", "fp16"])
def test_masked_pruning_compounds_are_refused_at_parse_time(after: str) -> None:
    with pytest.raises(CompositionError, match="pruning masks"):
        get_state(f"prune-l1-50-masked+{after}")
    assert get_state("prune-channels-50+prune-l1-50-masked").slug.endswith("masked")  # last is fine
    assert not get_state("prune-l1-50-masked").chainable


# --- item 8: a damaged bitmask is an error, not zeros ------------------------------------------------


def _damage(path: Path, edit: Any) -> None:
    payload = torch.load(path, weights_only=True)
    entry = next(v for v in payload["tensors"].values() if v["layout"] == "bitmask")
    edit(entry)
    torch.save(payload, path)


def _cut_consistently(entry: dict[str, Any]) -> None:
    """The mask cut to its first byte and the values to that byte's set bits: nothing to
    broadcast wrongly, so only a length check sees the damage."""
    mask = entry["mask"][:1]
    entry.update(mask=mask, values=entry["values"][: int(np.unpackbits(mask.numpy()).sum())])


# The first two: a truncated bitmask or short values fail in one line. The last two, item 8:
# b2f5f3a loaded both, the first as zeros past byte 1, the second with one value broadcast.
@pytest.mark.parametrize(
    ("edit", "message"),
    [(lambda e: e.update(mask=e["mask"][:1]), "bitmask has 1 bytes"),
     (lambda e: e.update(values=e["values"][:-1]), "values are stored"),
     (_cut_consistently, "bitmask has 1 bytes"), (lambda e: e.update(values=e["values"][:1]), "values are stored")],
    ids=["mask-cut", "values-short", "cut-consistently", "one-value"],
)  # fmt: skip
def test_a_damaged_bitmask_never_loads_as_zeros_or_one_repeated_value(edit: Any, message: str, tmp_path: Path) -> None:
    model = prune_global(get_model("lenet"), 0.3)
    path = tmp_path / "m.sparse"
    save_sparse(model, path)
    _damage(path, edit)
    with pytest.raises(SparseFileError, match=message):
        load_sparse(path, model=get_model("lenet"))


# --- item 9: distillation temperature bounded, NaN losses fail -----------------------------------


def test_an_absurd_temperature_is_refused_with_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        DistillConfig(temperature=1e20)
    s = torch.randn(4, 10)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        kd_loss(s, s, torch.zeros(4, dtype=torch.long), temperature=1e20)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["distill", "--quiet", "--temperature", "1e20"])
    assert exit_info.value.code == 2 and "(0, 100]" in capsys.readouterr().err


def test_a_non_finite_loss_stops_training() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g)
    x[5] = math.nan  # one bad image poisons its batch's loss
    y = torch.randint(0, 10, (64,), generator=g)
    split = Split("nan", x, y, x[:8], y[:8], 10)
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1, batch"):
        train(get_model("lenet"), split, epochs=1, batch_size=32, progress=False)


# --- items 10 and 11: atomic writes keep modes, sweep only their own names ---------------------


def test_atomic_writes_keep_the_mode_or_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        new_file = tmp_path / "new.json"
        write_bytes_atomic(b"{}", new_file)
        assert new_file.stat().st_mode & 0o777 == 0o644  # 0o666 & ~0o022, as open() gives
        existing = tmp_path / "shared.json"
        existing.write_text("{}")
        existing.chmod(0o664)
        write_bytes_atomic(b"[]", existing)
        assert existing.stat().st_mode & 0o777 == 0o664 and existing.read_bytes() == b"[]"
    finally:
        os.umask(old)


def test_the_sweep_leaves_a_users_tmp_files_alone(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    users = [tmp_path / ".out.json.backup.tmp", tmp_path / ".out.json.123.abcdefgh.tmp"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ours = tmp_path / f".out.json.inference-scale-{int(dead.stdout)}-{'0' * 16}.tmp"
    for path in [*users, ours]:
        path.write_text("x")
        os.utime(path, (time.time() - 7200, time.time() - 7200))  # two hours old
    assert stale_temp_files(target) == [ours]
    write_bytes_atomic(b"{}", target)
    assert all(p.exists() for p in users) and not ours.exists()


# --- item 12 and 21: ab cleans up on SIGTERM, refuses an empty selection -----------------------

SPIN = """
import time

def test_spin(benchmark):
    benchmark(time.sleep, 0.002)
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "test_spin.py").write_text(SPIN)
    _git(root, "init", "-q")
    _git(root, "add", "test_spin.py")
    _git(root, "commit", "-q", "-m", "base")
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize("argv", [["HEAD", "--"], ["HEAD"], ["--aa", "--"]])
def test_ab_without_a_selection_is_refused(argv: list[str], repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["ab", "--out", "out", *argv], capsys)
    assert code == 2 and "selection of benchmarks after --" in err
    assert not (repo / "out").exists()


def test_ab_quotes_pytest_for_a_missing_path_and_leaves_no_empty_folder(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(["ab", "HEAD", "--out", "out", "--block-time", "0.05", "--", "no_such_test.py"], capsys)
    assert code == 2 and "no_such_test.py" in err and "not found" in err, err
    assert "inference-scale-ab-" not in err  # not a temporary worktree that is already gone
    assert list((repo / "out").iterdir()) == []  # the failed run's <stamp>/ folder is removed
    assert len(_git(repo, "worktree", "list").splitlines()) == 1


def test_a_failed_ab_leaves_no_empty_stamp_folder(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # item 12: b2f5f3a left <out>/<stamp>/ behind after every failed ab (here: nothing to time)
    (repo / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    code, _, err = _cli(["ab", "--aa", "--out", "out", "--block-time", "0.05", "--", "test_plain.py"], capsys)
    assert code == 2, err
    assert not (repo / "out").exists() or list((repo / "out").iterdir()) == []


def test_sigterm_to_ab_removes_its_worktree_and_temp_folders(repo: Path, tmp_path: Path) -> None:
    (repo / "test_spin.py").write_text(SPIN.replace("0.002", "0.02"))  # B differs, so A needs a worktree
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "inference_scale.cli.main", "ab", "HEAD", "--runs", "40", "--block-time", "0.5",
           "--out", "out", "--", "test_spin.py"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list((repo / "out").glob("*/A-01.json")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the worktree exists and a block has run: mid-run
        assert len(_git(repo, "worktree", "list").splitlines()) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len(_git(repo, "worktree", "list").splitlines()) == 1
    assert [p.name for p in tmp.iterdir() if p.name.startswith("inference-scale-ab")] == []


# --- items 18 and 20: damaged storage folders, deeply nested JSON --------------------------------


def _advisable() -> dict[str, Any]:
    return _run(_bench("test_fp32", 0.01, model="m", state="fp32", accuracy=0.9),
                _bench("test_int8", 0.005, model="m", state="int8-static", accuracy=0.9))  # fmt: skip


def test_report_and_advise_skip_what_is_not_a_readable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    machine = tmp_path / "Linux-CPython-3.11-64bit"
    machine.mkdir()
    _write(machine / "0001_good.json", _advisable())
    (machine / "0002_x.json").mkdir()  # a folder, and the newest entry
    (machine / "0003_loop.json").symlink_to(machine / "0003_loop.json")
    (machine / "0004_gone.json").symlink_to(tmp_path / "nowhere.json")
    for command in ("report", "advise"):
        code, out, err = _cli([command, "--storage", str(tmp_path)], capsys)
        assert code == 0, (command, err)
        assert "0001_good.json" in out or "int8-static" in out
        warnings = err.strip().splitlines()
        assert len(warnings) == 3 and all(w.startswith("warning: skipping") for w in warnings), err
        assert "a folder" in err and "link loop" in err and "dangling" in err


@pytest.mark.parametrize("command", ["report", "compare", "advise"])
def test_deeply_nested_json_is_a_usage_error(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    argv = [command, str(path)] + ([str(path)] if command == "compare" else [])
    code, _, err = _cli(argv, capsys)
    assert code == 2 and "nested too deeply" in err and len(err.strip().splitlines()) == 1, err
