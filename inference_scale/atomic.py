"""Atomic writes: results and caches are never left half-written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["write_atomic", "write_bytes_atomic", "write_json_atomic"]


def write_atomic(obj: Any, path: str | os.PathLike[str]) -> int:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over
    ``path``: a crash leaves the old file or the new one, never half of one. Returns bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(buffer.getvalue(), path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> int:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(data)


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> int:
    """JSON (indented, sorted keys) written atomically."""
    return write_bytes_atomic((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), path)
