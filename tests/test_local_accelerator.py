"""The engine's single-process accelerator: runs in one process own their precision, and
it trains exactly as Accelerate's ``Accelerator`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults_helpers import fault_spec, step_losses

from workbench.engine import TrainingRun
from workbench.engine import setup as engine_setup
from workbench.engine.local_accelerator import LocalAccelerator


def losses(corpus: Path, out: Path, name: str, **extra) -> dict[int, float]:
    result = TrainingRun(fault_spec(corpus, out, name, max_steps=6, eval_interval=6, save_interval=6, **extra)).run()
    assert result.status == "finished"
    return step_losses(result.run_dir)


def test_runs_in_one_process_change_precision_and_do_not_leak(story_corpus: Path, tmp_path: Path) -> None:
    """Accelerate's one state per process refused a bf16 run after an fp32 one ("cannot be
    changed"); each run now has its own, and the third run repeats the first exactly."""
    first = losses(story_corpus, tmp_path, "fp32", precision="fp32")
    in_bf16 = losses(story_corpus, tmp_path, "bf16", precision="bf16")
    again = losses(story_corpus, tmp_path, "fp32-again", precision="fp32")
    assert again == first
    assert in_bf16.keys() == first.keys() and in_bf16 != first  # bf16 autocast really ran


def test_it_trains_as_accelerate_does(monkeypatch: pytest.MonkeyPatch, story_corpus: Path, tmp_path: Path) -> None:
    """The same fp32 run through ``accelerate.Accelerator`` and through ours: the same losses."""
    accelerate = pytest.importorskip("accelerate")
    ours = losses(story_corpus, tmp_path, "ours")

    def with_accelerate(spec):  # what make_accelerator builds under torchrun, here in one process
        return accelerate.Accelerator(cpu=True), "cpu", "fp32"

    monkeypatch.setattr(engine_setup, "make_accelerator", with_accelerate)
    theirs = losses(story_corpus, tmp_path, "accelerate")
    assert theirs == ours


def test_fp16_steps_through_the_scaler_and_reports_a_skip() -> None:
    torch = pytest.importorskip("torch")
    accelerator = LocalAccelerator("cpu", "fp16")
    weight = torch.nn.Parameter(torch.ones(2))
    _, optimizer = accelerator.prepare(torch.nn.Linear(1, 1), torch.optim.SGD([weight], lr=0.1))
    accelerator.backward((weight * float("inf")).sum())  # an overflowed gradient
    accelerator.clip_grad_norm_([weight], 1.0)
    optimizer.step()
    assert accelerator.optimizer_step_was_skipped and weight.tolist() == [1.0, 1.0]
    optimizer.zero_grad()
    accelerator.backward((weight * 2).sum())
    norm = accelerator.clip_grad_norm_([weight], 10.0)
    optimizer.step()
    assert not accelerator.optimizer_step_was_skipped
    assert norm.item() == pytest.approx(8**0.5)  # the true gradient (2, 2), unscaled
    assert weight.tolist() == pytest.approx([0.8, 0.8])
