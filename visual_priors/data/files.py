"""Whole files or nothing: a reader (another worker, a resumed run) never sees a partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | os.PathLike, data: bytes | None = None, *,
                 write: Callable[[BinaryIO], None] | None = None) -> Path:
    """Writes `data` (or whatever `write(f)` writes) to a temporary file beside `path`, then
    renames it over `path`. Readable by everyone (mkstemp's 0600 would hide a shared cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            if write is not None:
                write(f)
            else:
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
