"""Exact resume, NaN/Inf and out-of-memory, injected into real tiny training runs on CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from faults_helpers import TrainingForwardPatch, events, fault_spec, nan_like, step_losses

from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.errors import TrainingError
from workbench.lean_gpt2 import LeanGPT2
from workbench.runs import RunControl, StepLogged
from workbench.runs import checkpoint as ckpt

GPT2 = LeanGPT2  # from-scratch clm trains through the lean twin


@pytest.fixture(scope="module")
def uninterrupted(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 steps straight through: the reference for every resume."""
    out = tmp_path_factory.mktemp("runs")
    return TrainingRun(fault_spec(story_corpus, out, "straight", max_steps=40)).run().run_dir


def test_stop_at_20_and_resume_gives_the_same_40_losses(uninterrupted: Path, story_corpus: Path, tmp_path: Path) -> None:
    control = RunControl()

    def stop_after_20(event: object) -> None:
        if isinstance(event, StepLogged) and event.step == 20:
            control.request_stop("test stop")

    first = TrainingRun(fault_spec(story_corpus, tmp_path, "split", max_steps=40), listeners=[stop_after_20], control=control).run()
    assert (first.status, first.step) == ("stopped", 20)
    state = ckpt.read_state(ckpt.complete_checkpoints(first.run_dir / "checkpoints")[-1])
    assert state["step"] == 20 and "scheduler" in state
    for folder in ckpt.complete_checkpoints(first.run_dir / "checkpoints"):  # resume state: safetensors + JSON only
        assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".pth")]

    second = resume_run(first.run_dir, out=str(tmp_path))
    assert (second.status, second.step) == ("finished", 40)
    assert events(first.run_dir, "started")[-1]["resumed_from_step"] == 20

    reference, resumed = step_losses(uninterrupted), step_losses(first.run_dir)
    assert sorted(reference) == sorted(resumed) == list(range(1, 41))
    worst = max(abs(reference[s] - resumed[s]) for s in reference)
    assert worst <= 1e-6, f"resumed losses differ by {worst}"
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "finished"


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_finite_checkpoint(story_corpus: Path, tmp_path: Path) -> None:
    spec = fault_spec(story_corpus, tmp_path, "nan-stop", max_steps=20)
    with TrainingForwardPatch(GPT2, lambda i, kw, call: nan_like(call()) if i == 11 else call()):
        with pytest.raises(TrainingError, match=r"the loss became nan at step 12\b"):
            TrainingRun(spec).run()
    run_dir = tmp_path / "nan-stop"
    saved = [int(p.name.split("-")[1]) for p in ckpt.complete_checkpoints(run_dir / "checkpoints")]
    assert saved and max(saved) == 10  # saves at 5 and 10; nothing after the NaN
    for folder in ckpt.complete_checkpoints(run_dir / "checkpoints"):
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for t in load_file(str(folder / "model.safetensors")).values())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "step 12" in status["message"]
    assert events(run_dir, "failed")


def test_infinite_gradient_is_caught_by_the_grad_norm(story_corpus: Path, tmp_path: Path) -> None:
    def inf_grad(i: int, kwargs: dict, call: object) -> object:
        output = call()  # type: ignore[operator]
        if i == 3:  # the loss stays finite; d sqrt(u)/du at 0 is inf, so the gradient is not
            zero = output.logits.sum() * 0.0
            output.loss = output.loss + torch.sqrt(zero)
        return output

    with TrainingForwardPatch(GPT2, inf_grad):
        with pytest.raises(TrainingError, match=r"the gradient norm became nan at step 4\b"):
            TrainingRun(fault_spec(story_corpus, tmp_path, "inf-grad", max_steps=8)).run()


def test_skip_policy_skips_the_step_halves_the_lr_and_finishes(story_corpus: Path, tmp_path: Path) -> None:
    spec = fault_spec(story_corpus, tmp_path, "nan-skip", max_steps=12, lr=1e-3, on_nonfinite="skip", max_nonfinite_skips=2)
    with TrainingForwardPatch(GPT2, lambda i, kw, call: nan_like(call()) if i in (4, 8) else call()):
        result = TrainingRun(spec).run()
    assert (result.status, result.step) == ("finished", 12)
    messages = [e["text"] for e in events(result.run_dir, "message") if "skipped" in e["text"]]
    assert len(messages) == 2 and "step 5" in messages[0] and "step 9" in messages[1]
    losses = step_losses(result.run_dir)
    assert all(math.isfinite(v) for v in losses.values())
    assert 5 not in losses and 9 not in losses  # skipped steps log no loss
    lrs = {e["step"]: e["lr"] for e in events(result.run_dir, "step")}
    # linear decay: lr(s) is proportional to (12 - s); after two halvings it is a quarter of that
    assert lrs[10] == pytest.approx(spec.lr * (12 - 10) / (12 - 0) / 4, rel=1e-3)
    state = ckpt.read_state(ckpt.complete_checkpoints(result.run_dir / "checkpoints")[-1])
    assert state["nonfinite_skips"] == 2


