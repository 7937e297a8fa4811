"""The pytest plugin (a ``pytest11`` entry point: installed with the package, active in any repo).

It adds the ``--is-*`` options, records what a run measured on in pytest-benchmark's
``machine_info``, and parametrizes every test that takes the ``is_case`` fixture over
model x state x batch. With ``--is-model`` and no test paths, it runs its own suite
(:mod:`inference_scale.measure._suite_test`) on the named models, so a user needs no test file::

    pytest --benchmark-only --is-model mypkg.nets:build --is-input-shape 3,224,224 \\
        --is-states fp32,bf16,int8-static,prune-channels-50 --is-eval mypkg.data:val_batches

Every option is checked in ``pytest_configure``, before any model is prepared; a bad one is a
usage error of one line (exit code 4) that names the valid choices.

The plugin is loaded in every pytest session of a repo that installs the package, so it costs
nothing there: torch and the library are imported only when a session uses it (``--is-*``
options, or tests that take its fixtures), and only such sessions get its ``machine_info``
and reference workload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from inference_scale.defaults import DEFAULTS
from inference_scale.errors import InferenceScaleError
from inference_scale.options import MODEL_FLAGS, SHARED

if TYPE_CHECKING:
    from inference_scale.measure.plan import Plan
    from inference_scale.measure.suite import Grid, Options, Session
    from inference_scale.subjects.subject import Subject

__all__ = ["FLAGS", "SUITE_FILE", "PlanCarrier", "is_options", "is_session", "split_values"]

SUITE_FILE = Path(__file__).with_name("_suite_test.py")
REFERENCE_ENV = "INFERENCE_SCALE_REFERENCE_SECONDS"
_PLAN = pytest.StashKey["Plan"]()
_REFERENCE_START = pytest.StashKey[dict[str, float]]()
_PEAKS = pytest.StashKey[dict[str, Any]]()  # this machine's measured peaks, at the session's start
_USED = pytest.StashKey[bool]()  # whether this session runs any of the plugin's benchmarks
_FIXTURES = ("is_case", "is_options", "is_session")
_ENV_ERROR = pytest.StashKey[str]()  # a bad $INFERENCE_SCALE_REFERENCE_SECONDS, raised only where used


class PlanCarrier:
    """A plugin object that hands a checked :class:`~inference_scale.measure.plan.Plan` to this
    plugin: ``pytest.main(args, plugins=[PlanCarrier(plan)])`` runs the plan with no argv
    round trip (the Python API and ``inference-scale bench`` do this)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan


def split_values(values: list[str] | None) -> list[str]:
    """Values of a repeatable, comma-separated option (``--is-model a,b --is-model c``)."""
    from inference_scale.measure.plan import split_values as split

    return split(values)


# Each option's flag, the keyword of make_plan it feeds, and how argparse reads it. Defaults
# are make_plan's (plan.DEFAULTS); None means "not given". The flags the CLI shares come from
# inference_scale.options, declared once for both.
_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--is-model", "models", {"action": "append", "metavar": "NAME|hf:DIR|timm:NAME|MODULE:FACTORY",
        "help": "model(s) to benchmark: a registry name (`inference-scale models`), hf:DIR (a save_pretrained "
        "folder), timm:NAME, or module:factory returning an nn.Module (repeatable or comma-separated)"}),
    *((f"--is-{name}", name.replace("-", "_"), SHARED[name].kwargs(for_plugin=True)) for name in MODEL_FLAGS),
    ("--is-states", "states", {"action": "append", "metavar": "SLUG[,SLUG]",
        "help": "states to run (`inference-scale states` lists them; join with + to compose); "
        "default for a model no suite names: inference_scale.defaults.DEFAULT_STATES"}),
    ("--is-batch-size", "batch_sizes", {"action": "append", "metavar": "N[,N]",
        "help": "batch sizes (repeatable or comma-separated)"}),
    ("--is-device", "device", SHARED["device"].kwargs(for_plugin=True)),
    ("--is-threads", "threads", SHARED["threads"].kwargs(for_plugin=True)),
    ("--is-seeds", "seeds", SHARED["seeds"].kwargs(for_plugin=True)),
    ("--is-cuda-events", "cuda_events", {"type": int, "metavar": "N",
        "help": "on CUDA, also time N calls with CUDA events in the same process (cuda_event_median_s)"}),
    ("--is-no-compile", "compile", {"action": "store_false", "default": None,
        "help": "run the compiled states (int8-static, int8-dynamic, compile) eager: a quick look, not their speed"}),
    ("--is-all-int8", "all_int8", {"action": "store_true", "default": None,
        "help": "run inductor-compiled states (int8, compile) on transformers too (minutes per graph on a small CPU)"}),
    ("--is-memory", "memory", {"action": "store_true", "default": None,
        "help": "also measure each case's peak RSS and cold start (load, first call) in a fresh process"}),
    ("--is-tail", "tail", {"action": "store_true", "default": None,
        "help": "take enough rounds for p90 and p99 (MLPerf LoadGen's counts), at most "
        f"{DEFAULTS['tail_seconds']:g} s a case"}),
    ("--is-reference-seconds", "reference_seconds", {"metavar": "S", "help": "seconds per reference workload "
        "(GEMM, conv) at the start and end of a timed run, to see machine drift; 0 turns it off (default 0.5, "
        f"or ${REFERENCE_ENV})"}),
)  # fmt: skip
FLAGS: dict[str, str] = {key: flag for flag, key, _ in _OPTIONS}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inference-scale", "inference-scale: benchmark a model in each compression state")
    for flag, _, kwargs in _OPTIONS:
        group.addoption(flag, **kwargs)


