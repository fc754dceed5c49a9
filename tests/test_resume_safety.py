"""Resume deletes nothing and trusts nothing it has not checked (issue 13, items 1 and 7).

Checkpoints carry a content hash per file; one that fails verification is moved to
``checkpoints/.rejected/`` (never deleted) and the newest verified one is used; a run whose
checkpoints all fail stops with one line instead of starting again from step 0; a manifest
that cannot be read is an error, not a reason to move anything; impossible values in
``trainer_state.json`` are one-line errors naming the file and the key.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import one_line_error
from faults_helpers import REPO, fault_spec

from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.errors import RunDirError
from workbench.runs import checkpoint as ckpt

STEPS = ("step-0000002", "step-0000004")


@pytest.fixture(scope="module")
def finished(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step run with checkpoints at steps 2 and 4 (the final one)."""
    out = tmp_path_factory.mktemp("runs")
    spec = fault_spec(story_corpus, out, "victim", max_steps=4, save_interval=2, eval_interval=2, keep_checkpoints=3)
    run_dir = TrainingRun(spec).run().run_dir
    assert [p.name for p in ckpt.complete_checkpoints(run_dir / "checkpoints")] == list(STEPS)
    return run_dir


def _copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "victim"))


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (by relative path) with its sha256: what must not change."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _kept(run_dir: Path) -> dict[str, str]:
    """What a failed resume must leave as it was: the checkpoints and the final model."""
    return {**_tree(run_dir / "checkpoints"), **{f"model/{k}": v for k, v in _tree(run_dir / "model").items()}}


def _rejected(root: Path, name: str) -> Path:
    """The one folder ``name`` became under ``.rejected/`` (its reason is in the name)."""
    (found,) = [p for p in (root / ckpt.REJECTED).iterdir() if p.name.startswith(f"{name}-")]
    return found


def _edit_state(folder: Path, change: Any) -> None:
    path = folder / "trainer_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state = change(state) if callable(change) else change
    path.write_text(json.dumps(state), encoding="utf-8")


