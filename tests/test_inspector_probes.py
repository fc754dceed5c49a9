"""Probes recorded by the engine at every eval, the timeline, run pairing and forgetting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_overrides
from inspector_models import built_models
from typer.testing import CliRunner

from workbench.cli import app
from workbench.config import RunSpec
from workbench.engine import run_spec
from workbench.inspector import inspect_models
from workbench.inspector.loading import ModelCache
from workbench.inspector.probes import PROBES_FILE, probe_timeline, record_probes
from workbench.models import resolve_base
from workbench.runs.events import EvalDone
from workbench.runs.rundir import RunDir

runner = CliRunner()


@pytest.fixture(scope="module")
def scratch_run(story_corpus, tmp_path_factory) -> Path:
    """A real tiny MLM run from scratch: evals at steps 0, 2 and 4, checkpoints at 2 and 4."""
    out = tmp_path_factory.mktemp("probe-runs")
    spec = RunSpec(corpus=str(story_corpus), objective="mlm", name="scratch", out=str(out),
                   **tiny_overrides(max_steps=4, eval_interval=2))
    return run_spec(spec).run_dir


@pytest.fixture(scope="module")
def finetune_run(scratch_run, story_corpus) -> Path:
    spec = RunSpec(corpus=str(story_corpus), objective="mlm", base=str(scratch_run), name="tuned",
                   out=str(scratch_run.parent), **tiny_overrides(max_steps=2, eval_interval=2))
    return run_spec(spec).run_dir


def test_probes_recorded_at_every_eval(scratch_run):
    events = RunDir(scratch_run).events()
    evals = [e for e in events if e["event"] == "eval" and e.get("split", "eval") == "eval"]
    lines = (scratch_run / PROBES_FILE).read_text().splitlines()
    assert len(lines) == len(evals) == 3
    assert [json.loads(line)["step"] for line in lines] == [e["step"] for e in evals] == [0, 2, 4]
    assert len([e for e in events if e["event"] == "probes"]) == 3
    mask, prompt, pair = json.loads(lines[-1])["probes"]
    assert mask["kind"] == "mask" and mask["method"] == "masked LM" and len(mask["top"]) == 5
    assert prompt["kind"] == "next" and prompt["approximate"]
    assert pair["kind"] == "pair" and "no next-sentence head" in pair["skipped"]


def test_probe_timeline_cli(scratch_run):
    timeline = probe_timeline(scratch_run)
    assert list(timeline) == RunSpec().probes
    assert [p["step"] for p in timeline["The cat sat on the [MASK]."]] == [0, 2, 4]
    result = runner.invoke(app, ["inspect", str(scratch_run), "--probes"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "probe: The cat sat on the [MASK]." in result.output and "top-1" in result.output
    doc = json.loads(runner.invoke(app, ["inspect", str(scratch_run), "--probes", "--json"]).output)
    assert doc["models"] is None and len(doc["probes"]["The dog wagged its"]) == 3


def test_from_scratch_run_compares_initial_weights_with_final_model(scratch_run, tmp_path):
    assert (scratch_run / "checkpoints" / "initial").is_dir(), "a new from-scratch run saves checkpoints/initial/ (Saver.initial)"
    report = inspect_models([str(scratch_run)], cache=ModelCache())
    assert "from scratch" in report.pairing.note and "initial weights (step 0" in report.pairing.note
    assert (report.pairing.label_a, report.pairing.label_b) == ("initial (step 0)", "final")
    assert [q.mode for q in report.queries] == ["mask", "next", "pair"]  # the run's probes by default
    old = Path(shutil.copytree(scratch_run, tmp_path / "old"))  # a run from before initial/ was saved
    shutil.rmtree(old / "checkpoints" / "initial")
    report = inspect_models([str(old)], cache=ModelCache())
    assert "earliest surviving checkpoint step-0000002" in report.pairing.note and "not the untrained model" in report.pairing.note
    assert (report.pairing.label_a, report.pairing.label_b) == ("step 2", "final")


def test_finetune_run_compares_base_with_result_and_forgetting_is_shown(finetune_run, scratch_run, tmp_path):
    report = inspect_models([str(finetune_run)], ["the cat sat on the [MASK] ."], cache=ModelCache())
    assert report.pairing.a.model_dir == str((scratch_run / "model").resolve())
    assert (report.pairing.label_a, report.pairing.label_b) == ("base", "tuned")
    base_evals = [e for e in RunDir(finetune_run).events() if e["event"] == "eval" and e.get("split") == "base_eval"]
    if base_evals:  # the fine-tuning engine's forgetting hook is installed
        assert report.forgetting["evals"] == len(base_evals) and "eval_loss" in report.forgetting["curves"]
    else:
        assert report.forgetting is None
    copy = Path(shutil.copytree(scratch_run, tmp_path / "with-forgetting"))
    with (copy / "metrics.jsonl").open("a") as handle:
        for step, loss in ((0, 3.0), (1, 3.2), (2, 3.5)):
            handle.write(json.dumps(EvalDone(step=step, eval_loss=loss, perplexity=2.0 ** loss, split="base_eval").to_json()) + "\n")
    result = runner.invoke(app, ["inspect", str(copy), "--text", "the cat sat on the [MASK] ."], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "forgetting" in result.output and "+0.5000" in result.output
    doc = json.loads(runner.invoke(app, ["inspect", str(copy), "--text", "the [MASK] .", "--json"]).output)
    assert doc["forgetting"]["curves"]["eval_loss"] == {"first": 3.0, "last": 3.5, "change": 0.5}


def test_record_probes_restores_train_mode_and_ranks_fills_on_causal_models(tmp_path_factory):
    tiny = built_models(tmp_path_factory)
    loaded = ModelCache().get(resolve_base(str(tiny["clm_tuned"])))
    loaded.model.train()
    mask, prompt, pair = record_probes(loaded.model, loaded.tokenizer,
                                       ["the cat sat on the [MASK] .", "the dog sat on the", "i have a cat . ||| it loves to purr ."])
    assert loaded.model.training
    assert mask["top"][0]["token"] == "mat" and mask["approximate"] and "likelihood" in mask["method"]
    assert prompt["top"][0]["token"] == "␣mat" or prompt["top"][0]["token"].strip("␣ ") == "mat"
    assert pair["skipped"]
    loaded.model.eval()
