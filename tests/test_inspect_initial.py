"""``checkpoints/initial/``: a from-scratch run's untrained weights, kept for ``workbench inspect``.

``Saver.initial`` writes them right after set-up (the runner calls it for new from-scratch
runs); they must be exactly the freshly initialised model of the run's spec and seed, load
with ``AutoModelForCausalLM``, survive rotation and resume untouched, and be what
``workbench inspect RUN`` compares the final model with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from conftest import tiny_overrides

from workbench.config import RunSpec
from workbench.engine.runner import TrainingRun, resume_run
from workbench.engine.saving import Saver
from workbench.engine.setup import set_up
from workbench.engine.spec_resolution import resolve_spec
from workbench.inspector.pairing import pair_for_run
from workbench.runs import checkpoint as ckpt
from workbench.runs.listing import list_runs
from workbench.runs.rundir import RunDir


def scratch_spec(corpus: Path, out: Path, **extra) -> RunSpec:
    fields = tiny_overrides(max_steps=4, eval_interval=2, eval_batches=1, keep_checkpoints=0)
    return RunSpec(**{**fields, "objective": "clm", "corpus": str(corpus), "out": str(out), "device": "cpu", **extra})


@pytest.fixture(scope="module")
def scratch_run(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny clm run from scratch, 4 steps, checkpoints at 2 and 4, keep_checkpoints=0."""
    out = tmp_path_factory.mktemp("initial-runs")
    result = TrainingRun(scratch_spec(story_corpus, out, name="scratch")).run()
    assert result.status == "finished"
    return result.run_dir


def fresh_model(run: Path) -> torch.nn.Module:
    """The run's model as set-up builds it before the first step: same spec, same seed."""
    spec, task = resolve_spec(RunDir(run).spec())
    tokenizer = transformers.AutoTokenizer.from_pretrained(run / "tokenizer")
    torch.manual_seed(spec.train.seed)
    return task.build_model(spec, tokenizer)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [name for name in sa if not torch.equal(sa[name], sb[name])]
    assert not different, f"tensors differ: {different[:5]}"


def test_initial_weights_are_the_freshly_initialised_model(scratch_run: Path):
    initial = scratch_run / "checkpoints" / ckpt.INITIAL
    assert initial.is_dir() and not initial.is_symlink()
    assert (initial / "config.json").is_file() and (initial / "model.safetensors").is_file()
    assert (initial / "tokenizer.json").is_file()
    assert not [p for p in initial.parent.iterdir() if p.name.startswith(ckpt.TMP_PREFIX)]  # no temp folder left
    loaded = transformers.AutoModelForCausalLM.from_pretrained(initial)
    assert_same_weights(loaded, fresh_model(scratch_run))
    final = transformers.AutoModelForCausalLM.from_pretrained(scratch_run / "model")
    assert any(not torch.equal(p, q) for p, q in zip(loaded.state_dict().values(), final.state_dict().values()))


def test_rotation_keeps_initial_and_readers_ignore_it(scratch_run: Path):
    root = scratch_run / "checkpoints"
    assert [p.name for p in ckpt.complete_checkpoints(root)] == [ckpt.step_dir_name(4)]  # step 2 rotated away (keep 0)
    ckpt.rotate(root, 0)
    assert (root / ckpt.INITIAL / "model.safetensors").is_file()
    assert ckpt.newest_verified(root) == root / ckpt.step_dir_name(4)
    assert not (root / ckpt.REJECTED).exists()  # initial/ has no manifest, and is not moved aside for it
    row = next(r for r in list_runs(str(scratch_run.parent)) if r.name == scratch_run.name)
    assert row.state == "finished" and not row.problems


def test_pairing_compares_initial_weights_with_the_final_model(scratch_run: Path):
    pairing = pair_for_run(RunDir(scratch_run))
    assert pairing.a is not None and pairing.b is not None
    assert pairing.a.model_dir == str((scratch_run / "checkpoints" / ckpt.INITIAL).resolve())
    assert pairing.b.model_dir == str((scratch_run / "model").resolve())
    assert (pairing.label_a, pairing.label_b) == ("initial (step 0)", "final")
    assert "initial weights (step 0, before training) vs final model/" in pairing.note


