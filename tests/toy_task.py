"""A toy objective registered by ``test_registry.py``: causal LM with its own loss.

A helper module, not tests. The loss is the causal-LM loss plus a constant, which leaves
the gradients unchanged and makes every logged training loss show that this loss was used.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.tasks.clm import CausalLMTask

LOSS_OFFSET = 100.0
CALLS = {"loss": 0}


class ToyTask(CausalLMTask):
    def __init__(self) -> None:
        super().__init__()
        self.name = "toy"
        self.description = "the toy objective trains a decoder such as GPT-2"
        self.forgetting_objective = None

    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        CALLS["loss"] += 1
        return model(**batch).loss + LOSS_OFFSET
