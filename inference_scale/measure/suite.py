"""The benchmark runner behind every suite: cases over model x state x batch, one case's
preparation (outside the timed call), its accuracy and agreement, its record and its timing.

The plugin (:mod:`.plugin`), ``inference-scale bench`` and this repo's ``benchmarks/`` all run
cases through :func:`run_case`, so a record means the same wherever it was made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inference_scale.defaults import DEFAULT_BATCHES, DEFAULT_STATES, DEFAULTS
from inference_scale.errors import InferenceScaleError
from inference_scale.measure.record import BenchmarkRecord
from inference_scale.sizing import count_macs_on
from inference_scale.slugs import BASELINE
from inference_scale.states import Context, MissingInputError, Prepared, State, get_state
from inference_scale.subjects.inputs import Batch, batch_len, chunks, concat, input_spec, take
from inference_scale.subjects.subject import Subject
from inference_scale.verdicts.ab_sync import PLUGIN as AB_PLUGIN

__all__ = [
    "Case",
    "CaseFailure",
    "Grid",
    "Options",
    "Session",
    "calibration_batches",
    "make_cases",
    "measure",
    "missing_input",
    "neighbour_agreement",
    "predict",
    "quality",
    "run_case",
    "skip_reason",
    "time_prepared",
    "warm_up",
]

CALIBRATION_IMAGES = 256  # from real data: the static ranges settle well before this
RANDOM_CALIBRATION_IMAGES = 8  # random weights on random images: more adds nothing
AGREEMENT_IMAGES = 8  # random images, where there is no eval data (random weights: a sanity check)
SMOKE_EVAL_IMAGES = 64  # under --benchmark-disable: a check that it runs, not a figure
CPU_WARMUP_CALLS = 2  # oneDNN builds its primitives and caches on the first call
CUDA_WARMUP_SECONDS = 0.5  # clocks ramp and cuDNN autotunes: warm up by time, not by count


class CaseFailure(InferenceScaleError, ValueError):
    """A case whose numbers cannot be trusted (an output that is not finite, of the wrong
    rows, or a quality figure that is not a number): the case fails before it is timed, so it
    is never stored as a benchmark."""


@dataclass(frozen=True)
class Grid:
    """Subjects x states x batch sizes; several grids make a suite. ``smoke=False`` leaves the
    grid out of the smoke run (``--benchmark-disable``), for grids whose preparation alone
    takes minutes (another runtime's export and quantization of a large model)."""

    subjects: tuple[str, ...]
    states: tuple[str, ...]
    batches: tuple[int, ...]
    smoke: bool = True
    memory: bool = False  # also probe each case's memory and cold start in a fresh process
    tail: bool = False  # take enough rounds for tail percentiles (p90, p99), within a time budget


@dataclass(frozen=True)
class Case:
    subject: str
    state: str
    batch: int
    memory: bool = False
    tail: bool = False

    @property
    def id(self) -> str:
        return f"{self.subject}-{self.state}-b{self.batch}"


def make_cases(
    grids: Sequence[Grid],
    *,
    models: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
    batches: Sequence[int] | None = None,
) -> list[Case]:
    """Cases in run order: per subject and batch size, the fp32 baseline first, then the other
    states, each once however many grids name it. ``models``, ``states`` and ``batches``
    (options) narrow or replace the grids: a model no grid names gets the default states."""
    plan: dict[tuple[str, int], list[str]] = {}
    flags: dict[tuple[str, int, str], tuple[bool, bool]] = {}  # (memory, tail): any grid that asks
    named = {s for g in grids for s in g.subjects}
    chosen = list(grids)
    if models:
        chosen = [dataclasses.replace(g, subjects=tuple(s for s in g.subjects if s in models)) for g in grids]
        new = tuple(m for m in models if m not in named)
        if new:
            chosen.append(Grid(new, DEFAULT_STATES, DEFAULT_BATCHES))
    for grid in chosen:
        for subject in grid.subjects:
            for batch in batches or grid.batches:
                plan.setdefault((subject, batch), [])
                slugs = [get_state(s).slug for s in states or grid.states]
                plan[(subject, batch)].extend(slugs)
                for slug in {BASELINE, *slugs}:
                    memory, tail = flags.get((subject, batch, slug), (False, False))
                    flags[(subject, batch, slug)] = (memory or grid.memory, tail or grid.tail)
    cases: list[Case] = []
    for (subject, batch), slugs in plan.items():
        ordered = [BASELINE, *dict.fromkeys(s for s in slugs if s != BASELINE)]
        cases.extend(Case(subject, s, batch, *flags[(subject, batch, s)]) for s in ordered)
    return cases


@dataclass(frozen=True)
class Options:
    """How the session runs: device, threads, the smoke run (``--benchmark-disable``: one call,
    nothing compiled), ``compile=False`` (compiled states run eager, for a quick look; records
    say ``compiled: false``) and whether transformers get compiled int8 (minutes of inductor
    per graph on a small CPU)."""

    device: str = DEFAULTS["device"]
    threads: int = DEFAULTS["threads"]
    smoke: bool = False
    compile: bool = DEFAULTS["compile"]
    all_int8: bool = DEFAULTS["all_int8"]
    cuda_events: int = DEFAULTS["cuda_events"]  # on CUDA, also time this many calls with CUDA events
    seeds: int = DEFAULTS["seeds"]  # states that train (kd) are applied once per seed, accuracy their mean
    memory: bool = DEFAULTS["memory"]  # probe every case's memory and cold start (one process per case)
    tail: bool = DEFAULTS["tail"]  # take enough rounds for p90/p99 in every case, within tail_seconds


@dataclass
class Session:
    """Subjects (found by ``resolve``), their built models, MACs and fp32 reference outputs,
    each computed once."""

    resolve: Callable[[str], Subject]
    _subjects: dict[str, Subject] = field(default_factory=dict)
    _built: dict[str, tuple[nn.Module, int]] = field(default_factory=dict)
    _reference: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)

    def model(self, name: str) -> tuple[Subject, nn.Module, int]:
        if name not in self._subjects:
            self._subjects[name] = self.resolve(name)
        subject = self._subjects[name]
        if name not in self._built:
            model = subject.build().eval()
            self._built[name] = (model, count_macs_on(model, subject.example(1)))
        return (subject, *self._built[name])

    def reference(self, name: str, x: Batch, batch: int) -> torch.Tensor:
        """fp32 eager outputs of the source model on ``x`` (CPU), the agreement reference."""
        key = (name, batch_len(x))
        if key not in self._reference:
            _, model, _ = self.model(name)
            self._reference[key] = predict(model, x, batch_size=batch)
        return self._reference[key]


