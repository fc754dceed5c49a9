"""fp16 with a loss scaler, as on GPUs without bf16, reproduced on CPU.

The engine's single-process accelerator builds a ``GradScaler`` for fp16 on any device; these
tests ask for fp16 on CPU (which the CLI refuses) and pick the scaler's starting scale. The scaler's first steps overflow, as on a real fp16 GPU: those must be
skipped by the scaler, not reported as a diverged run; a scale that never recovers must
still stop the run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from faults_helpers import events, fault_spec

from workbench.engine import TrainingRun
from workbench.engine import guard as guard_module
from workbench.engine import setup as engine_setup
from workbench.engine.local_accelerator import LocalAccelerator
from workbench.errors import TrainingError


@pytest.fixture
def fp16_with_scaler(monkeypatch: pytest.MonkeyPatch):
    """Make the next runs use fp16 autocast and a CPU ``GradScaler`` starting at ``scale``."""

    def install(scale: float) -> None:
        original = LocalAccelerator.__init__

        def init(self, device: str, precision: str) -> None:
            original(self, device, precision)
            assert self.scaler is not None and self.dtype == torch.float16
            self.scaler = torch.amp.GradScaler("cpu", init_scale=scale)

        monkeypatch.setattr(LocalAccelerator, "__init__", init)
        monkeypatch.setattr(engine_setup, "pick_precision", lambda requested, device: "fp16")

    return install


@pytest.mark.slow  # 40 steps of fp16 autocast on CPU
def test_loss_scaler_overflow_steps_are_skipped_not_fatal(fp16_with_scaler, story_corpus: Path, tmp_path: Path) -> None:
    fp16_with_scaler(2.0**40)  # far above fp16's range: the first steps overflow
    result = TrainingRun(fault_spec(story_corpus, tmp_path, "fp16-scaler", max_steps=40)).run()
    assert (result.status, result.step) == ("finished", 40)
    steps = events(result.run_dir, "step")
    norms = [e["grad_norm"] for e in steps]
    assert norms[0] is None  # an overflowed step: logged without a norm, not as a failure
    assert norms[-1] is not None and math.isfinite(norms[-1])  # the scale came down and training went on
    assert all(math.isfinite(e["loss"]) for e in steps)
    assert result.summary["eval_loss_after"] < result.summary["eval_loss_before"]


def test_a_scale_that_never_recovers_stops_the_run(fp16_with_scaler, monkeypatch: pytest.MonkeyPatch,
                                                   story_corpus: Path, tmp_path: Path) -> None:
    fp16_with_scaler(2.0**120)
    monkeypatch.setattr(guard_module, "MAX_SCALER_SKIPS", 4)
    with pytest.raises(TrainingError, match=r"loss scaler skipped 4 steps in a row.*at step 4"):
        TrainingRun(fault_spec(story_corpus, tmp_path, "fp16-stuck", max_steps=20)).run()
