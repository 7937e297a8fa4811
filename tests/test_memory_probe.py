"""Memory per state from a fresh process, held against the kernel's own accounting of the
same child (``/usr/bin/time -v``'s maximum resident set size), and a child that dies is
reported as failed with its reason, leaving no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from inference_scale.measure.memory import CHILD_MODULE, ProbeOptionError, child_command, probe_memory

pytestmark = pytest.mark.slow  # each child imports torch and the suite: seconds apiece
TIME = "/usr/bin/time"


def _children() -> list[int]:
    """Live probe children of this process (by their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and CHILD_MODULE in cmdline:
            found.append(int(entry.name))
    return found


def _under_time(**kwargs: Any) -> tuple[dict[str, Any], int]:
    """The child's record and /usr/bin/time -v's maximum resident set size in bytes."""
    import json

    proc = subprocess.run(
        [TIME, "-v", *child_command(**kwargs)], capture_output=True, text=True, timeout=300, check=True
    )
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert match, proc.stderr[-2000:]
    return record, int(match.group(1)) * 1024


@pytest.mark.skipif(not shutil.which(TIME), reason="/usr/bin/time is not installed")
@pytest.mark.parametrize("state", ["fp32", "int8-static"])
def test_peak_rss_agrees_with_time_v(state: str) -> None:
    record, maxrss = _under_time(model="lenet", state=state, batch=8, threads=1)
    assert record["peak_source"] == "VmHWM"
    assert abs(record["vmhwm_bytes"] - maxrss) <= 0.10 * maxrss, (record, maxrss)
    assert record["peak_rss_bytes"] == record["vmhwm_bytes"] - record["baseline_rss_bytes"] > 0
    assert record["load_seconds"] > 0 and record["first_call_seconds"] > 0
    if state != "fp32":
        return
    # LeNet's parameters, as counted from the model itself
    from inference_scale.subjects.models import get_model

    lenet = get_model("lenet")
    tensors = [*lenet.parameters(), *lenet.buffers()]
    assert record["weights_bytes_in_memory"] == sum(t.numel() * t.element_size() for t in tensors)


def test_state_peak_is_the_states_own_share() -> None:
    """With the high-water mark restarted once the model is loaded, the state's peak stands
    apart from the loading's (LeNet's: its digits dataset). No outside oracle here: the
    kernel's ``ru_maxrss`` keeps the high-water mark of every thread that exited before the
    restart, so ``/usr/bin/time`` reads between the two figures."""
    record = probe_memory(model="lenet", state="int8-static", batch=8, threads=1, timeout_s=300, state_peak=True)
    assert record["state_peak_rss_bytes"] == record["vmhwm_after_reset_bytes"] - record["baseline_rss_bytes"]
    assert record["vmhwm_bytes"] >= record["vmhwm_after_reset_bytes"]
    assert record["state_peak_rss_bytes"] >= record["rss_after_call_bytes"] > 0
    assert record["weights_bytes_in_memory"] > 0


def test_a_timed_out_child_is_failed_and_gone() -> None:
    result = probe_memory(model="lenet", state="fp32", batch=1, threads=1, timeout_s=2, hold_s=120)
    assert result["failed"].startswith("timed out after 2 s")
    assert _children() == []


def test_a_killed_child_is_failed_with_its_signal() -> None:
    out: dict[str, Any] = {}
    probe = threading.Thread(
        target=lambda: out.update(
            probe_memory(model="lenet", state="fp32", batch=1, threads=1, timeout_s=120, hold_s=120)
        )
    )
    probe.start()
    deadline = time.monotonic() + 30
    while not _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = _children()
    os.kill(pid, signal.SIGKILL)  # what the OOM killer sends
    probe.join(60)
    assert not probe.is_alive()
    assert out == {"failed": "killed by SIGKILL (out of memory, or killed from outside)"}
    assert _children() == []


def test_a_child_that_cannot_load_the_model_reports_why() -> None:
    result = probe_memory(model="lenett", state="fp32", batch=1, threads=1, timeout_s=120)
    assert "did you mean: lenet" in result["failed"]


@pytest.mark.parametrize(
    "kwargs",
    [{"batch": 0}, {"threads": True}, {"timeout_s": 0}, {"timeout_s": float("nan")}, {"model": ""}, {"hold_s": -1}],
)
def test_bad_options_are_refused_before_any_process(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"model": "lenet", "state": "fp32", "batch": 1, "threads": 1, "timeout_s": 10, **kwargs}
    with pytest.raises(ProbeOptionError) as err:
        probe_memory(**args)
    assert isinstance(err.value, ValueError)
    assert _children() == []
