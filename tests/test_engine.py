"""Each objective trains a tiny real model; run dirs reload; resume continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer

from tests.conftest import tiny_overrides
from workbench.config import RunSpec
from workbench.engine import TrainingRun, resume_run, run_spec
from workbench.runs import RunControl, list_runs
from workbench.runs import checkpoint as ckpt

AUTO = {"mlm": AutoModelForMaskedLM, "nsp": AutoModelForPreTraining, "clm": AutoModelForCausalLM}


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", ["mlm", "nsp", "clm"])
def test_objective_trains_and_reloads(objective: str, story_corpus: Path, run_root: Path) -> None:
    spec = RunSpec(corpus=str(story_corpus), objective=objective, max_steps=30, out=str(run_root), lr=3e-3,
                   **tiny_overrides(eval_interval=10))
    result = run_spec(spec)
    summary = result.summary
    # Eval batches and their masks are fixed, so this is the loss on the same batches.
    assert summary["eval_loss_after"] < summary["eval_loss_before"] - 0.5
    assert result.status == "finished" and result.step == 30

    # The run dir holds what docs/run-directory.md promises.
    run_dir = result.run_dir
    for name in ("run.toml", "metrics.jsonl", "status.json", "summary.json", "model/config.json", "model/model.safetensors"):
        assert (run_dir / name).is_file(), name
    assert not list((run_dir / "model").glob("*.bin"))
    kinds = [e["event"] for e in events(run_dir)]
    assert kinds[0] == "started" and kinds[-1] == "finished" and "step" in kinds and "eval" in kinds

    # The final model loads with the matching AutoModelFor* and gives the same logits.
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    reloaded = AUTO[objective].from_pretrained(run_dir / "model").eval()
    text = "The cat sat on the [MASK]." if objective != "clm" else "The cat sat on the"
    inputs = tokenizer(text, return_tensors="pt")
    inputs.pop("token_type_ids", None) if objective == "clm" else None
    first = reloaded(**inputs).logits if objective != "nsp" else reloaded(**inputs).prediction_logits
    again = AUTO[objective].from_pretrained(run_dir / "model").eval()
    second = again(**inputs).logits if objective != "nsp" else again(**inputs).prediction_logits
    assert torch.equal(first, second)
    if objective == "nsp":
        assert "nsp_accuracy" in [e for e in events(run_dir) if e["event"] == "eval"][-1]["metrics"]


def test_stop_then_resume_continues_step_count_and_curve(story_corpus: Path, run_root: Path) -> None:
    control = RunControl()
    seen: list[int] = []

    def stop_at_12(event) -> None:
        if event.kind == "step":
            seen.append(event.step)
            if event.step >= 12:
                control.request_stop("test")

    spec = RunSpec(corpus=str(story_corpus), objective="clm", max_steps=24, out=str(run_root), name="resumable",
                   **tiny_overrides(eval_interval=6, log_interval=1))
    first = TrainingRun(spec, listeners=[stop_at_12], control=control).run()
    assert first.status == "stopped" and first.step == 12  # stops between steps, after a checkpoint
    assert ckpt.complete_checkpoints(first.run_dir / "checkpoints")[-1].name == "step-0000012"
    assert {r.name: r.status for r in list_runs(str(run_root))}["resumable"] == "stopped"

    second = resume_run("resumable", out=str(run_root))
    assert second.status == "finished" and second.step == 24
    steps = [e["step"] for e in events(second.run_dir) if e["event"] == "step"]
    assert steps == list(range(1, 25))
    started = [e for e in events(second.run_dir) if e["event"] == "started"]
    assert [s["resumed_from_step"] for s in started] == [0, 12]
    row = {r.name: r for r in list_runs(str(run_root))}["resumable"]
    assert row.status == "finished" and row.steps == 24 and row.best_eval_loss is not None


def test_resume_matches_uninterrupted_losses(story_corpus: Path, run_root: Path) -> None:
    """Data order, masking and dropout depend on (seed, step) only, so a resumed run
    reproduces the uninterrupted one."""
    common = dict(corpus=str(story_corpus), objective="mlm", max_steps=16, out=str(run_root), **tiny_overrides(log_interval=1, eval_interval=8))
    straight = run_spec(RunSpec(name="straight", **common))
    control = RunControl()
    TrainingRun(RunSpec(name="split", **common), control=control,
                listeners=[lambda e: control.request_stop() if e.kind == "step" and e.step == 7 else None]).run()
    resumed = resume_run("split", out=str(run_root))

    def losses(run_dir: Path) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in events(run_dir) if e["event"] == "step"}

    a, b = losses(straight.run_dir), losses(resumed.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 17))
    for step in a:
        assert abs(a[step] - b[step]) < 1e-6, step


def test_char_tokenizer_for_nanogpt_style_runs(story_corpus: Path, run_root: Path) -> None:
    spec = RunSpec(corpus=str(story_corpus), objective="clm", tokenizer="char", max_steps=4, out=str(run_root),
                   **tiny_overrides(eval_interval=4))
    result = run_spec(spec)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    ids = tokenizer("The cat sat.")["input_ids"]
    assert len(ids) == len("The cat sat.")
    assert tokenizer.decode(ids) == "The cat sat."
    assert len(tokenizer) < 100  # one token per distinct character (plus specials)
    AutoModelForCausalLM.from_pretrained(result.model_dir)