def predict(model: Callable[..., Any], x: Batch, *, batch_size: int, fixed_batch: bool = False) -> torch.Tensor:
    """Outputs of ``model(*inputs)`` on ``x`` in batches, as float32 on the CPU, under
    inference mode. ``fixed_batch`` pads the last batch to ``batch_size`` (repeating its first
    row; the padding's outputs are dropped), for models compiled for one static shape."""
    n = batch_len(x)
    outs = []
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            chunk = take(x, i, i + batch_size)
            rows = batch_len(chunk)
            if fixed_batch and rows < batch_size:
                chunk = concat([chunk, tuple(t[:1].expand(batch_size - rows, *t.shape[1:]) for t in chunk)])
            out = model(*chunk)
            outs.append(torch.as_tensor(out).float().cpu()[:rows])
    return torch.cat(outs)


def calibration_batches(subject: Subject, batch: int, opts: Options) -> tuple[Batch, ...]:
    """The subject's calibration inputs, else its eval inputs, else (random weights only)
    seeded random inputs. A smoke run calibrates on one batch."""
    real = subject.calibration_batch()
    if real is None:
        data = subject.eval_data()
        real = None if data is None else data.x
    if real is None:
        if not subject.random_calibration:
            return ()
        real = subject.example(RANDOM_CALIBRATION_IMAGES, seed=1)
    return chunks(real, batch, batch if opts.smoke else CALIBRATION_IMAGES)


