"""Whole files or nothing: a reader (another worker, a resumed run) never sees a partial file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
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


_EDGE = 1 << 20  # bytes read from each end of a file for its fingerprint


def fingerprint(path: str | os.PathLike, files: Sequence[Path]) -> str:
    """A quick content fingerprint of `files` under `path`: each file's relative name, size and
    first and last MiB. Changes whenever a file is replaced, grown or rewritten at either end,
    without reading gigabytes of weights or images."""
    path = Path(path)
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(_EDGE))
            if size > 2 * _EDGE:
                fh.seek(-_EDGE, 2)
                h.update(fh.read())
    return h.hexdigest()[:16]
