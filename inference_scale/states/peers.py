"""What the other-runtime states share: their package check, their errors, the artifact they
load, and the call that hands a torch batch to a runtime that takes NumPy arrays.

A peer state is measured the way the torch states are: export, quantization and compilation
happen in ``apply`` (outside the timed call), the runtime gets the context's thread count, and
the graph is specialized to the example's static shape. Its record names the runtime and its
version and gives the bytes of the artifact the runtime loads (``.onnx``, or the OpenVINO IR's
``.xml`` + ``.bin``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from inference_scale.errors import InferenceScaleError
from inference_scale.states.base import Context, Prepared, State, dense_facts
from inference_scale.subjects.inputs import Batch

__all__ = [
    "PEERS_EXTRA",
    "NumpyRunner",
    "PeerError",
    "PeerState",
    "artifact_bytes",
    "numpy_batches",
    "peer_prepared",
    "peer_step",
]

PEERS_EXTRA = "pip install 'inference-scale[peers]'"


class PeerError(InferenceScaleError, ValueError):
    """Another runtime could not take the model: the export failed or the runtime refused the
    graph. The message names the model, the runtime and the step. (A missing package is found
    before any work: :meth:`PeerState.unavailable`.)"""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else text}"[:300]


class peer_step:
    """``with peer_step(model_name, runtime, step):`` turns any failure inside into one
    :class:`PeerError` line that names the model, the runtime and the step."""

    def __init__(self, model: str, runtime: str, step: str) -> None:
        self.model, self.runtime, self.step = model, runtime, step

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, PeerError) or not isinstance(exc, Exception):
            return
        raise PeerError(f"{self.model}: {self.runtime} failed at {self.step}: {_first_line(exc)}") from exc


def artifact_bytes(*paths: Path) -> int:
    """Bytes on disk of the files a runtime loads (a model file plus its external weights)."""
    return sum(p.stat().st_size for p in paths if p.is_file())


@dataclass(frozen=True)
class PeerState(State):
    """Base of the other-runtime states: ``packages`` are the import names whose absence skips
    the state (or, where it was asked for by name, is a usage error), ``distribution`` the
    PyPI name whose version the record keeps."""

    family: ClassVar[str] = "runtime"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    runtime: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # import names it needs
    distribution: ClassVar[str]

    def unavailable(self) -> str | None:
        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if not missing:
            return None
        return (
            f"{self.slug} runs on {self.runtime}, whose package {', '.join(missing)} is not installed ({PEERS_EXTRA})"
        )

    @classmethod
    def version(cls) -> str:
        try:
            return importlib.metadata.version(cls.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


class NumpyRunner:
    """A callable that takes the model's CPU torch inputs and returns its output tensor from a
    runtime that works on NumPy arrays (one array per input, dtypes kept: token ids stay
    int64). Both conversions share memory (no copy) and so cost nothing next to a forward
    pass; they sit inside the timed call because a user's pipeline pays them."""

    def __init__(self, run: Callable[..., Any], *, runtime: str) -> None:
        self._run, self.runtime = run, runtime

    def __call__(self, *x: torch.Tensor) -> torch.Tensor:
        out = self._run(*(t.detach().contiguous().numpy() for t in x))
        return torch.from_numpy(np.asarray(out))

    def __repr__(self) -> str:
        return f"NumpyRunner({self.runtime})"


def numpy_batches(batches: tuple[Batch, ...]) -> Iterator[list[np.ndarray[Any, Any]]]:
    """Calibration batches as NumPy arrays (one per input, each in its own dtype), in order."""
    for b in batches:
        yield [t.detach().contiguous().numpy() for t in b]


def peer_prepared(
    state: PeerState,
    model: nn.Module,
    ctx: Context,
    run: Callable[..., Any],
    *,
    dtype: str,
    artifact: str,
    size: int,
    config: dict[str, Any],
) -> Prepared:
    """The :class:`Prepared` of a peer state: ``run`` (NumPy in, logits out) behind a
    :class:`NumpyRunner`, the source model's params and MACs, the artifact's bytes, and the
    runtime's name, version and settings in the record."""
    facts = dense_facts(model, ctx)
    facts["bytes"] = size
    return Prepared(
        slug=state.slug,
        module=NumpyRunner(run, runtime=state.runtime),
        device="cpu",
        dtype=dtype,
        extras={"artifact": artifact, "artifact_bytes": size, "runtime_config": config},
        runtime=state.runtime,
        runtime_version=state.version(),
        **facts,
    )
