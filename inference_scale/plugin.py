"""The pytest plugin (a ``pytest11`` entry point: installed with the package, active in any repo).

It adds the ``--is-*`` options, records what a run measured on in pytest-benchmark's
``machine_info``, and parametrizes every test that takes the ``is_case`` fixture over
model x state x batch. With ``--is-model`` and no test paths, it runs its own suite
(:mod:`inference_scale._suite_test`) on the named models, so a user needs no test file::

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

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import InferenceScaleError

if TYPE_CHECKING:
    from .subject import Subject
    from .suite import Grid, Options, Session

__all__ = ["SUITE_FILE", "is_options", "is_session", "split_values"]

SUITE_FILE = Path(__file__).with_name("_suite_test.py")
REFERENCE_ENV = "INFERENCE_SCALE_REFERENCE_SECONDS"
_SUBJECTS = pytest.StashKey[dict[str, "Subject"]]()
_REFERENCE_START = pytest.StashKey[dict[str, float]]()
_USED = pytest.StashKey[bool]()  # whether this session runs any of the plugin's benchmarks
_FIXTURES = ("is_case", "is_options", "is_session")
_DEFAULTS: dict[str, object] = {"--is-device": "cpu", "--is-threads": 1, "--is-cuda-events": 0, "--is-seeds": 3}


def split_values(values: list[str] | None) -> list[str]:
    """Values of a repeatable, comma-separated option (``--is-model a,b --is-model c``)."""
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inference-scale", "inference-scale: benchmark a model in each compression state")
    add = group.addoption
    add(
        "--is-model",
        action="append",
        metavar="NAME|MODULE:FACTORY",
        help="model(s) to benchmark: a registry name (`inference-scale models`) or module:factory, a callable "
        "returning an nn.Module (repeatable or comma-separated)",
    )
    add("--is-input-shape", metavar="C,H,W", help="one sample's input shape, without the batch (needed for a factory)")
    add(
        "--is-states",
        action="append",
        metavar="SLUG[,SLUG]",
        help="states to run (`inference-scale states` lists them; join with + to compose); "
        "default for a model no suite names: inference_scale.suite.DEFAULT_STATES",
    )
    add("--is-batch-size", action="append", metavar="N[,N]", help="batch sizes (repeatable or comma-separated)")
    add(
        "--is-eval",
        metavar="MODULE:LOADER",
        help="a callable returning (inputs, targets) batches: accuracy in every state, agreement on its inputs",
    )
    add(
        "--is-calibration",
        metavar="MODULE:LOADER",
        help="a callable returning input batches for static int8 ranges (default: the eval inputs)",
    )
    add("--is-device", default=_DEFAULTS["--is-device"], help="device: cpu or cuda (default cpu)")
    add("--is-threads", type=int, default=_DEFAULTS["--is-threads"],
        help="intra-op threads, the same for every state and runtime (default 1)")  # fmt: skip
    add(
        "--is-no-compile",
        action="store_true",
        help="run the compiled states (int8-static, int8-dynamic, compile) eager: a quick look, not their speed",
    )
    add(
        "--is-seeds",
        type=int,
        default=_DEFAULTS["--is-seeds"],
        metavar="N",
        help="states that train (kd, and compounds with it) run once per seed; accuracy is the mean (default 3)",
    )
    add(
        "--is-cuda-events",
        type=int,
        default=_DEFAULTS["--is-cuda-events"],
        metavar="N",
        help="on CUDA, also time N calls with CUDA events in the same process (cuda_event_median_s)",
    )
    add(
        "--is-all-int8",
        action="store_true",
        help="run inductor-compiled states (int8, compile) on transformers too (minutes per graph on a small CPU)",
    )
    add("--is-reference-seconds", type=float, default=float(os.environ.get(REFERENCE_ENV, 0.5)), metavar="S",
        help="seconds per reference workload (GEMM, conv) at the start and end of a timed run, to see machine "
             "drift; 0 turns it off")  # fmt: skip


def _batches(config: pytest.Config) -> list[int]:
    out = []
    given = config.getoption("--is-batch-size")
    if given is not None and not split_values(given):
        raise pytest.UsageError(f"--is-batch-size {given[-1]!r} names no batch size; choices: positive integers")
    for raw in split_values(given):
        if not raw.isdigit() or int(raw) < 1:
            raise pytest.UsageError(f"--is-batch-size {raw!r} is not valid; choices: positive integers such as 1, 8")
        out.append(int(raw))
    return out


def _given(config: pytest.Config) -> bool:
    """Whether any --is-* option that needs checking differs from its default (None, False or
    the value in :data:`_DEFAULTS`)."""
    flags = ("--is-model", "--is-input-shape", "--is-states", "--is-batch-size", "--is-eval", "--is-calibration",
             "--is-all-int8", "--is-no-compile")  # fmt: skip
    return any(config.getoption(n) not in (None, False) for n in flags) or any(
        config.getoption(n) != d for n, d in _DEFAULTS.items()
    )


def _check(config: pytest.Config) -> dict[str, Subject]:
    """Every option, checked; the user's models built and their loaders run once."""
    from .runtime import DEVICES
    from .states import get_state
    from .subject import parse_input_shape, subject_from_spec
    from .suite import DEFAULT_STATES, missing_input

    n = config.getoption("--is-threads")
    if n < 1:
        raise pytest.UsageError(f"--is-threads must be >= 1, got {n}")
    device = config.getoption("--is-device")
    if device not in DEVICES:
        raise pytest.UsageError(f"--is-device {device!r} is not valid; choices: {', '.join(DEVICES)}")
    _batches(config)
    if config.getoption("--is-seeds") < 1:
        raise pytest.UsageError(f"--is-seeds must be >= 1, got {config.getoption('--is-seeds')}")
    if config.getoption("--is-cuda-events") < 0:
        raise pytest.UsageError(f"--is-cuda-events must be >= 0, got {config.getoption('--is-cuda-events')}")
    given = config.getoption("--is-states")
    if given is not None and not split_values(given):
        raise pytest.UsageError(f"--is-states {given[-1]!r} names no state; `inference-scale states` lists them")
    states = [get_state(s) for s in split_values(given)]
    models = split_values(config.getoption("--is-model"))
    shape_text = config.getoption("--is-input-shape")
    shape = parse_input_shape(shape_text) if shape_text is not None else None
    eval_spec, calib_spec = config.getoption("--is-eval"), config.getoption("--is-calibration")
    if (eval_spec, calib_spec, shape) != (None, None, None) and not models:
        raise pytest.UsageError("--is-input-shape, --is-eval and --is-calibration describe a model: give --is-model")
    subjects = {}
    for spec in models:
        subject = subject_from_spec(spec, input_shape=shape, eval_spec=eval_spec, calibration_spec=calib_spec)
        for state in states or [get_state(s) for s in DEFAULT_STATES]:
            problem = missing_input(state, subject)
            if problem:
                raise pytest.UsageError(problem)
        subjects[spec] = subject
    return subjects


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_USED] = False
    seconds = config.getoption("--is-reference-seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise pytest.UsageError(f"--is-reference-seconds must be >= 0, got {seconds}")
    if not _given(config):
        config.stash[_SUBJECTS] = {}
        return
    try:
        config.stash[_SUBJECTS] = _check(config)
    except InferenceScaleError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.stash[_SUBJECTS] and config.args_source != pytest.Config.ArgsSource.ARGS:
        # No test paths given: run the plugin's own suite on the named models, not the repo's tests.
        config.args[:] = [str(SUITE_FILE)]


def _reference_seconds(config: pytest.Config) -> float:
    """0 under --benchmark-disable (a smoke run times nothing), else the option's value."""
    if config.getoption("benchmark_disable", False) or config.getoption("collectonly", False):
        return 0.0
    return float(config.getoption("--is-reference-seconds"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note whether any collected test uses the plugin; if so, measure the reference workload
    now, after collection and before the first timing."""
    used = any(set(_FIXTURES) & set(getattr(item, "fixturenames", ())) for item in items)
    config.stash[_USED] = used
    seconds = _reference_seconds(config)
    if used and seconds > 0:
        from .reference import measure_reference

        config.stash[_REFERENCE_START] = measure_reference(seconds=seconds)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record what a saved run measured on, so compare can tell like from unlike (only in
    sessions that ran the plugin's benchmarks: anyone else's runs are left as they are)."""
    if not config.stash.get(_USED, False):
        return
    import torch
    import torchvision

    from .reference import KEY, measure_reference
    from .runtime import cpu_name

    device = config.getoption("--is-device")
    machine_info["inference_scale"] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu_name": cpu_name(),
        "threads": config.getoption("--is-threads"),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else None,
    }
    start = config.stash.get(_REFERENCE_START, None)
    if start is not None:
        # The machine's own speed at the start and end of the run: compare reads drift from it.
        end = measure_reference(seconds=_reference_seconds(config))
        machine_info["inference_scale"][KEY] = {"start": start, "end": end}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``is_case``: the module's ``IS_GRIDS`` (none in the plugin's own suite), narrowed or
    extended by --is-model, --is-states and --is-batch-size."""
    if "is_case" not in metafunc.fixturenames:
        return
    from .suite import make_cases

    config = metafunc.config
    grids: list[Grid] = list(getattr(metafunc.module, "IS_GRIDS", ()))
    if config.getoption("benchmark_disable", False):
        grids = [g for g in grids if g.smoke]
    try:
        cases = make_cases(
            grids,
            models=split_values(config.getoption("--is-model")) or None,
            states=split_values(config.getoption("--is-states")) or None,
            batches=_batches(config) or None,
        )
    except InferenceScaleError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize("is_case", [pytest.param(c, id=c.id) for c in cases])


@pytest.fixture(scope="session")
def is_options(pytestconfig: pytest.Config) -> Iterator[Options]:
    """The run's settings; intra-op threads are pinned for the whole session and restored."""
    from .runtime import threads
    from .suite import Options

    n = int(pytestconfig.getoption("--is-threads"))
    with threads(n):
        yield Options(
            device=str(pytestconfig.getoption("--is-device")),
            threads=n,
            smoke=bool(pytestconfig.getoption("benchmark_disable", False)),
            compile=not pytestconfig.getoption("--is-no-compile"),
            all_int8=bool(pytestconfig.getoption("--is-all-int8")),
            cuda_events=int(pytestconfig.getoption("--is-cuda-events")),
            seeds=int(pytestconfig.getoption("--is-seeds")),
        )


@pytest.fixture(scope="module")
def is_session(request: pytest.FixtureRequest) -> Session:
    """Models built once per module: the module's ``IS_SUBJECTS`` (name -> a function returning
    a :class:`Subject`), then the --is-model ones, then registry names (random weights)."""
    from .subject import subject_from_spec
    from .suite import Session

    own = getattr(request.module, "IS_SUBJECTS", {})
    user = request.config.stash.get(_SUBJECTS, {})

    def resolve(name: str) -> Subject:
        if name in own:
            return own[name]()
        if name in user:
            return user[name]
        return subject_from_spec(name)

    return Session(resolve)
