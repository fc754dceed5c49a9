"""Causal LM (GPT-2 style): next-token prediction on packed blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import GPT2LMHeadModel

from workbench.errors import BaseModelError
from workbench.lean_gpt2 import LeanGPT2
from workbench.models import gpt2_config, is_decoder
from workbench.tasks.base import BlockData, Task, TaskDefaults, lean_twin
from workbench.tasks.packing import packed_blocks

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec


class CausalLMTask(Task):
    def __init__(self) -> None:
        super().__init__(
            name="clm",
            auto_class_name="AutoModelForCausalLM",
            windowed=True,
            masked=False,
            lm_loss=True,
            description="next-token prediction needs a decoder such as GPT-2",
            # lr measured (benchmarks/defaults.py, docs/results.md): 4e-3 beat 2e-3 by 20% in eval loss over
            # 3 seeds at 600 steps on `general`; 8e-3 was worse again
            scratch_defaults=TaskDefaults(lr=4e-3, batch_size=16, seq_len=128, max_steps=600),
            base_defaults=TaskDefaults(lr=1e-4, batch_size=8, seq_len=128, epochs=1),
            forgetting_objective="clm",
        )

    def mapping_name(self) -> str:
        return "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        if not is_decoder(config):
            raise BaseModelError(
                f"a {config.model_type} model is an encoder and cannot do clm ({self.description})",
                where=where,
                fix="use --objective mlm for encoders, or a GPT-2-style base for clm",
            )
        super().check_base(config, where)

    def base_fix(self) -> str:
        return "use a decoder base (GPT-2 family) or --objective mlm"

    def build_model(self, spec: ResolvedSpec, tokenizer: Any) -> Any:
        return GPT2LMHeadModel(gpt2_config(spec.model.shape, len(tokenizer), tokenizer))

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: Any = None) -> BlockData:
        train, evaluation = packed_blocks(corpus, tokenizer, spec.data.seq_len, append_eos=True)

        def transform(blocks: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"input_ids": blocks, "labels": blocks}

        return BlockData(train=train, eval=evaluation, transform=transform, sampling=spec.data.sampling)

    def training_module(self, model: Any, spec: ResolvedSpec) -> Any:
        """``model`` itself, or its lean twin sharing its parameters.

        ``auto`` uses the lean GPT-2 from scratch (packed blocks, no padding: all it supports);
        bases keep transformers' code, whose configs vary more. Everything that is not the
        training step (checkpoints, probes, reports, the final model) keeps using ``model``.
        """
        if spec.runtime.lean_model == "off" or (spec.runtime.lean_model == "auto" and spec.base):
            return model

        return lean_twin(model, spec, LeanGPT2)
