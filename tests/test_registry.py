"""The objective registry: a new objective is one task class plus one ``register`` line.

A toy objective defined in the test suite (``tests/toy_task.py``: causal LM with its own
loss) is registered, trained through the CLI like a built-in one, and unregistered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests import toy_task
from tests.conftest import tiny_overrides
from workbench.cli import app
from workbench.errors import SpecError
from workbench.objectives import OBJECTIVES, Objective, get_objective, objective_names, register
from workbench.tasks import get_task


@pytest.fixture
def toy():
    objective = register(Objective("toy", "pretrain", "toy causal LM with its own loss", task="tests.toy_task:ToyTask"))
    try:
        yield objective
    finally:
        OBJECTIVES.pop("toy", None)


def test_registered_objective_is_listed_and_built(toy):
    assert "toy" in objective_names() and "toy" in objective_names("pretrain") and "toy" not in objective_names("finetune")
    assert get_objective("toy") is toy and not toy.needs_base
    task = get_task("toy")
    assert isinstance(task, toy_task.ToyTask) and task.name == "toy"
    assert get_task("toy") is not task  # a fresh task each time


def test_unknown_objective_names_the_registered_ones():
    with pytest.raises(SpecError, match="unknown objective 'toy'.*clm"):
        get_objective("toy")


def test_toy_objective_trains_through_the_cli(toy, story_corpus: Path, tmp_path: Path):
    o = tiny_overrides()
    calls = toy_task.CALLS["loss"]
    result = CliRunner().invoke(app, [
        "run", "--objective", "toy", "--corpus", str(story_corpus), "--max-steps", "3", "--out", str(tmp_path),
        "--batch-size", str(o["batch_size"]), "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]),
        "--log-interval", "1", "--eval-interval", "3", "--name", "toy-run", "--json",
    ])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert toy_task.CALLS["loss"] - calls >= 3
    # The custom loss was used: every logged training loss carries its offset, while the
    # eval (the default eval_step: the model's own loss) does not.
    assert all(e["loss"] > toy_task.LOSS_OFFSET for e in steps)
    evals = [e for e in events if e["event"] == "eval"]
    assert evals and all(e["eval_loss"] < toy_task.LOSS_OFFSET for e in evals)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert type(model).__name__ == "GPT2LMHeadModel"