def example_input(subject: Subject, batch: int) -> Batch:
    """The timed input: the first eval inputs (repeated to fill the batch), else the subject's
    seeded example inputs."""
    data = subject.eval_data()
    if data is None:
        return subject.example(batch, seed=0)
    return chunks(data.x, batch, batch)[0]


def missing_input(state: State, subject: Subject) -> str | None:
    """What ``subject`` lacks for ``state`` (None when nothing): checked before any work on
    the states a user names, so a missing runtime package is an error there (in a grid, the
    state skips with the same reason)."""
    unavailable = state.unavailable()
    if unavailable:
        return f"{subject.name}: {unavailable}"
    no_data = subject.calibration() is None and subject.eval_data() is None
    if "calibration" in state.needs and no_data and not subject.random_calibration:
        return (
            f"state {state.slug!r} needs calibration data for {subject.name}: give a calibration loader "
            "or an eval loader (its inputs calibrate)"
        )
    if "training_data" in state.needs and subject.training is None:
        return f"state {state.slug!r} trains the model and {subject.name} comes with no training data"
    return None


def skip_reason(state: State, subject: Subject, model: nn.Module, opts: Options) -> str | None:
    """Why ``state`` is not run for ``subject`` here: the state's own declared facts (device,
    kind, model, whether it compiles what this run does not compile)."""
    reason = state.skip_reason(model, device=opts.device, kind=subject.kind)
    if reason:
        return reason
    slow = state.compile_reason(subject.kind, slow_compile=opts.all_int8)
    return f"{slow}; the all-int8 option (--is-all-int8, bench --all-int8) runs it" if slow else None


def _finite(value: float, what: str, subject: Subject, slug: str) -> float:
    if not math.isfinite(value):
        raise CaseFailure(f"{subject.name} in {slug}: {what} is {value}, not a number: the outputs are not finite")
    return value


def _check_output(out: object, rows: int, subject: Subject, slug: str, *, what: str) -> torch.Tensor:
    """The output of ``rows`` inputs: a tensor with a row per input, every value finite."""
    if not isinstance(out, torch.Tensor):
        raise CaseFailure(f"{subject.name} in {slug}: {what} is a {type(out).__name__}, not a tensor")
    if out.dim() == 0 or out.shape[0] != rows:
        raise CaseFailure(f"{subject.name} in {slug}: {what} has shape {tuple(out.shape)}, not {rows} rows")
    bad = int((~torch.isfinite(out.float())).sum())
    if bad:
        raise CaseFailure(f"{subject.name} in {slug}: {what} has {bad} non-finite values (NaN or inf) of {out.numel()}")
    return out