def test_old_run_without_initial_says_it_has_no_untrained_model(scratch_run: Path, tmp_path: Path):
    old = Path(shutil.copytree(scratch_run, tmp_path / "old"))
    shutil.rmtree(old / "checkpoints" / ckpt.INITIAL)
    from workbench.errors import RunDirError

    with pytest.raises(RunDirError, match="only one .*no checkpoints/initial/"):  # keep 0: one checkpoint left
        pair_for_run(RunDir(old))
    extra = old / "checkpoints" / ckpt.step_dir_name(2)
    shutil.copytree(old / "checkpoints" / ckpt.step_dir_name(4), extra)
    manifest = json.loads((extra / ckpt.MANIFEST).read_text())
    (extra / ckpt.MANIFEST).write_text(json.dumps({**manifest, "step": 2}))
    pairing = pair_for_run(RunDir(old))
    assert (pairing.label_a, pairing.label_b) == ("step 2", "final")
    assert "earliest surviving checkpoint step-0000002" in pairing.note and "not the untrained model" in pairing.note


def test_resume_leaves_initial_as_it_is(scratch_run: Path, tmp_path: Path):
    run = Path(shutil.copytree(scratch_run, tmp_path / "runs" / "resumed"))
    weights = run / "checkpoints" / ckpt.INITIAL / "model.safetensors"
    before = weights.read_bytes(), weights.stat().st_mtime_ns
    result = resume_run(run, out=str(run.parent), overrides={"max_steps": 6})
    assert result.status == "finished" and result.step == 6
    assert (weights.read_bytes(), weights.stat().st_mtime_ns) == before
    events = RunDir(run).events()
    assert any(e["event"] == "message" and "Resumed from step-0000004" in e.get("text", "") for e in events)


def test_initial_is_written_once_atomically_and_only_for_new_scratch_runs(story_corpus: Path, tmp_path: Path):
    events: list = []
    state = set_up(scratch_spec(story_corpus, tmp_path / "runs", name="direct"), None, str(tmp_path / "runs"),
                   events.append, on_run_dir=lambda run_dir, is_main: None)
    try:
        root = state.run_dir.checkpoints
        dead = root / f"{ckpt.TMP_PREFIX}{ckpt.INITIAL}-{2 ** 22 + 12345}"  # a save cut short by a kill
        dead.mkdir(parents=True)
        saver = Saver(state, None, None, events.append)  # type: ignore[arg-type]
        saver.initial()
        weights = root / ckpt.INITIAL / "model.safetensors"
        assert weights.is_file() and not (root / f"{ckpt.TMP_PREFIX}{ckpt.INITIAL}-{os.getpid()}").exists()
        stamp = weights.stat().st_mtime_ns
        saver.initial()  # already there: nothing rewritten
        assert weights.stat().st_mtime_ns == stamp
        assert_same_weights(transformers.AutoModelForCausalLM.from_pretrained(weights.parent), fresh_model(state.run_dir.path))
        assert ckpt.clean_incomplete(root) == [dead] and not dead.exists() and weights.is_file()
        state.spec = dataclasses.replace(state.spec, base="some-base")  # a run from a base compares with its base instead
        shutil.rmtree(weights.parent)
        saver.initial()
        assert not weights.parent.exists()
    finally:
        state.lock.release()


def test_initial_is_never_written_through_a_symlink(story_corpus: Path, tmp_path: Path):
    from workbench.errors import RunDirError

    state = set_up(scratch_spec(story_corpus, tmp_path / "runs", name="linked"), None, str(tmp_path / "runs"),
                   lambda event: None, on_run_dir=lambda run_dir, is_main: None)
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        state.run_dir.checkpoints.mkdir(exist_ok=True)
        (state.run_dir.checkpoints / ckpt.INITIAL).symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(RunDirError, match="symbolic link"):
            Saver(state, None, None, lambda event: None).initial()  # type: ignore[arg-type]
        assert not any(elsewhere.iterdir())
    finally:
        state.lock.release()
