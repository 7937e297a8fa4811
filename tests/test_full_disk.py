"""A full file system during ``report --plot`` and ``save_sparse``: every file written before is
intact, and no temporary file is left. Where the test may mount (root, a kernel that allows it)
the file system is a real 1 MiB tmpfs filled to the last byte; elsewhere the write call itself
raises ``OSError(ENOSPC)``, as the kernel would."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from inference_scale import atomic
from inference_scale.cli.main import main
from inference_scale.subjects.models import get_model
from inference_scale.techniques.prune import make_permanent, prune_global
from inference_scale.techniques.sparse_io import load_sparse, save_sparse

RECORD = dict(family="spin", kind="mlp", batch_size=1, device="cpu", threads=1, dtype="float32", params=10,
              nonzero_params=10, macs=1000, bytes=400, input_shape=[4])  # fmt: skip


def _run_file(path: Path, fast_ms: float) -> str:
    benches = [{"name": f"test_{s}", "fullname": f"t.py::test_{s}", "stats": {"median": ms / 1e3},
                "extra_info": {**RECORD, "model": "m", "state": s, "accuracy": 0.9}}
               for s, ms in (("fp32", 10.0), ("int8-static", fast_ms))]  # fmt: skip
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    return str(path)


def _fill(folder: Path) -> None:
    """Write until the file system says ENOSPC (unbuffered: nothing is left to flush)."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):  # big steps, then down to the last byte
            with contextlib.suppress(OSError):
                while fh.write(b"\0" * size):
                    pass


@contextlib.contextmanager
def _full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    """(folder, fill): a folder on a small tmpfs and a function that fills it, or, where
    mounting is not allowed, a plain folder and a fill that makes every later write raise ENOSPC."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
        .returncode == 0
    )  # fmt: skip
    try:
        if mounted:
            yield mnt, lambda: _fill(mnt)
        else:

            def inject() -> None:
                real = os.fdopen

                def full(fd: int, *args: Any, **kwargs: Any) -> Any:
                    fh = real(fd, *args, **kwargs)

                    def write(_data: bytes) -> int:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                    fh.write = write
                    return fh

                monkeypatch.setattr(atomic, "os", _OsWithFullDisk(full))

            yield mnt, inject
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False)


class _OsWithFullDisk:
    """``os`` as atomic.py sees it, but with ``fdopen`` giving files whose writes raise ENOSPC."""

    def __init__(self, fdopen: Any) -> None:
        self.fdopen = fdopen

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "filler"}


def test_report_plot_on_a_full_disk_keeps_earlier_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _full_disk(tmp_path, monkeypatch) as (disk, fill):
        plots = disk / "plots"
        assert main(["report", _run_file(tmp_path / "one.json", 5.0), "--plot", str(plots)]) == 0
        before = _snapshot(plots)
        assert before and all(name.endswith(".png") for name in before)
        fill()
        code = main(["report", _run_file(tmp_path / "two.json", 2.0), "--plot", str(plots)])
        err = capsys.readouterr().err
        assert code == 1 and "No space left on device" in err and "Traceback" not in err, err
        assert _snapshot(plots) == before  # every earlier plot byte for byte, and nothing else
        assert not [p for p in plots.iterdir() if p.name.endswith(".tmp")]


def test_save_sparse_on_a_full_disk_keeps_the_earlier_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    old, new = prune_global(get_model("lenet"), 0.5), prune_global(get_model("lenet"), 0.9)
    with _full_disk(tmp_path, monkeypatch) as (disk, fill):
        target = disk / "model.sparse"
        save_sparse(old, target)
        before = _snapshot(disk)
        fill()
        with pytest.raises(OSError) as info:
            save_sparse(new, target)
        assert info.value.errno == errno.ENOSPC
        assert _snapshot(disk) == before
        restored = load_sparse(target, model=get_model("lenet"))
        want = make_permanent(old).state_dict()
        assert all(torch.equal(want[k], v) for k, v in restored.state_dict().items())
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
