"""Disk full at every write of a save, rotation, partial folders, and the free-space check."""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from faults_helpers import fault_spec
from safetensors.torch import load_file

import workbench.runs.checkpoint as ckpt
from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.errors import TrainingError


class FailAtCall:
    """Raise ``OSError(ENOSPC)`` at the n-th write-side call: file opens for writing,
    ``save_file`` (ours and transformers'), fsync, mkdir and the final ``os.replace``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int):
        self.n, self.calls = n, 0
        real_open, real_replace, real_fsync, real_mkdir = builtins.open, os.replace, os.fsync, Path.mkdir
        real_save = ckpt.save_file
        import transformers.modeling_utils as modeling_utils

        real_hf_save = modeling_utils.safe_save_file

        def tick() -> None:
            self.calls += 1
            if self.calls == self.n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def fake_open(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+"):
                tick()
            return real_open(file, mode, *args, **kwargs)

        def wrap(real):
            def call(*args, **kwargs):
                tick()
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "replace", wrap(real_replace))
        monkeypatch.setattr(os, "fsync", wrap(real_fsync))
        monkeypatch.setattr(Path, "mkdir", wrap(real_mkdir))
        monkeypatch.setattr(ckpt, "save_file", wrap(real_save))
        monkeypatch.setattr(modeling_utils, "safe_save_file", wrap(real_hf_save))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_disk_full_at_every_write_of_a_save_keeps_the_previous_checkpoint(parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer, optimizer, scheduler = parts
    root = tmp_path / "checkpoints"
    previous = ckpt.save_checkpoint(root, 5, model, tokenizer, optimizer, scheduler, {"eval_loss": 1.0})
    before = _snapshot(previous)
    failures = 0
    for n in range(1, 200):
        with monkeypatch.context() as patch:
            fail = FailAtCall(patch, n)
            try:
                ckpt.save_checkpoint(root, 10, model, tokenizer, optimizer, scheduler, {"eval_loss": 0.5})
            except TrainingError as exc:
                failures += 1
                message = str(exc)
                assert "could not write the checkpoint for step 10" in message and "previous checkpoint is intact" in message
                assert "free disk space" in message and "\n" not in message
            else:
                # Either the n-th call was never reached, or it was the directory fsync after
                # the rename (the commit point), which cannot un-complete the new checkpoint.
                assert fail.calls <= n
                break
        assert _snapshot(previous) == before, f"previous checkpoint changed when write {n} failed"
        assert [p.name for p in root.iterdir()] == [previous.name], f"leftovers after failure {n}"
        assert ckpt.complete_checkpoints(root) == [previous]
    else:
        pytest.fail("the save never succeeded")
    assert failures >= 15  # many distinct failure points were exercised
    assert [p.name for p in ckpt.complete_checkpoints(root)] == ["step-0000005", "step-0000010"]


def test_safetensors_write_error_is_reported_too(parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import SafetensorError

    model, tokenizer, optimizer, scheduler = parts

    def broken(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(ckpt, "save_file", broken)
    with pytest.raises(TrainingError, match="could not write the checkpoint for step 3"):
        ckpt.save_checkpoint(tmp_path, 3, model, tokenizer, optimizer, scheduler, {})
    assert list(tmp_path.iterdir()) == []


def test_partial_folders_are_ignored_and_cleaned(parts, tmp_path: Path) -> None:
    model, tokenizer, optimizer, scheduler = parts
    good = ckpt.save_checkpoint(tmp_path, 4, model, tokenizer, optimizer, scheduler, {})
    torn = tmp_path / "step-0000008"
    shutil.copytree(good, torn)
    (torn / ckpt.MANIFEST).unlink()  # killed before the manifest
    short = tmp_path / "step-0000012"
    shutil.copytree(good, short)
    with (short / "optimizer.safetensors").open("r+b") as handle:  # a file shorter than its manifest says
        handle.truncate(10)
    (tmp_path / ".tmp-step-0000016-123").mkdir()
    assert ckpt.complete_checkpoints(tmp_path) == [good]
    removed = {p.name for p in ckpt.clean_incomplete(tmp_path)}
    assert removed == {"step-0000008", "step-0000012", ".tmp-step-0000016-123"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rejected", "step-0000004"]  # moved aside, never deleted


def test_rotation_keeps_the_newest_and_the_best(parts, tmp_path: Path) -> None:
    model, tokenizer, optimizer, scheduler = parts
    for step, loss in [(1, 3.0), (2, 1.0), (3, 2.5), (4, 2.0), (5, 2.2), (6, None)]:
        ckpt.save_checkpoint(tmp_path, step, model, tokenizer, optimizer, scheduler, {"eval_loss": loss})
        ckpt.rotate(tmp_path, keep=1)
        names = [p.name for p in ckpt.complete_checkpoints(tmp_path)]
        assert names[-1] == f"step-{step:07d}"  # the newest survives
        if step >= 2:
            assert "step-0000002" in names  # the best survives
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-0000002", "step-0000006"]
    ckpt.rotate(tmp_path, keep=0)  # even keep=0 keeps the newest
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-0000002", "step-0000006"]


def test_checkpoint_holds_only_safetensors_and_json(parts, tmp_path: Path) -> None:
    model, tokenizer, optimizer, scheduler = parts
    folder = ckpt.save_checkpoint(tmp_path, 1, model, tokenizer, optimizer, scheduler, {"eval_loss": 1.0})
    for path in folder.iterdir():
        assert path.suffix in (".safetensors", ".json", ".txt"), path.name
        if path.suffix == ".json":
            json.loads(path.read_text())
    assert load_file(str(folder / "optimizer.safetensors"))


def test_save_failure_mid_run_fails_cleanly_and_resume_continues(story_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ckpt.save_file
    calls = {"n": 0}

    def full_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", full_on_second)
    spec = fault_spec(story_corpus, tmp_path, "full", max_steps=15)
    with pytest.raises(TrainingError, match=r"could not write the checkpoint for step 10 \(No space left on device\)"):
        TrainingRun(spec).run()
    run_dir = tmp_path / "full"
    assert [p.name for p in ckpt.complete_checkpoints(run_dir / "checkpoints")] == ["step-0000005"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
    monkeypatch.setattr(ckpt, "save_file", real)
    result = resume_run(run_dir, out=str(tmp_path))
    assert (result.status, result.step) == ("finished", 15)


def test_run_refuses_to_start_without_room_for_a_checkpoint(story_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, (10 << 30) - (1 << 20), 1 << 20))
    with pytest.raises(TrainingError, match=r"only 1 MB free, a checkpoint needs about \d+ MB.*larger disk"):
        TrainingRun(fault_spec(story_corpus, tmp_path, "no-room", max_steps=3)).run()
    assert not ckpt.complete_checkpoints(tmp_path / "no-room" / "checkpoints")
