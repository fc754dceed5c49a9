"""Forgetting: at every eval, the loss on the base's own pre-training eval split.

Made by the engine's ``default_eval_hooks`` for runs whose task names a
``forgetting_objective`` (``generation``, continued ``mlm``/``clm`` pre-training) and whose
base is a workbench run dir (its ``run.toml`` names the corpus and split settings). Each
eval emits ``EvalDone(split="base_eval")``; ``summary()`` gives the change for ``summary.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from workbench.corpora import Corpus, load_corpus
from workbench.errors import WorkbenchError
from workbench.models import resolve_base
from workbench.runs.events import EvalDone, Event, Message
from workbench.runs.rundir import RunDir


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0)) if math.isfinite(loss) else float("nan")


class ForgettingHook:
    """Loss on the base's eval blocks: the whole split, or the same seeded sample the run's own
    evals would take under ``eval_batches`` (same masks every time)."""

    def __init__(self, data: Any, source: str, batch_size: int, indices: Sequence[int], seed: int, earlier: list[float]):
        self.data = data
        self.source = source
        self.batch_size = batch_size
        self.indices = list(indices)
        self.seed = seed
        self.losses: list[float] = list(earlier)

    @torch.no_grad()
    def loss(self, model: Any) -> float:
        device = next(model.parameters()).device
        rng = torch.get_rng_state()
        was_training = model.training
        model.eval()
        losses = []
        for b, start in enumerate(range(0, len(self.indices), self.batch_size)):
            torch.manual_seed(self.seed + 10_007 * (b + 1))
            batch, _ = self.data.batch("eval", self.indices[start : start + self.batch_size])
            losses.append(float(model(**{k: v.to(device) for k, v in batch.items()}).loss))
        torch.set_rng_state(rng)
        model.train(was_training)
        return sum(losses) / max(1, len(losses))

    def __call__(self, ctx: Any) -> None:
        value = self.loss(ctx.model)
        self.losses.append(value)
        ctx.emit(EvalDone(step=ctx.step, eval_loss=value, perplexity=_ppl(value), split="base_eval"))

    def summary(self) -> dict[str, Any]:
        if not self.losses:
            return {}
        before, after = self.losses[0], self.losses[-1]
        return {
            "base_eval_corpus": self.source,
            "base_eval_loss_before": before,
            "base_eval_loss_after": after,
            "base_perplexity_before": _ppl(before),
            "base_perplexity_after": _ppl(after),
            "base_perplexity_change": _ppl(after) - _ppl(before),
        }


def base_eval_corpus(base_run: RunDir) -> tuple[Corpus, str]:
    """The base run's eval split, rebuilt from its run.toml exactly as the base saw it."""
    spec = base_run.spec()
    corpus = load_corpus(spec.corpus, text_column=spec.text_column, eval_corpus=spec.eval_corpus,
                         eval_fraction=spec.eval_fraction, seed=spec.seed, holdout=spec.holdout)
    only_eval = Corpus(source=corpus.source, train=corpus.eval, eval=corpus.eval,
                       text_column=corpus.text_column, eval_source=corpus.eval_source)
    return only_eval, spec.corpus


def forgetting_monitor(spec: Any, objective: str, tokenizer: Any, run_dir: Any, emit: Callable[[Event], None]) -> ForgettingHook | None:
    """The hook for a run whose base is a workbench run (its run.toml names its eval split);
    None for other bases. ``objective`` (``mlm``/``clm``) prepares the base's eval blocks."""
    try:
        ref = resolve_base(spec.base)
        if ref.kind != "run" or ref.run_dir is None:
            return None
        corpus, source = base_eval_corpus(RunDir(path=Path(ref.run_dir)))
        from workbench.tasks import get_task

        data = get_task(objective).prepare(corpus, tokenizer, spec)
    except WorkbenchError as exc:
        emit(Message(text=f"No forgetting check: the base's eval split cannot be loaded ({exc})"))
        return None
    earlier = [e["eval_loss"] for e in run_dir.events() if e.get("event") == "eval" and e.get("split") == "base_eval"]
    emit(Message(text=f"Forgetting check: loss on the base's eval split ({source}) at every eval"))
    from workbench.engine.evaluation import eval_set

    return ForgettingHook(data, source, spec.batch_size or 8, eval_set(data, spec).indices, spec.seed, earlier)
