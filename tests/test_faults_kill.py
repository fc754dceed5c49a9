"""SIGKILL a training subprocess at six seeded random moments (mid-save included) and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults_helpers import kill_and_resume

KILLS = 6  # benchmarks/faults.py does 50; CI keeps to six
SAVE_INTERVAL = 3


@pytest.mark.slow
def test_kill_anywhere_and_resume(story_corpus: Path, tmp_path: Path) -> None:
    report = kill_and_resume(tmp_path, story_corpus, kills=KILLS, seed=2024, save_interval=SAVE_INTERVAL, compare=True)
    assert not report.problems, report.problems
    assert report.kills == KILLS
    assert report.resumes_ok + report.killed_in_startup == report.resumes  # every resume that got going started where it should
    assert report.never_without_checkpoint
    assert report.max_steps_lost <= SAVE_INTERVAL
    assert report.mid_save_kills >= 1
    assert report.final_step > 0
    assert report.max_loss_diff is not None and report.max_loss_diff <= 1e-6  # resumed == uninterrupted, step by step
