"""Forgetting: at every eval, the loss on the base's own pre-training eval split.

Made by the engine's ``default_eval_hooks`` for runs whose task names a
``forgetting_objective`` (``generation``, continued ``mlm``/``clm`` pre-training) and whose
base is a workbench run dir (its ``run.toml`` names the corpus and split settings). Each
eval emits ``EvalDone(split="base_eval")``; ``summary()`` gives the change for ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.corpora import Corpus, load_corpus
from workbench.engine.evaluation import EvalContext, EvalPass, EvalSet, eval_set, measure
from workbench.errors import WorkbenchError
from workbench.models import resolve_base
from workbench.objectives import perplexity
from workbench.runs.events import EvalDone, Event, Message
from workbench.runs.rundir import RunDir
from workbench.tasks import get_task

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec
    from workbench.tasks.base import Task, TaskData


class ForgettingHook:
    """Loss on the base's eval blocks: the whole split, or the same seeded sample the run's own
    evals would take under ``eval_batches`` (same masks every time), through ``measure``."""

    def __init__(self, task: Task, data: TaskData, source: str, chosen: EvalSet, batching: tuple[int, int], earlier: list[float]):
        """``batching``: the run's (batch size, seed), which fix the batches and their masks."""
        self.task = task
        self.data = data
        self.source = source
        self.chosen = chosen
        self.batch_size, self.seed = batching
        self.losses: list[float] = list(earlier)

    def loss(self, model: Any) -> float:
        """The model's mean loss on the base's eval set; its train/eval mode is restored."""
        was_training = model.training
        model.eval()
        try:
            routine = EvalPass(module=model, task=self.task, data=self.data, batch_size=self.batch_size, seed=self.seed,
                               device=next(model.parameters()).device)
            return measure(routine, self.chosen).loss
        finally:
            model.train(was_training)

    def __call__(self, ctx: EvalContext) -> None:
        value = self.loss(ctx.model)
        self.losses.append(value)
        ctx.emit(EvalDone(step=ctx.step, eval_loss=value, perplexity=perplexity(value), split="base_eval"))

    def summary(self) -> dict[str, Any]:
        if not self.losses:
            return {}
        before, after = self.losses[0], self.losses[-1]
        return {
            "base_eval_corpus": self.source,
            "base_eval_loss_before": before,
            "base_eval_loss_after": after,
            "base_perplexity_before": perplexity(before),
            "base_perplexity_after": perplexity(after),
            "base_perplexity_change": perplexity(after) - perplexity(before),
        }


def base_eval_corpus(base_run: RunDir) -> tuple[Corpus, str]:
    """The base run's eval split, rebuilt from its run.toml exactly as the base saw it."""
    spec = base_run.spec()  # the base's run.toml: its flat spec as written
    corpus = load_corpus(spec.corpus, text_column=spec.text_column, eval_corpus=spec.eval_corpus,
                         eval_fraction=spec.eval_fraction, seed=spec.seed, holdout=spec.holdout)
    only_eval = Corpus(source=corpus.source, train=corpus.eval, eval=corpus.eval,
                       text_column=corpus.text_column, eval_source=corpus.eval_source)
    return only_eval, spec.corpus


def forgetting_monitor(spec: ResolvedSpec, objective: str, tokenizer: Any, run_dir: RunDir,
                       emit: Callable[[Event], None]) -> ForgettingHook | None:
    """The hook for a run whose base is a workbench run (its run.toml names its eval split);
    None for other bases. ``objective`` (``mlm``/``clm``) prepares the base's eval blocks."""
    try:
        ref = resolve_base(spec.base)
        if ref.kind != "run" or ref.run_dir is None:
            return None
        corpus, source = base_eval_corpus(RunDir(path=Path(ref.run_dir)))

        task = get_task(objective)
        data = task.prepare(corpus, tokenizer, spec)
    except WorkbenchError as exc:
        emit(Message(text=f"No forgetting check: the base's eval split cannot be loaded ({exc})"))
        return None
    earlier = [e["eval_loss"] for e in run_dir.events() if e.get("event") == "eval" and e.get("split") == "base_eval"]
    emit(Message(text=f"Forgetting check: loss on the base's eval split ({source}) at every eval"))
    return ForgettingHook(task, data, source, eval_set(data, spec), (spec.train.batch_size, spec.train.seed), earlier)
