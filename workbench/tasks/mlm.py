"""Masked LM (BERT style): 15% of tokens, 80% [MASK] / 10% random / 10% kept, by
transformers' ``DataCollatorForLanguageModeling``, on packed blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from workbench.errors import BaseModelError
from workbench.models import bert_config, is_decoder
from workbench.sparse_mlm import SparseMaskedLM
from workbench.tasks.base import BlockData, Task, TaskDefaults, lean_twin
from workbench.tasks.packing import packed_blocks

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec


def masking_collator(tokenizer: Any) -> DataCollatorForLanguageModeling:
    if tokenizer.mask_token is None:
        raise BaseModelError(
            "the tokenizer has no [MASK] token, so it cannot do masked LM",
            fix="use a BERT-family base, or --objective clm",
        )
    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True, mlm_probability=0.15)


def masked_positions_module(model: Any, spec: ResolvedSpec) -> Any:
    """``model``, or its twin that scores the masked positions only (``sparse_mlm.py``: same
    weights, same loss, a fraction of the head's work); ``lean_model = "off"`` keeps ``model``."""
    if spec.runtime.lean_model == "off":
        return model

    return lean_twin(model, spec, SparseMaskedLM)


def special_ids(tokenizer: Any) -> torch.Tensor:
    return torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)


class MaskedLMTask(Task):
    def __init__(self) -> None:
        super().__init__(
            name="mlm",
            auto_class_name="AutoModelForMaskedLM",
            windowed=True,
            masked=True,
            lm_loss=True,
            description="masked-token prediction needs an encoder such as BERT",
            # Tiny BERTs leave the predict-frequent-tokens plateau much sooner on short blocks:
            # on `general`, seq 32 x batch 64 learned "mat" by step 600-1100 (it wobbles, then
            # settles as the lr decays); seq 64 and 128 had not by 900.
            scratch_defaults=TaskDefaults(lr=2e-3, batch_size=64, seq_len=32, max_steps=1500),
            base_defaults=TaskDefaults(lr=1e-4, batch_size=16, seq_len=128, epochs=1),
            forgetting_objective="mlm",
        )

    def mapping_name(self) -> str:
        return "MODEL_FOR_MASKED_LM_MAPPING_NAMES"

    def base_fix(self) -> str:
        return "use an encoder base (BERT family) for mlm, or --objective clm for GPT-2-style bases"

    def check_base(self, config: Any, where: str) -> None:
        if is_decoder(config):
            raise BaseModelError(
                f"a {config.model_type} model is a decoder and has no masked-LM head",
                where=where,
                fix=self.base_fix(),
            )
        super().check_base(config, where)

    def build_model(self, spec: ResolvedSpec, tokenizer: Any) -> Any:
        return BertForMaskedLM(bert_config(spec.model.shape, len(tokenizer), tokenizer))

    def training_module(self, model: Any, spec: ResolvedSpec) -> Any:
        return masked_positions_module(model, spec)

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: Any = None) -> BlockData:
        train, evaluation = packed_blocks(corpus, tokenizer, spec.data.seq_len, append_eos=False)
        collator = masking_collator(tokenizer)
        specials = special_ids(tokenizer)

        def transform(blocks: torch.Tensor) -> dict[str, torch.Tensor]:
            inputs, labels = collator.torch_mask_tokens(blocks.clone(), special_tokens_mask=torch.isin(blocks, specials))
            return {"input_ids": inputs, "labels": labels}

        return BlockData(train=train, eval=evaluation, transform=transform, sampling=spec.data.sampling)
