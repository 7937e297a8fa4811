"""The worker side of ``inference-scale ab``: a pytest plugin that runs a block's tests in
lockstep with the other side's process.

Measured on this project's 2-core machine, the host flips between a fast and a slow state every
few seconds (LeNet at batch 100: 4.8 ms or 7.3 ms, the same code, minutes apart or within one
process). Two processes run one after the other are 25 s apart and land in different states
about as often as not. In lockstep the two sides' processes start together, then run each test
alternately, A then B (or B then A), so the two timings of a pair are about a second apart and
share the machine's state.

Benchmarks that time through :func:`round_barrier` (this project's harness does, via
``benchmark.pedantic(setup=round_barrier)``) go further: their rounds alternate A, B, A, B, a
few milliseconds apart, so both sides see the same mixture of the machine's states.

Protocol, over two pipes whose descriptors ``INFERENCE_SCALE_AB_FDS`` ("go_read,done_write")
names; one JSON object a line. The worker sends ``{"ready": [nodeids]}`` after collection, then
for each test ``{"next": nodeid}``, waits for the line ``go``, runs the test (setup, call and
teardown) and sends ``{"done": nodeid}``; inside it, ``agree_rounds`` sends ``{"rounds": n}`` and
waits for ``go N`` (N the smaller of the two sides' proposals), and each round barrier sends
``{"round": true}`` and waits for ``go``. Nothing runs on one side while the other is timed.

This file imports nothing from the package: ``ab`` copies it beside the sides' code, so a BASE
commit that predates it can still run in lockstep.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Generator
from typing import IO, Any

import pytest

ENV = "INFERENCE_SCALE_AB_FDS"
BLOCK_TIME_ENV = "INFERENCE_SCALE_AB_BLOCK_TIME"  # seconds of rounds a side, for round-level harnesses
PLUGIN = "_inference_scale_ab_sync"  # this file, copied beside the sides' code under this name

_pipes: tuple[IO[str], IO[str]] | None = None


def _send(message: dict[str, Any]) -> None:
    if _pipes is not None:
        _pipes[1].write(json.dumps(message) + "\n")
        _pipes[1].flush()


def pytest_configure(config: pytest.Config) -> None:
    global _pipes
    spec = os.environ.get(ENV)
    if spec and _pipes is None:
        go_fd, done_fd = (int(x) for x in spec.split(","))
        _pipes = (os.fdopen(go_fd, "r"), os.fdopen(done_fd, "w"))


def pytest_collection_finish(session: pytest.Session) -> None:
    _send({"ready": [item.nodeid for item in session.items]})


def active() -> bool:
    """Whether this process is one side of an ``ab`` block."""
    return _pipes is not None


def block_time() -> float:
    """Seconds of rounds a side takes per benchmark in one block: ``$INFERENCE_SCALE_AB_BLOCK_TIME``,
    which ``ab`` sets from its checked ``block_time``; any other value ends the side in one line."""
    text = os.environ.get(BLOCK_TIME_ENV, "")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        pytest.exit(f"inference-scale ab: ${BLOCK_TIME_ENV} {text!r} is not valid; give seconds > 0", returncode=4)
    return value


def agree_rounds(rounds: int) -> int:
    """Before a pedantic benchmark: propose ``rounds`` and return the number both sides run
    (the smaller proposal), so every round of one side has its partner on the other."""
    if _pipes is None:
        return rounds
    _send({"rounds": int(rounds)})
    reply = _pipes[0].readline().split()
    if not reply or reply[0] != "go":
        pytest.exit("inference-scale ab: the coordinator closed the pipe", returncode=3)
    return int(reply[1]) if len(reply) > 1 else rounds


def round_barrier() -> None:
    """A ``benchmark.pedantic(setup=...)`` hook: before each round, wait for this side's turn.
    pytest-benchmark calls ``setup`` outside the timed region, so the two sides' rounds
    alternate A, B, A, B a few milliseconds apart without the wait being timed."""
    if _pipes is None:
        return
    _send({"round": True})
    if _pipes[0].readline().strip() != "go":
        pytest.exit("inference-scale ab: the coordinator closed the pipe", returncode=3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    if _pipes is None:
        yield
        return
    _send({"next": item.nodeid})
    if _pipes[0].readline().strip() != "go":  # the coordinator is gone: stop quietly
        pytest.exit("inference-scale ab: the coordinator closed the pipe", returncode=3)
    yield
    _send({"done": item.nodeid})
