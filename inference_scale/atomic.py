"""Atomic writes: results and caches are never left half-written, and a killed writer's
temporary file does not stay behind for long.

A write goes to ``.NAME.<pid>.<random>.tmp`` beside the target, is fsynced, then renamed over
the target (``os.replace`` is atomic on POSIX), so a reader sees the old file or the new one,
never half of one. A ``kill -9`` between the two leaves that temporary file; the next write to
the same target removes every such file whose writer process is gone (the pid in its name no
longer runs). Files of a live writer are left alone, and so are other targets' files.

:func:`check_output_path` lets a command refuse an output path before it does minutes of work.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .errors import OutputPathError

__all__ = ["check_output_path", "stale_temp_files", "write_atomic", "write_bytes_atomic", "write_json_atomic"]

# Temporary files from before the pid was part of the name carry none; treat them as stale
# once they are this old (no write of ours takes an hour).
_LEGACY_STALE_S = 3600.0


def check_output_path(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """``path`` as a Path if a file can be written there, else :class:`OutputPathError`
    naming the reason: it is a folder, or a parent is a regular file, or the nearest existing
    folder is not writable. Nothing is created."""
    target = Path(path)
    if str(path) == "" or target.name in ("", ".", ".."):
        raise OutputPathError(f"{what} path {str(path)!r} names no file")
    if target.is_dir():
        raise OutputPathError(f"{what} path {target} is a folder; give a file name inside it")
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise OutputPathError(f"{what} path {target}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{what} path {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} path {target}: folder {parent} is not writable")
    return target


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files left beside ``path`` by writers that no longer run."""
    target = Path(path)
    stale = []
    for name in glob.glob(glob.escape(str(target.parent / f".{target.name}.")) + "*.tmp"):
        tmp = Path(name)
        middle = tmp.name[len(target.name) + 2 : -len(".tmp")]
        pid_text, sep, _ = middle.partition(".")
        try:
            if sep and pid_text.isdigit():
                if not _pid_alive(int(pid_text)):
                    stale.append(tmp)
            elif time.time() - tmp.stat().st_mtime > _LEGACY_STALE_S:
                stale.append(tmp)
        except OSError:  # removed meanwhile
            continue
    return stale


def write_atomic(obj: Any, path: str | os.PathLike[str]) -> int:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over
    ``path``: a crash leaves the old file or the new one, never half of one. Returns bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(buffer.getvalue(), path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> int:
    """Write ``data`` to ``path`` through a temporary file and a rename (see the module
    docstring); stale temporary files of the same target are removed first."""
    target = check_output_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for tmp in stale_temp_files(target):
        with contextlib.suppress(OSError):
            tmp.unlink()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return len(data)


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> int:
    """JSON (indented, sorted keys) written atomically."""
    return write_bytes_atomic((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), path)
