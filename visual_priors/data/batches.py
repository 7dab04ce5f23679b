"""Epoch-shuffled minibatches over in-memory arrays, resumable from a checkpointed position."""

from __future__ import annotations

import numpy as np

from visual_priors.parallel.distributed import process_rows


class ArrayBatches:
    """Batches of rows of equally long arrays; each epoch is a fresh seeded permutation.

    `batch_size` is the global batch. With several processes, each yields only its own rows of
    every global batch (`process_rows`), and reads no other rows.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1):
        lengths = {k: len(v) for k, v in arrays.items()}
        n = next(iter(lengths.values()))
        if any(v != n for v in lengths.values()):
            raise ValueError(f"arrays differ in length: {lengths}")
        if n < batch_size:
            raise ValueError(f"{n} rows make no full batch of {batch_size}")
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.local_rows = process_rows(batch_size, process_index, process_count)
        self.per_epoch = n // batch_size
        self.position = 0

    def _rows(self, position: int) -> np.ndarray:
        epoch, i = divmod(position, self.per_epoch)
        perm = np.random.default_rng((self.seed, epoch)).permutation(len(next(iter(self.arrays.values()))))
        return perm[i * self.batch_size:(i + 1) * self.batch_size][self.local_rows]

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        rows = self._rows(self.position)
        self.position += 1
        return {k: v[rows] for k, v in self.arrays.items()}

    def get_state(self) -> dict:
        return {"position": self.position}

    def set_state(self, state: dict) -> None:
        self.position = int(state["position"])
