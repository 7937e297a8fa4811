"""Atomic writes: results and caches are never left half-written, and a killed writer's
temporary file does not stay behind for long.

A write goes to ``.NAME.inference-scale-<pid>-<16 hex>.tmp`` beside the target, is fsynced,
then renamed over the target (``os.replace`` is atomic on POSIX), so a reader sees the old file
or the new one, never half of one. The file gets the permissions the target already has, or
``0o666 & ~umask`` when it is new, as a plain ``open()`` would give it. A ``kill -9`` between
the two leaves that temporary file; the next write to the same target removes every file of
exactly that form whose writer is gone (the pid in its name no longer runs). Files of a live
writer are left alone, and so are other targets' files and every name we did not write.

:func:`check_output_path` lets a command refuse an output path before it does minutes of work.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from inference_scale.errors import OutputPathError

__all__ = ["check_output_path", "stale_temp_files", "write_atomic", "write_bytes_atomic", "write_json_atomic"]

# Every temporary file of ours is ``.NAME.inference-scale-<pid>-<16 hex>.tmp``: the sweep
# removes that exact form only, and only once its writer is gone.
_TAG = "inference-scale"


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


def _temp_name(target: Path) -> str:
    return f".{target.name}.{_TAG}-{os.getpid()}-{secrets.token_hex(8)}.tmp"


def stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files left beside ``path`` by writers of ours that no longer run: only
    names of the exact form ``.NAME.inference-scale-<pid>-<16 hex>.tmp``. Anything else, a
    user's ``.NAME.backup.tmp`` included, is never touched."""
    target = Path(path)
    ours = re.compile(rf"\.{re.escape(target.name)}\.{_TAG}-(\d+)-[0-9a-f]{{16}}\.tmp")
    stale = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    for name in names:
        match = ours.fullmatch(name)
        if match is not None and not _pid_alive(int(match.group(1))):
            stale.append(target.parent / name)
    return sorted(stale)


def _mode_for(target: Path) -> int | None:
    """The permission bits the written file should get: the existing target's, or None for a
    new file (then ``os.open``'s 0o666 is reduced by the umask, as ``open()`` would do)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return None


def write_atomic(obj: Any, path: str | os.PathLike[str]) -> int:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over
    ``path``: a crash leaves the old file or the new one, never half of one. Returns bytes."""
    buffer = io.BytesIO()
    import torch  # here, so that the JSON writers (reports, plots) load no torch

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
    mode = _mode_for(target)
    while True:
        tmp_name = str(target.parent / _temp_name(target))
        try:
            fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:  # 64 random bits collided: draw again
            continue
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # an existing 0644 file stays 0644 (mkstemp would make it 0600)
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