def test_skip_policy_stops_after_the_allowed_skips(story_corpus: Path, tmp_path: Path) -> None:
    spec = fault_spec(story_corpus, tmp_path, "nan-skip-out", max_steps=12, on_nonfinite="skip", max_nonfinite_skips=1)
    with TrainingForwardPatch(GPT2, lambda i, kw, call: nan_like(call()) if i >= 2 else call()):
        with pytest.raises(TrainingError, match=r"at step 4 after 1 skipped steps"):
            TrainingRun(spec).run()


def _oom_above(rows: int, from_call: int):
    def hook(i: int, kwargs: dict, call: object) -> object:
        if i >= from_call and kwargs["input_ids"].shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return call()  # type: ignore[operator]

    return hook


def test_oom_halves_the_micro_batch_and_keeps_the_data(story_corpus: Path, tmp_path: Path) -> None:
    spec = fault_spec(story_corpus, tmp_path, "oom-halve", max_steps=8)
    seen: list[int] = []

    def hook(i: int, kwargs: dict, call: object) -> object:
        if i >= 3 and kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        seen.append(int(kwargs["input_ids"].shape[0]))
        return call()  # type: ignore[operator]

    with TrainingForwardPatch(GPT2, hook):
        result = TrainingRun(spec).run()
    assert (result.status, result.step) == ("finished", 8)
    texts = [e["text"] for e in events(result.run_dir, "message") if "Out of memory" in e["text"]]
    assert [t.split("micro-batch halved to ")[1].split()[0] for t in texts] == ["4", "2"]
    assert seen[:3] == [8, 8, 8] and set(seen[3:]) == {2}
    assert len(seen) == 3 + 5 * 4  # steps 4-8 each in four micro-batches of 2: the same 8 rows
    tokens = [e["tokens"] for e in events(result.run_dir, "step")]
    assert all(b - a == 8 * 32 for a, b in zip(tokens, tokens[1:]))  # the effective batch is unchanged
    state = ckpt.read_state(ckpt.complete_checkpoints(result.run_dir / "checkpoints")[-1])
    assert state["micro_batch"] == 2 and state["batch_size"] == 8


def test_oom_stop_policy_checkpoints_then_resume_uses_half_the_micro_batch(story_corpus: Path, tmp_path: Path) -> None:
    spec = fault_spec(story_corpus, tmp_path, "oom-stop", max_steps=8, on_oom="stop")
    with TrainingForwardPatch(GPT2, _oom_above(4, from_call=6)):
        with pytest.raises(TrainingError, match=r"out of memory at step 7 with micro-batch 8; checkpoint saved at step 6.*--resume"):
            TrainingRun(spec).run()
    run_dir = tmp_path / "oom-stop"
    latest = ckpt.complete_checkpoints(run_dir / "checkpoints")[-1]
    assert ckpt.read_state(latest)["step"] == 6 and ckpt.read_state(latest)["micro_batch"] == 4
    with TrainingForwardPatch(GPT2, _oom_above(4, from_call=0)):
        result = resume_run(run_dir, out=str(tmp_path))
    assert (result.status, result.step) == ("finished", 8)


def test_a_nan_eval_loss_stops_the_run_with_one_line(story_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training stays finite; the evaluation after step 4 returns NaN."""
    original, logged = LeanGPT2.forward, {"step": 0}

    def forward(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        output = original(model, *args, **kwargs)
        return output if model.training or logged["step"] < 1 else nan_like(output)

    def listener(event: object) -> None:
        if isinstance(event, StepLogged):
            logged["step"] = event.step

    monkeypatch.setattr(LeanGPT2, "forward", forward)
    spec = fault_spec(story_corpus, tmp_path, "nan-eval", max_steps=12, eval_interval=4)
    with pytest.raises(TrainingError, match=r"the eval loss became nan at step 4"):
        TrainingRun(spec, listeners=[listener]).run()
