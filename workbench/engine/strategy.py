"""How one process, DDP and FSDP differ, in one object the loop asks.

The loop never branches on the number of processes: it asks its strategy which rows of a
global batch are this rank's, whether to skip the gradient all-reduce of a micro-batch,
where the ranks agree to stop, how to add up eval sums, and (FSDP only) how to refresh the
unsharded replica that checkpoints, probes and reports read.

- ``SingleProcess``: everything is local.
- ``DataParallel``: Accelerate's DDP replica per rank; collectives at log boundaries only.
- ``Sharded``: FSDP2 shards (``engine/sharding.py``) plus rank 0's CPU replica.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Iterator

import torch

from workbench.engine import distributed, performance, sharding
from workbench.errors import TrainingError


class SingleProcess:
    sharded = False

    def __init__(self, accelerator: Any):
        self.accelerator = accelerator
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.is_main = accelerator.is_main_process
        self._replica_step: int | None = None

    # ------------------------------------------------------------------ set-up
    def training_copy(self, model: Any) -> Any:
        """The model the loop will train: the same object (sharded runs train a copy)."""
        return model

    def prepare(self, module: Any, optimizer: Any) -> tuple[Any, Any]:
        module, optimizer = self.accelerator.prepare(module, optimizer)
        performance.drop_output_upcast(self.accelerator.unwrap_model(module))  # the loop autocasts itself
        return module, optimizer

    def load_optimizer(self, module: Any, optimizer: Any, path: Any) -> None:
        from workbench.runs import checkpoint  # loads safetensors: only when used

        checkpoint.optimizer_from_safetensors(optimizer, path)

    # ------------------------------------------------------------------ steps
    def my_rows(self, indices: list[int]) -> list[int]:
        """This rank's rows of the step's global batch."""
        per_rank = len(indices) // self.world
        return indices[self.rank * per_rank : (self.rank + 1) * per_rank]

    def first_row(self, indices: list[int]) -> int:
        """Where this rank's rows start in the global batch (seeds masks by position)."""
        return self.rank * (len(indices) // self.world)

    def accumulating(self, module: Any, last: bool) -> Any:
        """Context for a micro-batch's backward: skip the all-reduce until the last one."""
        return contextlib.nullcontext()

    def agree(self, at_boundary: bool, *flags: bool) -> tuple[bool, ...]:
        """Stop/budget flags every rank acts on at the same step."""
        return flags

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def agreed_seconds(self, seconds: float) -> float:
        """One clock reading for all ranks (the slowest's), so a budget's schedule is the same on each."""
        return seconds

    def grad_norm(self, norm: torch.Tensor) -> torch.Tensor:
        return norm

    # ------------------------------------------------------------------ evals
    def eval_batches(self, n_batches: int) -> Iterator[tuple[int, bool]]:
        """(batch index, counts) pairs this rank runs; sharded ranks may run padding batches."""
        for b in range(self.rank, n_batches, self.world):
            yield b, True

    def add_up(self, loss_sum: torch.Tensor, batches: int, totals: dict[str, float]) -> tuple[torch.Tensor, int, dict[str, float]]:
        return loss_sum, batches, totals

    def sync_replica(self, module: Any, replica: Any, step: int) -> None:
        """Make ``replica`` (saved, probed) hold the trained weights; shared parameters here."""

    def saved_optimizer(self, module: Any, optimizer: Any) -> Any:
        return optimizer

    def can_checkpoint_alone(self) -> bool:
        """Whether this rank can save without the others (not inside a sharded gather)."""
        return self.is_main


class DataParallel(SingleProcess):
    """A full replica per rank (DDP through Accelerate)."""

    def accumulating(self, module: Any, last: bool) -> Any:
        return contextlib.nullcontext() if last else self.accelerator.no_sync(module)

    def agree(self, at_boundary: bool, *flags: bool) -> tuple[bool, ...]:
        # Every rank must leave the loop at the same step, or the next collective pairs an
        # eval on one rank with a gradient all-reduce on another. They agree at log
        # boundaries, where the loss is read anyway (no extra host sync per step).
        if not at_boundary:
            return tuple(False for _ in flags)
        return distributed.any_rank(self.accelerator, *flags)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(value, "mean")

    def agreed_seconds(self, seconds: float) -> float:
        reading = torch.tensor(seconds, dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(reading, "max"))

    def add_up(self, loss_sum: torch.Tensor, batches: int, totals: dict[str, float]) -> tuple[torch.Tensor, int, dict[str, float]]:
        counts = self.accelerator.reduce(torch.stack([loss_sum, torch.tensor(float(batches), device=loss_sum.device)]), "sum")
        return counts[0], int(counts[1]), distributed.sum_across_ranks(self.accelerator, totals)


class Sharded(DataParallel):
    """FSDP2: each rank holds a shard; rank 0 keeps an unsharded CPU replica to save and probe."""

    sharded = True

    def training_copy(self, model: Any) -> Any:
        return copy.deepcopy(model)

    def prepare(self, module: Any, optimizer: Any) -> tuple[Any, Any]:
        return module, optimizer  # already distributed by ``shard``; Accelerate would wrap it in DDP

    def shard(self, module: Any) -> None:
        sharding.shard(module, self.accelerator.device, self.world)

    def load_optimizer(self, module: Any, optimizer: Any, path: Any) -> None:
        from workbench.runs import checkpoint  # loads safetensors: only when used

        checkpoint.optimizer_from_safetensors(optimizer, path, load=lambda full: sharding.load_full_optimizer(module, optimizer, full))

    def grad_norm(self, norm: torch.Tensor) -> torch.Tensor:
        # Accelerate before 1.16 returned FSDP's norm as a DTensor; 1.16 gathers it itself
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def eval_batches(self, n_batches: int) -> Iterator[tuple[int, bool]]:
        # Every rank must run the same number of forwards (each gathers weights from all
        # ranks): ranks short of a batch repeat batch 0 and discard the result.
        rounds = math.ceil(n_batches / self.world) * self.world
        for b in range(self.rank, rounds, self.world):
            yield (b, True) if b < n_batches else (0, False)

    def sync_replica(self, module: Any, replica: Any, step: int) -> None:
        """Gather the full weights (every rank joins) into rank 0's replica, once per step:
        an eval and a save at the same step share one gather."""
        if self._replica_step == step:
            return
        full = sharding.gather_full_model(module)
        if self.is_main:
            sharding.load_replica(replica, full)
        self._replica_step = step

    def saved_optimizer(self, module: Any, optimizer: Any) -> Any:
        return sharding.GatheredOptimizer(sharding.gather_full_optimizer(module, optimizer))

    def can_checkpoint_alone(self) -> bool:
        return False  # a sharded save would need the failed rank too


def strategy_for(accelerator: Any, parallel: str, precision: str) -> SingleProcess:
    """The strategy for this process count and ``--parallel`` choice."""
    if accelerator.num_processes == 1:
        return SingleProcess(accelerator)
    if parallel != "fsdp":
        return DataParallel(accelerator)
    if precision == "fp16":
        raise TrainingError("FSDP runs train in bf16 or fp32, not fp16", fix="pass --precision bf16 (or fp32), or --parallel ddp")
    return Sharded(accelerator)
