"""Per-step metrics written as JSON lines (one object per logged step)."""

from __future__ import annotations

import json
import math
from pathlib import Path


class MetricsWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a")

    def write(self, record: dict) -> None:
        clean = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v)
                 for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def is_finite(x: float) -> bool:
    return math.isfinite(float(x))