def neighbour_agreement(ref: torch.Tensor, out: torch.Tensor) -> float:
    """The share of inputs whose nearest other input (by cosine of their embeddings) is the
    same under ``out`` as under ``ref``: retrieval with the state's embeddings finds what
    fp32's would."""
    if len(ref) < 2:
        return float("nan")

    def nearest(e: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(e.reshape(len(e), -1).double(), dim=1)
        sim = unit @ unit.T
        sim.fill_diagonal_(-math.inf)
        return sim.argmax(1)

    return float((nearest(ref) == nearest(out)).double().mean())


def quality(
    prepared: Prepared, session: Session, subject: Subject, batch: int, opts: Options, *, baseline: bool
) -> dict[str, Any]:
    """Accuracy on the subject's eval data (where it has targets) and agreement with fp32
    eager on the eval inputs or, without them, on seeded example inputs: the per-sample cosine
    of the outputs (mean over samples), top-1 agreement where they are class logits, and
    nearest-neighbour agreement for an embedding model. The baseline's agreement with itself
    is not recorded. Outputs and figures that are not finite fail the case (:class:`CaseFailure`)."""
    data = subject.eval_data()
    limit = SMOKE_EVAL_IMAGES if opts.smoke else None
    if data is not None:
        x = take(data.x, 0, limit or len(data))
    else:
        x = subject.example(batch if opts.smoke else AGREEMENT_IMAGES, seed=2)
    out = predict(prepared, x, batch_size=batch, fixed_batch=True)
    n = batch_len(x)
    _check_output(out, n, subject, prepared.slug, what="the output on the eval inputs")
    extras: dict[str, Any] = {}
    logits = out.dim() == 2 and subject.quality == "logits"
    if data is not None and data.y is not None and logits:
        y = data.y[:n]
        extras["accuracy"] = _finite(float((out.argmax(1) == y).float().mean()), "accuracy", subject, prepared.slug)
        extras["accuracy_dataset"] = subject.accuracy_dataset or "eval loader"
        extras["accuracy_images"] = len(y)
    if data is not None and subject.quality == "embedding":
        extras["quality_dataset"] = subject.accuracy_dataset or "eval loader"
        extras["quality_inputs"] = n
    if baseline:
        return extras
    ref = session.reference(subject.name, x, batch)
    cosine = F.cosine_similarity(ref.reshape(n, -1).double(), out.reshape(n, -1).double(), dim=1)
    value = _finite(float(cosine.mean()), "the cosine against fp32", subject, prepared.slug)
    extras["cosine_vs_fp32"] = max(-1.0, min(1.0, value))  # 1.0000001 is rounding
    extras["cosine_min_vs_fp32"] = max(-1.0, min(1.0, float(cosine.min())))
    if logits:
        extras["top1_agreement"] = float((ref.argmax(1) == out.argmax(1)).float().mean())
    if subject.quality == "embedding":
        extras["neighbour_agreement"] = _finite(
            neighbour_agreement(ref, out), "the neighbour agreement", subject, prepared.slug
        )
    return extras


def warm_up(run: Any, device: str, *, disabled: bool = False) -> None:
    """Untimed calls before timing: a fixed count on the CPU, a time budget on CUDA (clock
    ramp-up, cuDNN autotuning and lazy module loading take longer than a call or two).
    Skipped in the smoke run, where the single call is a check, not a timing."""
    if disabled:
        return
    if torch.device(device).type == "cuda":
        start, calls = time.perf_counter(), 0
        while calls < 3 or time.perf_counter() - start < CUDA_WARMUP_SECONDS:
            run()
            calls += 1
        return
    for _ in range(CPU_WARMUP_CALLS):
        run()


def cuda_event_seconds(run: Any, calls: int) -> list[float]:
    """Seconds per call of ``run`` by CUDA events recorded around each call on the current
    stream: the GPU's own clock, an outside check on the host timer's medians."""
    times = []
    for _ in range(calls):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)  # elapsed_time is in milliseconds
    return times


def measure(
    benchmark: Any,
    run: Any,
    record: BenchmarkRecord,
    *,
    group: str,
    cuda_events: int = 0,
    tail: bool = False,
    setup: Callable[[], None] | None = None,
) -> Any:
    """Record ``record`` in extra_info, warm up, then time ``run`` (grouped by ``group``).
    With ``setup``, it runs untimed before every round (pytest-benchmark's pedantic mode, one
    call a round, as many rounds as ``--benchmark-max-time`` affords with it, at least 5).
    Inside an ``inference-scale ab`` block the rounds go through the A/B round barrier, so
    they alternate with the other side's (see ``inference_scale/verdicts/ab_sync.py``). With
    ``cuda_events`` on CUDA, that many calls are also timed by CUDA events, in this process,
    right after warm-up, and their median stored as ``cuda_event_median_s``."""
    benchmark.group = group
    benchmark.extra_info.update(record.to_extra_info())
    disabled = bool(getattr(benchmark, "disabled", False))
    warm_up(run, record.device, disabled=disabled)
    if cuda_events and not disabled and torch.device(record.device).type == "cuda":
        benchmark.extra_info["cuda_event_median_s"] = statistics.median(cuda_event_seconds(run, cuda_events))
    sync = sys.modules.get(AB_PLUGIN)
    if sync is not None and sync.active() and not disabled:
        start = time.perf_counter()
        run()
        per_call = time.perf_counter() - start
        rounds = max(5, int(sync.block_time() / per_call))
        rounds = sync.agree_rounds(rounds)  # the same count on both sides: every round is paired
        return benchmark.pedantic(run, setup=sync.round_barrier, rounds=rounds, iterations=1)
    if setup is not None and not disabled:
        start = time.perf_counter()
        setup()
        run()
        rounds = max(5, int(float(getattr(benchmark, "_max_time", 1.0)) / (time.perf_counter() - start)))
        return benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    if tail and not disabled:
        rounds = tail_rounds(run, max_time=float(getattr(benchmark, "_max_time", 1.0)))
        benchmark.extra_info["tail_rounds"] = rounds
        return benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    return benchmark(run)


