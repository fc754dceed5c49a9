"""Domain-adaptive generation: continue causal-LM training of a decoder on a text corpus.

After training, a few prompts are sampled and written to ``samples.jsonl`` with the
sampling settings, so samples can be compared across runs. Forgetting (perplexity on
the base's own pre-training eval split) comes from ``forgetting.py``'s eval hook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from workbench.errors import BaseModelError
from workbench.models import fit_to_positions
from workbench.objectives import perplexity
from workbench.tasks.base import BlockData, Task, TaskDefaults
from workbench.tasks.clm import CausalLMTask

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

SAMPLING = {"temperature": 0.8, "top_k": 50, "top_p": 0.95, "max_new_tokens": 40}
SAMPLE_SEED = 1234
PROMPT_WORDS = 4


@dataclass
class PromptedBlocks(BlockData):
    """Packed eval blocks plus the prompts ``final_report`` samples from (the domain's voice)."""

    prompts: list[str] = field(default_factory=list)


class GenerationTask(CausalLMTask):
    def __init__(self) -> None:
        super().__init__()
        self.name = "generation"
        self.pretraining = False
        self.windowed = False  # the domain text is read in aligned blocks, as the report's loss is
        self.description = "generation fine-tunes a decoder such as GPT-2"
        self.scratch_defaults = self.base_defaults = TaskDefaults(lr=5e-5, batch_size=8, seq_len=128, epochs=3, warmup_ratio=0.1)

    def build_model(self, spec: ResolvedSpec, tokenizer: Any) -> Any:
        raise BaseModelError("generation needs a pre-trained decoder base", fix="pass --base")

    def base_fix(self) -> str:
        return "use a decoder base (GPT-2 family, e.g. a run made with `workbench run --objective clm`)"

    def training_module(self, model: Any, spec: ResolvedSpec) -> Any:
        """transformers' own model: the lean GPT-2 is for from-scratch clm only."""
        return Task.training_module(self, model, spec)

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: Any = None) -> PromptedBlocks:
        data = super().prepare(corpus, tokenizer, spec, checked)
        return PromptedBlocks(train=data.train, eval=data.eval, transform=data.transform,
                              prompts=sample_prompts(corpus.texts("eval")))

    def final_report(self, model: Any, tokenizer: Any, data: Any, spec: ResolvedSpec, run_dir: Any) -> dict[str, Any]:
        loss = full_eval_loss(model, data, spec.train.batch_size)
        write_samples(model, tokenizer, data.prompts, run_dir.path / "samples.jsonl")
        return {"domain_eval_loss": loss, "domain_perplexity": perplexity(loss), "samples_file": "samples.jsonl"}


def sample_prompts(texts: list[str], count: int = 3) -> list[str]:
    """The first words of the first eval documents: prompts in the domain's own voice."""
    prompts = []
    for text in texts:
        words = text.split()
        if len(words) >= PROMPT_WORDS:
            prompts.append(" ".join(words[:PROMPT_WORDS]))
        if len(prompts) == count:
            break
    return prompts or ["The"]


@torch.no_grad()
def full_eval_loss(model: Any, data: BlockData, batch_size: int, max_blocks: int = 512) -> float:
    """Token-weighted causal-LM loss over the eval blocks (up to ``max_blocks``)."""
    device = next(model.parameters()).device
    n = min(data.num_examples("eval"), max_blocks)
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        batch, _ = data.batch("eval", list(range(start, min(n, start + batch_size))))
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        tokens = batch["input_ids"].numel()
        total += float(loss) * tokens
        count += tokens
    return total / max(1, count)


@torch.no_grad()
def write_samples(model: Any, tokenizer: Any, prompts: list[str], path: Any) -> None:
    """One seeded sample per prompt, with the settings that produced it."""
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    with open(path, "w", encoding="utf-8") as handle:
        for number, prompt in enumerate(prompts):
            torch.manual_seed(SAMPLE_SEED + number)
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
            ids, room = fit_to_positions(ids, model.config, SAMPLING["max_new_tokens"])
            output = model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=True,
                temperature=SAMPLING["temperature"], top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"],
                max_new_tokens=room, pad_token_id=tokenizer.pad_token_id or eos, eos_token_id=eos,
            )
            text = tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)
            handle.write(json.dumps({"prompt": prompt, "completion": text, "seed": SAMPLE_SEED + number, **SAMPLING}) + "\n")
