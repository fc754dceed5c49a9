"""Fill a spec's open settings (``None``) with the objective's and preset's defaults, and
group the result as a ``ResolvedSpec`` (``config.py``), whose readers never fill a default again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import ResolvedSpec, RunSpec
from workbench.errors import SpecError
from workbench.models import PRESETS, SHAPE_FIELDS, position_limit
from workbench.objectives import get_objective
from workbench.tasks import get_task

if TYPE_CHECKING:
    from workbench.tasks.base import Task



def corpus_label(corpus: str) -> str:
    if corpus.startswith("hf:"):
        return corpus[3:].replace("/", "_").replace(":", "_")
    return Path(corpus).stem or "corpus"


def resolve_spec(spec: RunSpec, base_config: Any = None) -> tuple[ResolvedSpec, Task]:
    """The spec with every default filled in (grouped; ``to_dict`` gives the flat keys back), and its task (the decoder variant when
    ``base_config``, already loaded by the caller, is a decoder's)."""
    spec.validate()
    task = get_task(spec.objective, base_config)
    if get_objective(spec.objective).needs_base and not spec.base:
        raise SpecError(
            f"{spec.objective} fine-tunes a pre-trained model, and no --base was given",
            fix="pass --base RUN_DIR|MODEL_DIR|HUB_ID (e.g. a run made with `workbench run --objective mlm`)",
        )
    defaults = task.base_defaults if spec.base else task.scratch_defaults
    changes: dict = {}
    if spec.lr is None:  # a few adapter or head weights take larger steps than the whole model (methods.py)
        changes["lr"] = defaults.lr * METHOD_LR_SCALE.get(spec.method, 1.0)
    if spec.batch_size is None:
        changes["batch_size"] = defaults.batch_size
    if spec.seq_len is None:
        changes["seq_len"] = defaults.seq_len if base_config is None else min(defaults.seq_len, position_limit(base_config))
    if spec.warmup_ratio is None:
        changes["warmup_ratio"] = defaults.warmup_ratio
    if spec.beta2 is None:
        changes["beta2"] = 0.98 if task.pretraining else 0.999
    if spec.max_steps is None and spec.epochs is None and spec.time_budget is None:  # a budget alone: until it runs out
        if defaults.max_steps is not None:
            changes["max_steps"] = defaults.max_steps
        else:
            changes["epochs"] = defaults.epochs
    if spec.sampling is None and task.windowed:
        changes["sampling"] = "blocks"  # measured: as good as random windows (docs/results.md, "Training windows"), 2-3% cheaper
    check_sampling(spec, task)
    changes.update(method_settings(spec))
    check_seq_len(spec.replace(**changes), base_config)
    changes.update(model_shape(spec, changes.get("seq_len", spec.seq_len)))
    if spec.tokenizer == "auto":
        changes["tokenizer"] = "wordpiece" if task.masked else "bpe"
    tokenizer = changes.get("tokenizer", spec.tokenizer)
    if spec.base is None:
        if task.masked and tokenizer == "bpe":
            raise SpecError(f"the bpe tokenizer has no [MASK] token, so it cannot do {spec.objective}", fix="use --tokenizer wordpiece or char")
        if not task.masked and tokenizer == "wordpiece":
            raise SpecError(f"the wordpiece tokenizer is for masked objectives, not {spec.objective}", fix="use --tokenizer bpe or char")
    if spec.vocab_size is None and tokenizer != "char":  # a char vocabulary is the characters seen
        changes["vocab_size"] = PRESETS[spec.size]["vocab"]
    if spec.name is None:
        changes["name"] = f"{spec.objective}-{corpus_label(spec.corpus)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return ResolvedSpec.from_filled(spec.replace(**changes)), task


METHOD_LR_SCALE = {"full": 1.0, "lora": 10.0, "frozen": 100.0}
"""An unset lr: the objective's default times this (e.g. sentiment from a base: 5e-5 full,
5e-4 lora, 5e-3 frozen), the usual ranges for adapters and linear probes."""
LORA_DEFAULTS = {"lora_r": 8, "lora_dropout": 0.05}
"""LoRA's defaults when ``method = "lora"`` leaves them unset (``lora_alpha``: 2 x ``lora_r``)."""


def method_settings(spec: RunSpec) -> dict[str, Any]:
    """The LoRA fields a ``lora`` run leaves unset; a setting the method cannot honour is refused:
    a method other than full without a base (nothing to adapt or freeze), LoRA fields with
    another method, and what trains every weight by construction (FSDP, the lean GPT-2)."""
    lora_fields = [name for name in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets") if getattr(spec, name) is not None]
    if spec.method != "lora" and lora_fields:
        raise SpecError(f"{lora_fields[0]} is a LoRA setting, but method is {spec.method}",
                        fix=f"add --method lora, or drop {lora_fields[0]}")
    if spec.method == "full":
        return {}
    if not spec.base:
        raise SpecError(f"method {spec.method} adapts a pre-trained model, and this run trains from scratch (no --base)",
                        fix=f"pass --base RUN_DIR|MODEL_DIR|HUB_ID with --method {spec.method}, or use --method full")
    if spec.parallel == "fsdp":
        raise SpecError(f"method {spec.method} trains a small part of the model, which FSDP does not shard",
                        fix="use --parallel ddp (each process holds the frozen weights once) or --method full")
    if spec.lean_model == "on" and spec.objective == "clm":  # (mlm's lean twin, masked positions only, works with any method)
        raise SpecError(f"the lean GPT-2 trains every weight of a from-scratch model, not method {spec.method}",
                        fix='drop --lean (lean_model = "auto" or "off")')
    if spec.method != "lora":
        return {}
    r = spec.lora_r or LORA_DEFAULTS["lora_r"]
    return {"lora_r": r, "lora_alpha": spec.lora_alpha or float(2 * r),
            "lora_dropout": spec.lora_dropout if spec.lora_dropout is not None else LORA_DEFAULTS["lora_dropout"]}


def check_seq_len(spec: RunSpec, base_config: Any) -> None:
    """A sequence longer than the base's position embeddings fails mid-run: say so now."""
    if base_config is not None and spec.seq_len is not None and spec.seq_len > position_limit(base_config):
        limit = position_limit(base_config)
        raise SpecError(f"seq_len {spec.seq_len} is longer than the base allows ({limit} positions)",
                        fix=f"use --seq-len {limit} or less")


def check_sampling(spec: RunSpec, task: Task) -> None:
    if spec.sampling is not None and not task.windowed:
        raise SpecError(f"sampling chooses windows of packed text, which {spec.objective} does not train on",
                        fix="leave sampling unset (it applies to clm and mlm)")


def model_shape(spec: RunSpec, seq_len: int) -> dict[str, Any]:
    """The shape fields a from-scratch run leaves unset, from its ``--size`` preset; with a
    base, any shape field is refused (the base fixes the shape)."""
    given = [name for name in SHAPE_FIELDS if getattr(spec, name) is not None]
    if spec.base:
        if given:
            raise SpecError(f"{given[0]} shapes a model from scratch, but --base fixes the shape",
                            fix=f"drop {given[0]} (and the other shape settings), or drop --base to train from scratch")
        return {}
    preset = PRESETS[spec.size]
    shape = {name: getattr(spec, name) if getattr(spec, name) is not None else preset.get(name) for name in SHAPE_FIELDS}
    shape["d_ff"] = spec.d_ff or 4 * shape["d_model"]
    shape["max_position"] = shape["max_position"] or seq_len
    shape["tie_embeddings"] = shape["tie_embeddings"] or "on"
    if shape["d_model"] % shape["n_head"]:
        raise SpecError(f"n_head {shape['n_head']} does not divide d_model {shape['d_model']}",
                        fix="pick n_head and d_model so that d_model / n_head is a whole number (e.g. 4 and 128)")
    if seq_len > shape["max_position"]:
        raise SpecError(f"seq_len {seq_len} is longer than max_position {shape['max_position']}",
                        fix=f"raise --max-position to at least {seq_len}, or lower --seq-len")
    return shape
