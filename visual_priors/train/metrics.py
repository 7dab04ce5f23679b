"""Per-step metrics, written as JSON lines (one object per logged step) and to TensorBoard.

The TensorBoard event file sits beside the JSONL file (``<dir>/tensorboard/``), one scalar per
numeric field, tagged ``train/<field>`` and indexed by the record's ``step``. In a multi-process
run only process 0 writes: every process sees the same global metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
from tensorboardX import SummaryWriter


class MetricsWriter:
    def __init__(self, path: str | Path, *, tensorboard: bool = True):
        self.path = Path(path)
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a")
        self._tb = SummaryWriter(str(self.path.parent / "tensorboard")) if tensorboard else None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v)
                 for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(clean["step"])
            for key, value in clean.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def is_finite(x: float) -> bool:
    return math.isfinite(float(x))