def tail_rounds(run: Any, *, max_time: float = 1.0, seconds: float = DEFAULTS["tail_seconds"]) -> int:
    """Rounds for tail percentiles: at least what pytest-benchmark's ``max_time`` would take,
    and enough for a p99 (MLPerf LoadGen's early-stopping count,
    :func:`~inference_scale.verdicts.tails.min_samples`) where ``seconds`` affords them; else
    enough for a p90. Rounds between the two buy no percentile, so they are not taken: a
    10 ms state runs ``max_time``'s 100 rounds, not the 400 a 4 s budget would afford."""
    from inference_scale.verdicts.tails import min_samples

    start = time.perf_counter()
    run()
    per_call = max(time.perf_counter() - start, 1e-9)
    p90, p99 = min_samples(90), min_samples(99)
    usual = int(max_time / per_call)
    return max(usual, p99 if p99 * per_call <= seconds else p90)


def time_prepared(
    benchmark: Any,
    subject: Subject,
    prepared: Prepared,
    x: Batch | torch.Tensor,
    opts: Options,
    *,
    extras: dict[str, Any] | None = None,
    group: str | None = None,
    tail: bool = False,
    run: Callable[[], Any] | None = None,
    setup: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The record of ``prepared`` (its facts, the run's settings, ``extras``), then its timing
    on input ``x`` (``prepared.runner(x)``, or ``run``: another call on batches shaped like
    ``x``, such as serving's step on a fresh batch each call; ``setup`` as in :func:`measure`).
    The timed call's output is checked before timing (one finite row per input: a case that
    fails is never stored as a benchmark) and returned."""
    x = (x,) if isinstance(x, torch.Tensor) else x
    run = run or prepared.runner(x)
    rows = batch_len(x)
    with torch.inference_mode():
        _check_output(torch.as_tensor(run()).cpu(), rows, subject, prepared.slug, what="the output of the timed call")
    spec = input_spec(x, subject.input_names)
    inputs = {"inputs": spec} if len(spec) > 1 or spec[0]["dtype"] != "float32" else {}
    record = BenchmarkRecord(
        model=subject.name, family=subject.family, kind=subject.kind, state=prepared.slug, batch_size=rows,
        device=opts.device, threads=opts.threads, dtype=prepared.dtype, params=prepared.params,
        nonzero_params=prepared.nonzero_params, macs=prepared.macs, bytes=prepared.bytes,
        input_shape=list(subject.input_shape), weights=subject.weights, runtime=prepared.runtime,
        runtime_version=prepared.runtime_version, state_family=get_state(prepared.slug).family,
        extras={**prepared.extras, **inputs, **(extras or {})},
    )  # fmt: skip
    return measure(
        benchmark, run, record, group=group or subject.name, cuda_events=opts.cuda_events, tail=tail or opts.tail,
        setup=setup,
    )  # fmt: skip


def run_case(benchmark: Any, session: Session, case: Case, opts: Options) -> torch.Tensor | None:
    """Prepare ``case`` (outside timing), measure its quality, record and time it. Returns
    None (after ``pytest.skip``) when the state cannot run this model here."""
    import pytest

    from inference_scale.subjects.hub import SubjectUnavailableError

    try:
        subject, model, macs = session.model(case.subject)
    except SubjectUnavailableError as exc:  # its package is not installed: a skip in a grid
        pytest.skip(str(exc))
    state = get_state(case.state)
    reason = skip_reason(state, subject, model, opts)
    if reason:
        pytest.skip(reason)
    missing = missing_input(state, subject)
    if missing:
        raise MissingInputError(missing)
    x = example_input(subject, case.batch)
    ctx = Context(
        example=x,
        device=opts.device,
        calibration=calibration_batches(subject, case.batch, opts),
        macs=macs,
        compile=opts.compile and not opts.smoke and (subject.kind != "transformer" or opts.all_int8),
        training=subject.training,
        name=subject.name,
        kind=subject.kind,
        threads=opts.threads,
        input_names=subject.input_names,
    )
    with _one_line_failure():  # export refused, runtime refused, outputs not finite: one line, no traceback
        prepared = state(model, ctx)
        extras = quality(prepared, session, subject, case.batch, opts, baseline=case.state == BASELINE)
        out = time_prepared(benchmark, subject, prepared, x, opts, extras=extras, tail=case.tail)
    # The other seeds come after the timing: preparing a model can disturb one prepared before
    # it (a strict export drops dynamo's compiled code of the same class; see quantize.model).
    if "training_data" in state.needs and "accuracy" in extras and opts.seeds > 1 and not opts.smoke:
        with _one_line_failure():
            benchmark.extra_info.update(_over_seeds(state, model, ctx, extras, session, subject, case.batch, opts))
    if (case.memory or opts.memory) and not opts.smoke:
        benchmark.extra_info.update(memory_extras(case, opts))
    return out


# The record fields a memory probe adds; see inference_scale.measure.memory.
MEMORY_FIELDS = ("peak_rss_bytes", "weights_bytes_in_memory", "load_s", "first_call_s")


def memory_extras(case: Case, opts: Options) -> dict[str, Any]:
    """The case's memory and cold start, measured in a fresh process after its timing (so the
    child never shares the cores with a timed call): peak RSS above the child's baseline, the
    weights it holds, the time to load the state's artifact and of its first call. A child
    that fails is recorded as ``memory_failed`` with its reason; the run goes on."""
    from inference_scale.measure.memory import probe_memory

    probe = probe_memory(
        model=case.subject, state=case.state, batch=case.batch, threads=opts.threads,
        timeout_s=DEFAULTS["memory_timeout_s"], compile=opts.compile,
    )  # fmt: skip
    if "failed" in probe or "skipped" in probe:
        return {"memory_failed": str(probe.get("failed") or probe.get("skipped"))}
    return {
        "peak_rss_bytes": int(probe["peak_rss_bytes"]),
        "weights_bytes_in_memory": int(probe["weights_bytes_in_memory"]),
        "load_s": float(probe["load_seconds"]),
        "first_call_s": float(probe["first_call_seconds"]),
    }


@contextlib.contextmanager
def _one_line_failure() -> Iterator[None]:
    """A user-facing error while preparing a case fails it with its one-line message."""
    import pytest

    try:
        yield
    except InferenceScaleError as exc:
        pytest.fail(str(exc), pytrace=False)


def _over_seeds(
    state: State,
    model: nn.Module,
    ctx: Context,
    first: dict[str, Any],
    session: Session,
    subject: Subject,
    batch: int,
    opts: Options,
) -> dict[str, Any]:
    """A training state's accuracy over ``opts.seeds`` seeds (seed 0's run is ``first``):
    each seed trains and prepares again; the record keeps each seed's accuracy and their mean
    as ``accuracy``. Seed 0's model is the one timed (every seed's has the same shape)."""
    accuracies = [first["accuracy"]]
    for seed in range(1, opts.seeds):
        again = state(model, dataclasses.replace(ctx, seed=seed))
        accuracies.append(quality(again, session, subject, batch, opts, baseline=False)["accuracy"])
    return {
        "accuracy": statistics.fmean(accuracies),
        "accuracy_seeds": accuracies,
        "accuracy_std": statistics.stdev(accuracies),
    }