def _rehash(folder: Path, step: int | None = None) -> None:
    """Rewrite the manifest for the files as they are now, as a user who edits a checkpoint on
    purpose (or an attacker) would: verification passes, the schema must catch the rest."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != ckpt.MANIFEST)
    manifest = {"step": ckpt._step_of(folder) if step is None else step, "files": {p.name: p.stat().st_size for p in files},
                "hash": "sha256", "digests": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}}
    (folder / ckpt.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def _legacy_manifest(folder: Path) -> None:
    """The manifest an older workbench wrote: sizes only."""
    manifest = json.loads((folder / ckpt.MANIFEST).read_text(encoding="utf-8"))
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != ckpt.MANIFEST}
    (folder / ckpt.MANIFEST).write_text(json.dumps({"step": manifest["step"], "files": files}), encoding="utf-8")


def _resume(run_dir: Path, out: Path) -> tuple[Any, list[str]]:
    messages: list[str] = []
    result = resume_run(run_dir, out=str(out), listeners=[lambda e: messages.append(e.text) if e.kind == "message" else None])
    return result, messages


def _started(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["resumed_from_step"] for line in lines if '"started"' in line]


def _cli_resume(run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "workbench", "run", "--resume", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=str(out), timeout=300)




# ---------------------------------------------------------------------- the manifest
def test_the_manifest_records_a_sha256_per_file_and_verification_checks_it(finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path) / "checkpoints" / STEPS[-1]
    manifest = json.loads((folder / ckpt.MANIFEST).read_text(encoding="utf-8"))
    files = {p.name for p in folder.iterdir() if p.name != ckpt.MANIFEST}
    assert manifest["hash"] == "sha256" and set(manifest["digests"]) == set(manifest["files"]) == files
    for name, digest in manifest["digests"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert ckpt.verify(folder) is None
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # the same size: a size check cannot see it
    weights.write_bytes(bytes(data))
    assert ckpt.is_complete(folder)  # the cheap check (rotation's) still passes...
    reason, detail = ckpt.verify(folder)  # ...the content check does not
    assert reason == "hash-mismatch" and "model.safetensors" in detail


# ---------------------------------------------------------------------- Why 1
def test_an_edited_checkpoint_is_moved_aside_and_resume_uses_the_one_before(finished: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    newest = run_dir / "checkpoints" / STEPS[-1]
    _edit_state(newest, lambda s: dict(s, note="harmless?"))
    edited = _tree(newest)
    result, messages = _resume(run_dir, tmp_path)
    assert (result.status, result.step) == ("finished", 4)
    assert _started(run_dir) == [0, 2]
    moved = _rejected(run_dir / "checkpoints", STEPS[-1])  # an added key changes the size: size-mismatch
    assert _tree(moved) == edited  # kept as it was, for the user to inspect
    assert any(STEPS[-1] in m and "trainer_state.json" in m and str(moved) in m for m in messages), messages
    assert [p.name for p in ckpt.complete_checkpoints(run_dir / "checkpoints")] == list(STEPS)  # step 4 saved anew


@pytest.mark.slow  # CLI processes
def test_every_checkpoint_edited_stops_with_one_line_and_deletes_nothing(finished: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    root = run_dir / "checkpoints"
    for name in STEPS:
        _edit_state(root / name, lambda s: dict(s, note="harmless?"))
    before = {name: _tree(root / name) for name in STEPS}
    model, started = _tree(run_dir / "model"), _started(run_dir)
    line = one_line_error(_cli_resume(run_dir, tmp_path), fix=True)
    assert "no checkpoint verifies" in line and str(root) in line and "step 0" in line
    for name in STEPS:  # every checkpoint is still there, as it was
        assert _tree(_rejected(root, name)) == before[name]
    assert _tree(run_dir / "model") == model
    assert _started(run_dir) == started  # no run from step 0 started
    with pytest.raises(RunDirError, match="only checkpoints set aside earlier remain"):  # and not on a second try either
        resume_run(run_dir, out=str(tmp_path))
    assert _tree(run_dir / "model") == model


def test_old_checkpoints_without_hashes_still_resume_with_a_note(finished: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    root = run_dir / "checkpoints"
    for name in STEPS:
        _legacy_manifest(root / name)
    _edit_state(root / STEPS[-1], lambda s: dict(s, note="harmless?"))  # the case: sizes differ now
    result, messages = _resume(run_dir, tmp_path)
    assert (result.status, _started(run_dir)) == ("finished", [0, 2])
    assert (root / ckpt.REJECTED / f"{STEPS[-1]}-size-mismatch" / "trainer_state.json").is_file()
    assert any(STEPS[0] in m and "no content hashes" in m for m in messages), messages


def test_an_unreadable_manifest_is_an_error_and_moves_nothing(finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _copy(finished, tmp_path)
    before = _kept(run_dir)
    real = Path.read_bytes

    def flaky(self: Path) -> bytes:
        if self.name == ckpt.MANIFEST:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", flaky)
    with pytest.raises(RunDirError) as caught:
        resume_run(run_dir, out=str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and ckpt.MANIFEST in message and "cannot read" in message and "Fix:" in message
    monkeypatch.undo()
    assert _kept(run_dir) == before and not (run_dir / "checkpoints" / ckpt.REJECTED).exists()


# ---------------------------------------------------------------------- Why 7
def _drop_scheduler(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "scheduler"}


TAMPERED = {
    "step -1": lambda s: dict(s, step=-1),
    "step abc": lambda s: dict(s, step="abc"),
    "no scheduler": _drop_scheduler,
    "a list": [],
    "step 10**12": lambda s: dict(s, step=10**12),
    "no last_epoch": lambda s: dict(s, scheduler={k: v for k, v in s["scheduler"].items() if k != "last_epoch"}),
    "micro_batch 0": lambda s: dict(s, micro_batch=0),
    "eval_loss text": lambda s: dict(s, eval_loss="low"),
}
KEYS = {"step -1": "'step'", "step abc": "'step'", "no scheduler": "'scheduler'", "a list": "not an object",
        "step 10**12": "'step'", "no last_epoch": "'scheduler.last_epoch'", "micro_batch 0": "'micro_batch'",
        "eval_loss text": "'eval_loss'"}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_an_impossible_trainer_state_is_one_line_and_nothing_is_deleted(case: str, finished: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    newest = run_dir / "checkpoints" / STEPS[-1]
    _edit_state(newest, TAMPERED[case])
    _rehash(newest)  # the hash vouches for the edit: the schema has to catch it
    before = _kept(run_dir)
    with pytest.raises(RunDirError) as caught:
        resume_run(run_dir, out=str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and str(newest / "trainer_state.json") in message and KEYS[case] in message, message
    assert "Fix:" in message and ckpt.REJECTED in message  # the fix: set it aside, resume from the one before
    assert _kept(run_dir) == before


@pytest.mark.slow  # CLI processes
def test_a_step_beyond_the_run_everywhere_is_refused_through_the_cli(finished: Path, tmp_path: Path) -> None:
    """Folder, manifest, state and schedule all say 10**12 (consistent): the run's 4 steps still refuse it."""
    run_dir = _copy(finished, tmp_path)
    far = run_dir / "checkpoints" / ckpt.step_dir_name(10**12)
    (run_dir / "checkpoints" / STEPS[-1]).rename(far)
    _edit_state(far, lambda s: dict(s, step=10**12, scheduler=dict(s["scheduler"], last_epoch=10**12)))
    _rehash(far)
    before = _kept(run_dir)
    line = one_line_error(_cli_resume(run_dir, tmp_path), fix=True)
    assert "trainer_state.json" in line and "beyond the run's 4 steps" in line and "--max-steps" in line
    assert _kept(run_dir) == before  # model/ of the finished run included


