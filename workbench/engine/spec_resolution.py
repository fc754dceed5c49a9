"""Fill a spec's open settings (``None``) with the objective's and preset's defaults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import RunSpec
from workbench.errors import SpecError
from workbench.models import PRESETS
from workbench.tasks import get_objective, get_task

if TYPE_CHECKING:
    from workbench.tasks.base import Task

UNTIL_BUDGET_STEPS = 10_000_000


def corpus_label(corpus: str) -> str:
    if corpus.startswith("hf:"):
        return corpus[3:].replace("/", "_").replace(":", "_")
    return Path(corpus).stem or "corpus"


def resolve_spec(spec: RunSpec, base_config: Any = None) -> tuple[RunSpec, Task]:
    """The spec with every default filled in, and its task (the decoder variant when
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
    if spec.lr is None:
        changes["lr"] = defaults.lr
    if spec.batch_size is None:
        changes["batch_size"] = defaults.batch_size
    if spec.seq_len is None:
        changes["seq_len"] = defaults.seq_len
    if spec.max_steps is None and spec.epochs is None:
        if spec.time_budget is not None:
            changes["max_steps"] = UNTIL_BUDGET_STEPS
        elif defaults.max_steps is not None:
            changes["max_steps"] = defaults.max_steps
        else:
            changes["epochs"] = defaults.epochs
    if spec.tokenizer == "auto":
        changes["tokenizer"] = "wordpiece" if task.masked else "bpe"
    tokenizer = changes.get("tokenizer", spec.tokenizer)
    if spec.base is None:
        if task.masked and tokenizer == "bpe":
            raise SpecError(f"the bpe tokenizer has no [MASK] token, so it cannot do {spec.objective}", fix="use --tokenizer wordpiece or char")
        if not task.masked and tokenizer == "wordpiece":
            raise SpecError(f"the wordpiece tokenizer is for masked objectives, not {spec.objective}", fix="use --tokenizer bpe or char")
    if spec.vocab_size is None:
        changes["vocab_size"] = PRESETS[spec.size]["vocab"]
    if spec.name is None:
        changes["name"] = f"{spec.objective}-{corpus_label(spec.corpus)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return spec.replace(**changes), task
