"""`workbench lr-find` and `--lr auto`: a real range test on a tiny model, through the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import one_line_error

from tests.test_cli import invoke, tiny_flags
from workbench.config import RunSpec
from workbench.engine import lr_find
from workbench.engine.lr_find import RangeTest, smooth, suggest


def test_suggest_takes_the_steepest_descent_of_the_smoothed_loss() -> None:
    test = RangeTest(steps=40, min_lr=1e-6, max_lr=1.0)
    lrs = [test.lr_at(i) for i in range(40)]
    # flat, then falling fastest around lr 1e-3 (a logistic in log lr), then flat again
    losses = [4.0 - 2.0 / (1 + math.exp(-4 * (math.log10(lr) + 3))) for lr in lrs]
    lr, rule, why = suggest(lrs, losses)
    assert rule == "steepest" and "fell fastest" in why
    assert 3e-4 < lr < 3e-3
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)


def test_no_suggestion_when_the_loss_never_falls() -> None:
    lrs = [RangeTest(steps=20).lr_at(i) for i in range(20)]
    lr, _, why = suggest(lrs, smooth([1.0 + i / 10 for i in range(20)], 0.98))
    assert lr is None and "never fell" in why


def test_lr_find_suggests_an_lr_it_tried_and_writes_no_run(story_corpus: Path, run_root: Path) -> None:
    result = invoke("lr-find", "--corpus", str(story_corpus), "--steps", "16", "--min-lr", "1e-5", "--max-lr", "1",
                    "--json", *tiny_flags(run_root))
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout.strip().splitlines()[-1])
    lrs = found["lrs"]
    assert lrs[0] == pytest.approx(1e-5) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert len(lrs) == len(found["losses"]) == len(found["smoothed"]) <= 16
    assert lrs[0] <= found["suggested"] <= lrs[-1]
    assert found["rule"] == "steepest" and found["default_lr"] > 0
    assert not run_root.exists(), list(run_root.rglob("*"))


def test_lr_find_plots_and_says_why(story_corpus: Path, run_root: Path) -> None:
    result = invoke("lr-find", "--corpus", str(story_corpus), "--steps", "14", "--min-lr", "1e-4", *tiny_flags(run_root))
    assert result.exit_code == 0, result.output
    assert "learning rate (log scale)" in result.stdout
    assert "suggested " in result.stdout and "steepest descent of the smoothed loss" in result.stdout
    assert "curve: 14 steps of batch 8" in result.stdout or "stopped at lr" in result.stdout
    assert not run_root.exists()


def test_lr_auto_records_the_found_lr_and_trains_with_it(story_corpus: Path, run_root: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lr_find, "AUTO_TEST", RangeTest(steps=14, min_lr=1e-4, max_lr=1.0))
    result = invoke("run", "--corpus", str(story_corpus), "--lr", "auto", "--max-steps", "3", "--name", "auto",
                    "--json", *tiny_flags(run_root))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    started = next(e for e in events if e["event"] == "started")
    run_toml = run_root / "auto" / "run.toml"
    spec = RunSpec.from_toml(run_toml)  # still a valid spec: a resume reads it
    assert isinstance(spec.lr, float) and 1e-4 <= spec.lr <= 1.0
    assert started["spec"]["lr"] == spec.lr  # what the run trained with
    import tomllib

    meta = tomllib.loads(run_toml.read_text())["meta"]
    assert meta["lr_found_by"].startswith("lr-find: steepest descent") and "14 steps" in meta["lr_found_by"]
    assert any(e["event"] == "message" and e["text"].startswith(f"--lr auto: {spec.lr:.2e}") for e in events)


@pytest.mark.parametrize("flags, needle", [
    (["--steps", "5"], "--steps"),
    (["--min-lr", "1", "--max-lr", "0.1"], "--min-lr"),
    (["--max-lr", "50"], "--max-lr"),
    (["--diverge", "1"], "--diverge"),
    (["--lr", "fast"], "--lr"),
])
def test_bad_finder_flags_are_one_line(story_corpus: Path, run_root: Path, flags: list[str], needle: str) -> None:
    result = invoke("lr-find", "--corpus", str(story_corpus), *flags, *tiny_flags(run_root))
    one_line_error(result, needle)
    assert not run_root.exists()