def _given(config: pytest.Config) -> dict[str, Any]:
    """The --is-* options that were given (not None), as make_plan's keywords; the reference
    seconds from the environment where no flag gives them."""
    given = {}
    for flag, key, _ in _OPTIONS:
        value = config.getoption(flag)
        if value is not None:
            given[key] = value
    if "reference_seconds" not in given and os.environ.get(REFERENCE_ENV) is not None:
        given["reference_seconds"] = os.environ[REFERENCE_ENV]
    return given


def _plan_from_options(config: pytest.Config) -> Plan:
    """A plan from the --is-* options, each checked once by make_plan; an error names the
    flag (or the environment variable) that carried the bad value. A bad environment value in
    a session that gives no --is-* option is held back: it fails only a session that runs
    this plugin's benchmarks, never someone else's tests."""
    from inference_scale.measure.plan import Plan, check_reference_seconds, flagged, make_plan

    given = _given(config)
    seconds = given.pop("reference_seconds", None)
    if seconds is not None:
        flag = config.getoption("--is-reference-seconds") is not None
        try:
            seconds = check_reference_seconds(seconds, what="--is-reference-seconds" if flag else REFERENCE_ENV)
        except InferenceScaleError as exc:
            if flag or given:
                raise pytest.UsageError(str(exc)) from None
            config.stash[_ENV_ERROR] = str(exc)
            return Plan()
    if not given:
        return Plan(reference_seconds=seconds) if seconds is not None else Plan()
    for key in ("example", "input_shape", "eval", "calibration", "device"):
        if key in given and not str(given[key]).strip():
            raise pytest.UsageError(f"{FLAGS[key]} is empty; give a value or leave it out")
    try:
        return make_plan(
            **given, **({} if seconds is None else {"reference_seconds": seconds}),
            smoke=bool(config.getoption("benchmark_disable", False)),
        )  # fmt: skip
    except InferenceScaleError as exc:
        raise pytest.UsageError(flagged(exc, FLAGS)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_USED] = False
    carrier = next((p for p in config.pluginmanager.get_plugins() if isinstance(p, PlanCarrier)), None)
    if carrier is not None:
        config.stash[_PLAN] = carrier.plan
    else:
        config.stash[_PLAN] = _plan_from_options(config)
    plan = config.stash[_PLAN]
    if plan.subjects and config.args_source != pytest.Config.ArgsSource.ARGS:
        # No test paths given: run the plugin's own suite on the named models, not the repo's tests.
        config.args[:] = [str(SUITE_FILE)]


def _plan(config: pytest.Config) -> Plan:
    from inference_scale.measure.plan import Plan

    return config.stash.get(_PLAN, None) or Plan()


def _reference_seconds(config: pytest.Config) -> float:
    """0 under --benchmark-disable (a smoke run times nothing), else the plan's value."""
    if config.getoption("benchmark_disable", False) or config.getoption("collectonly", False):
        return 0.0
    return float(_plan(config).reference_seconds)


