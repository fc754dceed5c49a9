"""The experimenter's knobs: model shape, optimiser and schedule fields, random windows,
and a time budget that drives the schedule. Real tiny runs, real files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import one_line_error, tiny_overrides
from typer.testing import CliRunner

from workbench.cli import app
from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.order import BatchOrder, seed_generators
from workbench.engine.plan import LrShape, Plan
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import SpecError
from workbench.runs.control import RunControl
from workbench.tasks.base import BlockData, windows

runner = CliRunner()


def cli_error(*args: str) -> str:
    return one_line_error(runner.invoke(app, list(args), catch_exceptions=False))


def events(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row.get("event") == kind]


# ---------------------------------------------------------------------- shape
def test_preset_fills_only_the_shape_fields_left_unset() -> None:
    spec, _ = resolve_spec(RunSpec(objective="clm", size="small", n_layer=3, seq_len=64))
    shape = spec.model.shape
    assert (shape.n_layer, shape.n_head, shape.d_model, shape.d_ff, shape.dropout) == (3, 8, 256, 1024, 0.1)
    assert (shape.max_position, shape.tie_embeddings) == (64, True)
    spec, _ = resolve_spec(RunSpec(objective="mlm", d_model=96, n_head=3))
    assert (spec.model.shape.d_model, spec.model.shape.d_ff, spec.model.shape.n_layer) == (96, 384, 2)  # d_ff follows the width given


def test_shape_fields_build_the_model_and_its_parameter_count(story_corpus: Path, run_root: Path) -> None:
    """nanoGPT's shakespeare-char shape through the spec: the saved config has it, untied
    embeddings add exactly one vocab x width matrix, and the count is announced before step 1."""
    shape = dict(n_layer=3, n_head=2, d_model=48, d_ff=80, max_position=40, dropout=0.0, tokenizer="char")
    counts = {}
    for tie in ("on", "off"):
        seen: list = []
        spec = RunSpec(corpus=str(story_corpus), objective="clm", out=str(run_root), name=f"shape-{tie}",
                       tie_embeddings=tie, **shape, **tiny_overrides(max_steps=2))
        result = TrainingRun(spec, listeners=[seen.append]).run()
        config = json.loads((result.model_dir / "config.json").read_text())
        assert (config["n_layer"], config["n_head"], config["n_embd"], config["n_inner"], config["n_positions"]) == (3, 2, 48, 80, 40)
        started = [e for e in seen if e.kind == "started"][0]
        first_step = [i for i, e in enumerate(seen) if e.kind == "step"][0]
        assert seen.index(started) < first_step
        counts[tie] = (started.parameters, config["vocab_size"])
    (tied, vocab), (untied, _) = counts["on"], counts["off"]
    assert untied - tied == vocab * 48


def test_bert_objectives_take_the_same_shape_fields() -> None:
    from workbench.models import bert_config

    spec, _ = resolve_spec(RunSpec(objective="mlm", n_layer=1, n_head=2, d_model=32, dropout=0.2, max_position=48, seq_len=48))

    class Tok:
        pad_token_id = 0

    config = bert_config(spec.model.shape, 100, Tok())
    assert (config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size) == (1, 2, 32, 128)
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.max_position_embeddings) == (0.2, 0.2, 48)


@pytest.mark.parametrize(("flags", "needles"), [
    (["--n-head", "3", "--d-model", "128"], ["n_head 3 does not divide d_model 128"]),
    (["--dropout", "-0.1"], ["--dropout"]),
    (["--dropout", "nan"], ["--dropout"]),
    (["--beta2", "1"], ["--beta2", "below 1"]),
    (["--eps", "0"], ["--eps"]),
    (["--min-lr-ratio", "2"], ["--min-lr-ratio", "at most 1"]),
    (["--n-layer", "0"], ["--n-layer", "at least 1"]),
    (["--eval-batches", "lots"], ["eval_batches", "all, auto"]),
    (["--eval-batches", "0"], ["eval"]),
    (["--seq-len", "64", "--max-position", "32"], ["max_position 32"]),
    (["--objective", "sentiment", "--sampling", "random", "--base", "x"], []),
])
def test_bad_knobs_are_one_line_errors(flags: list[str], needles: list[str], run_root: Path) -> None:
    text = cli_error("run", *flags, "--out", str(run_root))
    for needle in needles:
        assert needle in text
    assert not run_root.exists() or not any(run_root.iterdir())


def test_shape_fields_are_refused_with_a_base(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="n_layer shapes a model from scratch, but --base fixes the shape"):
        resolve_spec(RunSpec(objective="clm", base=str(tmp_path), n_layer=4), base_config=_gpt2_config())


def test_sampling_is_refused_where_there_is_no_packed_text() -> None:
    with pytest.raises(SpecError, match="sampling"):
        resolve_spec(RunSpec(objective="nsp", sampling="random"))


def test_seq_len_beyond_a_base_positions_is_clamped_by_default_and_refused_when_asked() -> None:
    config = _gpt2_config(n_positions=32)
    spec, _ = resolve_spec(RunSpec(objective="generation", base="somewhere"), base_config=config)
    assert spec.data.seq_len == 32
    with pytest.raises(SpecError, match="seq_len 64 is longer than the base allows"):
        resolve_spec(RunSpec(objective="generation", base="somewhere", seq_len=64), base_config=config)


def _gpt2_config(**extra):
    from transformers import GPT2Config

    return GPT2Config(n_layer=1, n_head=2, n_embd=16, **extra)


# ---------------------------------------------------------------------- optimiser and schedule
def test_optimizer_fields_reach_adamw_and_the_floor_holds(story_corpus: Path, run_root: Path) -> None:
    spec = RunSpec(corpus=str(story_corpus), objective="clm", out=str(run_root), beta1=0.8, beta2=0.95, eps=1e-6,
                   weight_decay=0.2, schedule="cosine", min_lr_ratio=0.1, warmup_steps=3, lr=1e-3,
                   **tiny_overrides(max_steps=12, log_interval=1))
    run = TrainingRun(spec)
    result = run.run()
    group = run.state.optimizer.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.8, 0.95), 1e-6, 0.2)
    lrs = {e["step"]: e["lr"] for e in events(result.run_dir, "step")}
    assert lrs[1] == pytest.approx(1e-3 / 3) and lrs[3] == pytest.approx(1e-3)
    assert lrs[12] == pytest.approx(1e-4)  # the cosine ends at the floor, not at 0
    assert min(lrs.values()) >= 1e-4 - 1e-12
    toml = (result.run_dir / "run.toml").read_text()
    assert "min_lr_ratio = 0.1" in toml and "beta2 = 0.95" in toml and "warmup_steps = 3" in toml


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_budget_shape_matches_the_step_shape_at_the_same_fraction(schedule: str) -> None:
    shape = LrShape(schedule, 0.2, None, 0.1)
    steps = Plan(200, None, 10, None)
    budget = Plan(None, 100.0, None, None, fraction_per_step=1 / 200)
    for step in (0, 10, 20, 55, 100, 150, 199, 200):
        assert shape(budget, step) == pytest.approx(shape(steps, step), abs=1e-9)
    assert shape(budget, 200) == pytest.approx(0.2)


def test_budget_plan_evaluates_every_tenth_once_and_estimates_the_total() -> None:
    plan = Plan(None, 50.0, None, None)
    plan.measured(step=10, spent_s=5.0, since_step=0, since_s=0.0)  # 0.5 s a step: 100 steps
    assert plan.estimated_total(10) == 100
    due = [step for step in range(10, 101) if plan.eval_due(step)]
    assert due == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    plan.resumed_at(45, 22.5)
    assert plan.next_eval == pytest.approx(0.5)


@pytest.mark.slow
def test_a_time_budget_alone_warms_up_decays_to_the_floor_and_says_why_it_stopped(story_corpus: Path, run_root: Path) -> None:
    spec = RunSpec(corpus=str(story_corpus), objective="clm", out=str(run_root), time_budget=20, lr=1e-3,
                   min_lr_ratio=0.1, **tiny_overrides(log_interval=1, eval_interval=100_000))
    result = TrainingRun(spec).run()
    lrs = [e["lr"] for e in events(result.run_dir, "step")]
    assert len(lrs) >= 10, "too few steps to see a schedule"
    assert max(lrs) >= 0.9 * 1e-3
    assert lrs[-1] <= 1e-4 + 0.1 * 1e-3  # within 10% of the peak above the floor
    assert json.loads((result.run_dir / "status.json").read_text())["stopped"] == "time budget"
    assert json.loads((result.run_dir / "summary.json").read_text())["stopped"] == "time budget"
    assert all(e["total_steps"] < 1_000_000 for e in events(result.run_dir, "step"))
    assert "max_steps" not in (result.run_dir / "run.toml").read_text()


# ---------------------------------------------------------------------- windows and seeding
def test_random_windows_are_slices_of_the_packed_text_seeded_by_step() -> None:
    blocks = torch.arange(40).reshape(5, 8)
    rows = windows(blocks, [0, 3, 32])
    assert rows.tolist() == [list(range(0, 8)), list(range(3, 11)), list(range(32, 40))]

    class Arrowish:  # the memory-mapped path: only blocks[indices] and .shape
        shape = (5, 8)

        def __getitem__(self, indices):
            return blocks[indices]

    assert torch.equal(windows(Arrowish(), [3, 13, 32]), windows(blocks, [3, 13, 32]))
    data = BlockData(train=blocks, eval=blocks, transform=lambda b: {"input_ids": b}, sampling="random")
    order = BatchOrder(data.num_examples("train"), 4, seed=1, windows=data.window_starts())
    assert data.window_starts() == 33
    assert order.indices(7) == BatchOrder(5, 4, seed=1, windows=33).indices(7)
    assert order.indices(7) != order.indices(8)
    assert all(0 <= i <= 32 for step in range(50) for i in order.indices(step))


def test_step_seeding_reaches_the_cpu_generator_and_is_repeatable() -> None:
    seed_generators(123, torch.device("cpu"))
    first = torch.rand(3)
    seed_generators(123, torch.device("cpu"))
    assert torch.equal(first, torch.rand(3))


def test_resume_with_random_windows_is_exact(story_corpus: Path, run_root: Path) -> None:
    """Windows are a function of (seed, step): a stop and resume repeats the straight run."""
    common = dict(corpus=str(story_corpus), objective="clm", out=str(run_root), sampling="random", max_steps=10,
                  **tiny_overrides(eval_interval=5, log_interval=1))
    whole = TrainingRun(RunSpec(name="whole", **common)).run()
    control = RunControl()
    TrainingRun(RunSpec(name="part", **common), control=control,
                listeners=[lambda e: control.request_stop() if e.kind == "step" and e.step == 4 else None]).run()
    resumed = TrainingRun(RunSpec(out=str(run_root)), resume=run_root / "part").run()
    assert resumed.step == 10
    full = {e["step"]: e["loss"] for e in events(whole.run_dir, "step")}
    split = {e["step"]: e["loss"] for e in events(resumed.run_dir, "step")}
    assert sorted(full) == sorted(split) == list(range(1, 11))
    assert all(math.isclose(full[k], split[k], rel_tol=1e-6) for k in range(1, 11))


def test_throughput_after_a_resume_is_this_spans_tokens_over_this_spans_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume that recorded 1M tokens and 100 s before: 10k new tokens in 5 s is 2k tokens/s
    (the old summary divided all 1.01M tokens by the 5 s); the budget counts all 105 s."""
    from workbench.engine import meter as meter_module

    clock = iter([1000.0, 1005.0, 1005.0, 1005.0])
    monkeypatch.setattr(meter_module.time, "perf_counter", lambda: next(clock))
    meter = meter_module.ThroughputMeter(1_000_000, start_step=50, time_budget=104.0, prior_s=100.0)
    meter.add(10_000)
    assert meter.finish() == 1_010_000
    assert meter.span_rate() == pytest.approx(2000.0)
    assert meter.spent() == pytest.approx(105.0) and meter.over_budget()


