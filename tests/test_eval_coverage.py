"""Evals say what they covered: the whole split by default, a fixed seeded sample when asked
(the same examples and masks at every eval), and the whole split at the end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_overrides, write_story_corpus
from rich.console import Console

from workbench.config import EVAL_AUTO_TOKENS, RunSpec
from workbench.console import RichPrinter
from workbench.engine import TrainingRun
from workbench.engine.evaluation import Evaluator, eval_set, periodic_size, seeded_sample
from workbench.runs.events import EvalDone, Message


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stories with a 30% held-out split: tens of eval blocks, more than two batches."""
    return write_story_corpus(tmp_path_factory.mktemp("coverage") / "stories.txt", documents=120)


def tiny_run(corpus: Path, out: Path, **extra) -> tuple[TrainingRun, list]:
    """A few steps of a tiny model, evaluating every 2 steps; returns the run and its events."""
    values = tiny_overrides(eval_interval=2, eval_fraction=0.3, probes=[])
    values.update(extra)
    seen: list = []
    spec = RunSpec(corpus=str(corpus), out=str(out), **{"objective": "mlm", "max_steps": 4, **values})
    run = TrainingRun(spec, listeners=[seen.append])
    assert run.run().status == "finished"
    return run, seen


def evals(seen: list) -> list[EvalDone]:
    return [e for e in seen if isinstance(e, EvalDone) and e.split == "eval"]


def recomputed_loss(state, indices: list[int]) -> float:
    """The eval loss over ``indices`` written out by hand: batches of ``batch_size`` in order,
    each batch's masks seeded by its position, the mean of the batch losses."""
    size, losses = state.spec.train.batch_size, []
    module = state.accelerator.unwrap_model(state.module).eval()
    with torch.no_grad():
        for b in range(0, len(indices), size):
            torch.manual_seed(state.spec.train.seed + 10_007 * (b // size + 1))
            batch, _ = state.data.batch("eval", indices[b:b + size])
            losses.append(float(state.task.eval_step(module, batch, {})))
    return sum(losses) / len(losses)


def test_a_sample_is_fixed_by_the_seed() -> None:
    first, again = seeded_sample(1000, 50, seed=3), seeded_sample(1000, 50, seed=3)
    assert first == again == sorted(set(first)) and len(first) == 50
    assert all(0 <= i < 1000 for i in first)
    assert seeded_sample(1000, 50, seed=4) != first
    assert first != list(range(50))  # a sample, not the first examples


def test_how_many_examples_a_periodic_eval_covers() -> None:
    assert periodic_size("all", 5000, 8, 10**6) == 5000
    assert periodic_size("auto", 5000, 8, EVAL_AUTO_TOKENS // 5000) == 5000  # within the budget: all of it
    sampled = periodic_size("auto", 100_000, 8, 128)
    assert sampled % 8 == 0 and EVAL_AUTO_TOKENS <= sampled * 128 < EVAL_AUTO_TOKENS + 8 * 128
    assert periodic_size(3, 5000, 8, 128) == 24
    assert periodic_size(3, 20, 8, 128) == 20


def test_default_evals_cover_the_whole_split(corpus: Path, tmp_path: Path) -> None:
    run, seen = tiny_run(corpus, tmp_path / "runs", eval_batches="auto")
    n_eval = run.state.data.num_examples("eval")
    assert n_eval > 2 * run.state.spec.train.batch_size  # so a sample would show
    done = evals(seen)
    assert [e.step for e in done] == [0, 2, 4]
    for event in done:
        assert event.examples == n_eval and event.fraction == 1.0
        assert event.tokens == n_eval * run.state.spec.data.seq_len
        assert event.coverage == f"whole eval split ({n_eval:,} blocks)"
    assert not [e for e in seen if isinstance(e, Message) and "sample" in e.text]
    assert run.state.progress.coverage == {"examples": n_eval, "tokens": n_eval * run.state.spec.data.seq_len,
                                           "fraction": 1.0, "text": f"whole eval split ({n_eval:,} blocks)"}
    written = [json.loads(line) for line in (run.state.run_dir.path / "metrics.jsonl").read_text().splitlines()]
    assert [row["examples"] for row in written if row["event"] == "eval"] == [n_eval] * 3


def test_n_batches_is_one_fixed_sample_and_the_final_eval_is_whole(corpus: Path, tmp_path: Path) -> None:
    run, seen = tiny_run(corpus, tmp_path / "runs", eval_batches=2, lr=1e-9, warmup_ratio=0.0)
    s = run.state
    n_eval, size = s.data.num_examples("eval"), 2 * s.spec.train.batch_size
    periodic = [e for e in evals(seen) if e.examples != n_eval]
    assert [e.step for e in periodic][:2] == [0, 2]
    for event in periodic:
        assert event.examples == size and event.fraction == pytest.approx(size / n_eval)
        assert event.coverage.startswith(f"seeded sample: {size} of {n_eval:,} blocks")
    # The same examples and masks every time: the weights barely move, so the losses agree.
    assert periodic[1].eval_loss == pytest.approx(periodic[0].eval_loss, abs=1e-5)
    said = [e.text for e in seen if isinstance(e, Message) and "seeded sample" in e.text]
    assert len(said) == 1 and f"{size} of {n_eval:,} eval blocks" in said[0]

    # The loss is that of the seeded sample's examples, worked out by hand.
    indices = seeded_sample(n_eval, size, s.spec.train.seed)
    assert list(eval_set(s.data, s.spec).indices) == indices
    events: list = []
    evaluate = Evaluator(s, SimpleNamespace(check_eval=lambda loss, step: None), [], events.append)
    sample_loss = evaluate(0)
    assert sample_loss == pytest.approx(recomputed_loss(s, indices), rel=1e-5)
    assert sample_loss == pytest.approx(periodic[-1].eval_loss, abs=1e-5)

    # The final eval covers every example whatever eval_batches says.
    whole_loss = evaluate(0, whole=True)
    final = [e for e in events if isinstance(e, EvalDone)][-1]
    assert final.examples == n_eval and final.fraction == 1.0 and final.coverage == f"whole eval split ({n_eval:,} blocks)"
    assert whole_loss == pytest.approx(recomputed_loss(s, list(range(n_eval))), rel=1e-5)
    assert s.progress.coverage["examples"] == n_eval
    last = evals(seen)[-1]
    assert last.step == 4 and last.examples == n_eval and last.eval_loss == pytest.approx(whole_loss, abs=1e-5)


def test_all_covers_every_example_every_time(corpus: Path, tmp_path: Path) -> None:
    run, seen = tiny_run(corpus, tmp_path / "runs", eval_batches="all", objective="clm")
    n_eval = run.state.data.num_examples("eval")
    done = evals(seen)
    assert len(done) == 3 and all(e.examples == n_eval and e.fraction == 1.0 for e in done)


def test_the_eval_line_says_what_it_covered() -> None:
    console = Console(record=True, width=200)
    printer = RichPrinter(console)
    printer(EvalDone(step=5, eval_loss=2.31, perplexity=10.1, examples=240, fraction=240 / 1694,
                     coverage="seeded sample: 240 of 1,694 blocks (14%)"))
    printer(EvalDone(step=6, eval_loss=2.3, perplexity=10.0, examples=1694, coverage="whole eval split (1,694 blocks)"))
    printer(EvalDone(step=7, eval_loss=2.2, perplexity=9.0))  # a run from before coverage was recorded
    lines = console.export_text().splitlines()
    assert "loss 2.3100 (sample 14%)" in lines[0]
    assert "loss 2.3000 (whole split)" in lines[1]
    assert "loss 2.2000  ppl" in lines[2]


