"""Data order, masks and dropout as functions of (seed, step): what makes resume exact."""

from __future__ import annotations

import torch


def step_seed(seed: int, step: int, row: int = 0) -> int:
    """Masking, dropout and sampling at ``step`` depend on this alone: exact resume.

    ``row`` is where a micro-batch starts in the step's global batch. Seeding each
    micro-batch by its position makes MLM masks the same however the global batch is split
    (one process with accumulation, or N GPUs), so a resume with another number of
    processes, or after an out-of-memory halving, continues the same masks.
    """
    base = (seed * 1_000_003 + step) % (2**63 - 1)
    return base if row == 0 else (base * 1_000_033 + row) % (2**63 - 1)


class BatchOrder:
    """Deterministic data order: a seeded permutation per epoch, sliced per step."""

    def __init__(self, num_examples: int, global_batch: int, seed: int):
        self.n = num_examples
        self.global_batch = min(global_batch, num_examples)
        self.seed = seed
        self.steps_per_epoch = max(1, num_examples // self.global_batch)
        self._epoch = -1
        self._perm: torch.Tensor | None = None

    def indices(self, step: int) -> list[int]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = torch.randperm(self.n, generator=generator)
            self._epoch = epoch
        assert self._perm is not None
        start = offset * self.global_batch
        return self._perm[start : start + self.global_batch].tolist()