def test_every_new_knob_is_in_the_tuis_objective_form_and_round_trips_through_toml(tmp_path: Path) -> None:
    from workbench.tui.panes.objective import form_fields

    knobs = {"n_layer": 4, "n_head": 4, "d_model": 128, "d_ff": 512, "dropout": 0.0, "max_position": 64,
             "tie_embeddings": "off", "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "warmup_steps": 100,
             "min_lr_ratio": 0.1, "eval_batches": "all", "holdout": "tail", "sampling": "blocks"}
    form = form_fields()
    assert set(knobs) <= set(form)
    assert form["eval_batches"].convert("12") == 12 and form["eval_batches"].convert("all") == "all"
    path = tmp_path / "spec.toml"
    path.write_text(RunSpec(**knobs).to_toml(), encoding="utf-8")
    loaded = RunSpec.from_toml(path)
    assert {k: getattr(loaded, k) for k in knobs} == knobs


def test_each_objective_gets_its_own_warmup_unless_one_is_given() -> None:
    """The fine-tuning defaults' 10% warmup used to be shadowed by the spec's 0.05."""
    assert resolve_spec(RunSpec(objective="clm"))[0].optim.warmup_ratio == 0.05
    assert resolve_spec(RunSpec(objective="sentiment", base="b"), base_config=_bert_config())[0].optim.warmup_ratio == 0.1
    assert resolve_spec(RunSpec(objective="sentiment", base="b", warmup_ratio=0.0), base_config=_bert_config())[0].optim.warmup_ratio == 0.0


def _bert_config():
    from transformers import BertConfig

    return BertConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=16, intermediate_size=32)