# Notices the libraries under test print for every case, that say nothing about the case:
# silenced in the plugin's own cases only, by a filterwarnings mark on each.
KNOWN_NOTICES: tuple[str, ...] = (
    # torchao's X86 quantizer notes each pattern it leaves float; the record lists them instead
    "ignore:The input of maxpool2d is not quantized:UserWarning",
    # inductor's oneDNN lowering copies a constant with torch.tensor(tensor) (torch 2.14)
    "ignore:To copy construct from a tensor:UserWarning:torch._inductor.*",
    # NNCF announces its optional backends (torch.fx, tensorflow) when it is imported
    "ignore::DeprecationWarning:nncf.*",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note whether any collected test uses the plugin; if so, measure the reference workload
    now, after collection and before the first timing."""
    mine = [item for item in items if set(_FIXTURES) & set(getattr(item, "fixturenames", ()))]
    for item in mine:
        for notice in KNOWN_NOTICES:
            item.add_marker(pytest.mark.filterwarnings(notice))
    used = bool(mine)
    config.stash[_USED] = used
    if used and config.stash.get(_ENV_ERROR, None):
        raise pytest.UsageError(config.stash[_ENV_ERROR])
    seconds = _reference_seconds(config)
    if used and seconds > 0:
        from inference_scale.measure.peaks import measure_peaks
        from inference_scale.measure.reference import measure_reference

        config.stash[_REFERENCE_START] = measure_reference(seconds=seconds)
        # on the run's own thread count: % of peak and the lower bound are read against it
        config.stash[_PEAKS] = measure_peaks(threads=_options(config).threads)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record what a saved run measured on, so compare can tell like from unlike (only in
    sessions that ran the plugin's benchmarks: anyone else's runs are left as they are)."""
    if not config.stash.get(_USED, False):
        return
    import torch
    import torchvision

    from inference_scale.measure import machine
    from inference_scale.measure.bounds import PEAKS_KEY
    from inference_scale.measure.reference import measure_reference
    from inference_scale.runtime import cpu_name
    from inference_scale.verdicts.drift import KEY

    options = _options(config)
    device = options.device
    machine_info["inference_scale"] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu_name": cpu_name(),
        "threads": options.threads,
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else None,
        machine.KEY: machine.host_info(),  # ISA flags, cores, caches, memory: compare warns when they differ
    }
    peaks = config.stash.get(_PEAKS, None)
    if peaks is not None:
        machine_info["inference_scale"][PEAKS_KEY] = peaks
    start = config.stash.get(_REFERENCE_START, None)
    if start is not None:
        # The machine's own speed at the start and end of the run: compare reads drift from it.
        end = measure_reference(seconds=_reference_seconds(config))
        machine_info["inference_scale"][KEY] = {"start": start, "end": end}


def _options(config: pytest.Config) -> Options:
    import dataclasses

    from inference_scale.measure.suite import Options

    plan = _plan(config)
    smoke = bool(config.getoption("benchmark_disable", False))
    return dataclasses.replace(plan.options or Options(), smoke=smoke)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``is_case``: the module's ``IS_GRIDS`` (none in the plugin's own suite), narrowed or
    extended by the plan's models, states and batch sizes."""
    if "is_case" not in metafunc.fixturenames:
        return
    from inference_scale.measure.suite import make_cases

    config = metafunc.config
    plan = _plan(config)
    grids: list[Grid] = list(getattr(metafunc.module, "IS_GRIDS", ()))
    if config.getoption("benchmark_disable", False):
        grids = [g for g in grids if g.smoke]
    try:
        cases = make_cases(
            grids, models=list(plan.models) or None, states=list(plan.states) or None,
            batches=list(plan.batches) or None,
        )  # fmt: skip
    except InferenceScaleError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize("is_case", [pytest.param(c, id=c.id) for c in cases])


@pytest.fixture(scope="session")
def is_options(pytestconfig: pytest.Config) -> Iterator[Options]:
    """The run's settings; intra-op threads are pinned for the whole session and restored."""
    from inference_scale.runtime import threads

    options = _options(pytestconfig)
    with threads(options.threads):
        yield options


@pytest.fixture(scope="module")
def is_session(request: pytest.FixtureRequest) -> Session:
    """Models built once per module: the module's ``IS_SUBJECTS`` (name -> a function returning
    a :class:`Subject`), then the plan's (checked) ones, then registry names."""
    from inference_scale.measure.suite import Session
    from inference_scale.subjects.resolve import subject_from_spec

    own = getattr(request.module, "IS_SUBJECTS", {})
    user = _plan(request.config).subjects

    def resolve(name: str) -> Subject:
        if name in own:
            return own[name]()
        if name in user:
            return user[name]
        return subject_from_spec(name)

    return Session(resolve)
