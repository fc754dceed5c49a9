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


def seed_generators(seed: int, device: torch.device) -> None:
    """Seed the generators this step draws from (masks on the CPU; dropout on the model's
    device), and no others. ``torch.manual_seed`` also seeds every CUDA/MPS/XPU backend
    it can find, about 0.1-2 ms a call: per micro-batch that was a measurable share of a
    tiny model's step."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)  # this device's generator only
    elif device.type != "cpu":
        torch.manual_seed(seed)  # other accelerators: the general call


WINDOW_SALT = 0x5DEECE66D


class BatchOrder:
    """Deterministic data order: a seeded permutation per epoch, sliced per step."""

    def __init__(self, num_examples: int, global_batch: int, seed: int, windows: int | None = None):
        """``windows``: draw that many possible window offsets at random instead (``sampling
        = "random"``); an epoch is still as many rows as there are examples."""
        self.n = num_examples
        self.global_batch = global_batch if windows is not None else min(global_batch, num_examples)
        self.seed = seed
        self.windows = windows
        self.steps_per_epoch = max(1, num_examples // self.global_batch)
        self._epoch = -1
        self._perm: torch.Tensor | None = None

    def indices(self, step: int) -> list[int]:
        if self.windows is not None:  # a function of (seed, step): resume and splitting stay exact
            generator = torch.Generator().manual_seed(step_seed(self.seed, step) ^ WINDOW_SALT)  # not the masks' stream
            return torch.randint(self.windows, (self.global_batch,), generator=generator).tolist()
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = torch.randperm(self.n, generator=generator)
            self._epoch = epoch
        assert self._perm is not None
        start = offset * self.global_batch
        return self._perm[start : start + self.global_batch].tolist()
