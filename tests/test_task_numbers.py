"""Numbers that fit the task: a classification loss has no perplexity anywhere (events,
summary, progress lines, the end summary, compare); its own metric is shown instead."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from test_finetune_tasks import STEPS, bases, sentiment_rows  # noqa: F401 - bases is a fixture

from tests.conftest import tiny_overrides
from workbench.config import RunSpec
from workbench.console import PlainPrinter, summary_table
from workbench.experiments.compare import collect
from workbench.runs.events import EvalDone, RunFinished
from workbench.runs.rundir import RunDir


@pytest.mark.slow  # trains a tiny base (shared with test_finetune_tasks) and a sentiment run: about 20 s here
def test_a_sentiment_run_shows_accuracy_never_a_perplexity(bases, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "reviews.csv"
    path.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in sentiment_rows()), encoding="utf-8")
    stream = io.StringIO()
    from workbench.engine.runner import run_spec

    spec = RunSpec(**{**tiny_overrides(**STEPS), "out": str(tmp_path / "runs"), "device": "cpu", "objective": "sentiment",
                      "base": bases["mlm"], "corpus": str(path), "lr": 1e-3})
    summary = run_spec(spec, listeners=[PlainPrinter(stream, width=200)]).summary
    assert summary["perplexity_after"] is None and summary["perplexity_before"] is None
    evals = [e for e in RunDir(Path(summary["run_dir"])).events() if e["event"] == "eval"]
    assert evals and all(e["perplexity"] is None and "accuracy" in e["metrics"] for e in evals)
    printed = stream.getvalue()
    assert "ppl" not in printed and "perplexity" not in printed, printed
    assert "accuracy" in printed and "eval loss" in printed
    row = collect([summary["run_dir"]]).rows[0]
    assert row.task_metric == "accuracy" and row.objective == "sentiment"


def test_a_language_model_loss_keeps_its_perplexity() -> None:
    stream = io.StringIO()
    printer = PlainPrinter(stream, width=200)
    printer(EvalDone(step=4, eval_loss=2.0, perplexity=7.39))
    printer(EvalDone(step=4, eval_loss=0.69, perplexity=None, metrics={"accuracy": 0.5}))
    first, second = stream.getvalue().splitlines()
    assert "ppl 7.39" in first and "ppl" not in second and "accuracy 0.500" in second
    table = summary_table(RunFinished(status="finished", step=4, run_dir="r", model_dir="r/model",
                                      summary={"steps": 4, "eval_loss_after": 0.69, "perplexity_after": None}))
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(table)
    assert "perplexity" not in console.file.getvalue()
    assert json.dumps(EvalDone(step=1, eval_loss=0.5, perplexity=None).to_json())  # still an event every reader takes