def test_same_size_weight_corruption_is_rejected_before_loading(finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    import workbench.engine.setup as setup

    run_dir = _copy(finished, tmp_path)
    weights = run_dir / "checkpoints" / STEPS[-1] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    for offset in range(len(data) // 2, len(data), 997):  # garbage in the tensors, same size
        data[offset] ^= 0x5A
    weights.write_bytes(bytes(data))
    final = safetensors.torch.load_file(str(run_dir / "model" / "model.safetensors"))
    loaded: list[str] = []
    real_load = setup.load_model
    monkeypatch.setattr(setup, "load_model", lambda ref, *a, **k: loaded.append(ref.model_dir) or real_load(ref, *a, **k))
    result, messages = _resume(run_dir, tmp_path)
    assert (result.status, _started(run_dir)) == ("finished", [0, 2])  # not `failed`, no "lower the learning rate"
    assert [Path(p).name for p in loaded] == [STEPS[0]]  # the corrupted weights were never loaded
    assert any("model.safetensors" in m and "hash-mismatch" in m for m in messages), messages
    assert (run_dir / "checkpoints" / ckpt.REJECTED / f"{STEPS[-1]}-hash-mismatch" / "model.safetensors").read_bytes() == bytes(data)
    again = safetensors.torch.load_file(str(run_dir / "model" / "model.safetensors"))
    assert again.keys() == final.keys()  # exact resume: the final model comes out as it was
    assert all((again[k] - final[k]).abs().max() <= 1e-5 for k in final)


# ---------------------------------------------------------------------- temp folders, rotation, saves
def test_only_dead_writers_temp_folders_are_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f".tmp-step-0000006-{gone.pid}", f".tmp-delete-step-0000002-{gone.pid}", ".tmp-delete-step-0000001",
                 f".tmp-step-0000006-{live.pid}", f".tmp-delete-step-0000003-{live.pid}", f".tmp-step-0000007-{os.getpid()}",
                 ".tmp-something-else", ".rejected"]
        for name in names:
            (tmp_path / name).mkdir()
            (tmp_path / name / "f").write_text("x")
        removed = {p.name for p in ckpt.clean_incomplete(tmp_path)}
        assert removed == set(names[:3])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])
    finally:
        live.kill()
        live.wait()


def test_torn_and_short_step_folders_are_moved_aside_not_deleted(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    good = Path(shutil.copytree(finished / "checkpoints" / STEPS[0], root / STEPS[0]))
    torn = Path(shutil.copytree(good, root / "step-0000008"))
    (torn / ckpt.MANIFEST).unlink()  # not a save of ours: ours rename only after the manifest
    short = Path(shutil.copytree(good, root / "step-0000012"))
    with (short / "optimizer.safetensors").open("r+b") as handle:
        handle.truncate(10)
    before = {"step-0000008": _tree(torn), "step-0000012": _tree(short)}
    messages: list[str] = []
    removed = {p.name for p in ckpt.clean_incomplete(root, lambda e: messages.append(e.text))}
    assert removed == {"step-0000008", "step-0000012"}
    assert _tree(root / ckpt.REJECTED / "step-0000008-no-manifest") == before["step-0000008"]
    assert _tree(root / ckpt.REJECTED / "step-0000012-size-mismatch") == before["step-0000012"]
    assert len(messages) == 2 and all("\n" not in m and "nothing deleted" in m for m in messages)
    assert ckpt.newest_verified(root) == root / STEPS[0]


def test_rotation_never_touches_rejected_checkpoints(finished: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    root = run_dir / "checkpoints"
    shutil.copytree(root / STEPS[0], root / ckpt.REJECTED / f"{STEPS[0]}-hash-mismatch")
    kept = _tree(root / ckpt.REJECTED)
    ckpt.rotate(root, keep=0)
    assert _tree(root / ckpt.REJECTED) == kept
    left = [p.name for p in root.iterdir() if not p.name.startswith(".") and p.name != ckpt.INITIAL]
    assert sorted(left) == sorted(p.name for p in ckpt.complete_checkpoints(root))


def test_a_damaged_folder_in_the_way_of_a_save_is_moved_aside(finished: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    source = finished / "checkpoints" / STEPS[0]
    model, tokenizer = GPT2LMHeadModel.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    root = tmp_path / "checkpoints"
    (root / "step-0000005").mkdir(parents=True)
    (root / "step-0000005" / "notes.txt").write_text("mine")
    saved = ckpt.save_checkpoint(root, 5, model, tokenizer, optimizer, scheduler, {})
    assert ckpt.verify(saved) is None
    assert (root / ckpt.REJECTED / "step-0000005-incomplete" / "notes.txt").read_text() == "mine"
