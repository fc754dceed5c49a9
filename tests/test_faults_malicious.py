"""Hostile model folders and checkpoints, given as --base, to --resume and to the inspector.

Every one must be refused with a one-line message, and the marker file that loading a
pickle (or running shipped code) would create must never appear.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest
from faults_helpers import REPO, fault_spec
from typer.testing import CliRunner

from workbench.cli import app
from workbench.engine import TrainingRun
from workbench.errors import WorkbenchError
from workbench.models import load_model, resolve_base
from workbench.runs import checkpoint as ckpt

HOSTILE = ("pickle_bin", "pickle_pt", "trainer_pickles", "auto_map", "truncated", "huge_header")


class _Marker:
    """Unpickling this opens (creates) the marker file: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _manifest(folder: Path) -> None:
    """Rewrite the manifest as an attacker would, so the checkpoint counts as complete."""
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != ckpt.MANIFEST}
    (folder / ckpt.MANIFEST).write_text(json.dumps({"step": 0, "files": files}), encoding="utf-8")


def make_hostile(folder: Path, kind: str, marker: Path) -> Path:
    """Turn a valid saved model folder into hostile variant ``kind``."""
    poison = pickle.dumps(_Marker(marker), protocol=2)
    weights = folder / "model.safetensors"
    if kind == "pickle_bin":
        weights.unlink()
        (folder / "pytorch_model.bin").write_bytes(poison)
    elif kind == "pickle_pt":
        weights.unlink()
        (folder / "model.pt").write_bytes(poison)
    elif kind == "trainer_pickles":
        weights.unlink()
        (folder / "training_args.bin").write_bytes(poison)
        (folder / "optimizer.pt").write_bytes(poison)
    elif kind == "auto_map":
        config = json.loads((folder / "config.json").read_text())
        config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    elif kind == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif kind == "huge_header":
        header = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
        weights.write_bytes(struct.pack("<Q", 1 << 40) + header + b"\0" * 64)
    if (folder / ckpt.MANIFEST).exists():
        _manifest(folder)
    return folder


@pytest.fixture(scope="module")
def trained(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    return TrainingRun(fault_spec(story_corpus, out, "victim", max_steps=2, save_interval=1, eval_interval=2)).run().run_dir


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, (result.output or "") + (getattr(result, "stderr", "") or "")


def _refused(code: int, output: str) -> None:
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors, output
    assert "Traceback" not in output


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_base_is_refused(kind: str, trained: Path, story_corpus: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    base = make_hostile(shutil.copytree(trained / "model", tmp_path / "base"), kind, marker)
    with pytest.raises(WorkbenchError) as caught:
        load_model(resolve_base(str(base)), __import__("transformers").AutoModelForCausalLM)
    assert "\n" not in str(caught.value)
    code, output = _cli("run", "--base", str(base), "--corpus", str(story_corpus), "--objective", "clm",
                        "--max-steps", "1", "--batch-size", "4", "--seq-len", "16", "--out", str(tmp_path / "runs"))
    _refused(code, output)
    assert not marker.exists()


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_checkpoint_is_refused_on_resume(kind: str, trained: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    run_dir = shutil.copytree(trained, tmp_path / "victim")
    for folder in ckpt.complete_checkpoints(run_dir / "checkpoints"):
        make_hostile(folder, kind, marker)
    assert ckpt.complete_checkpoints(run_dir / "checkpoints"), "the hostile checkpoints must look complete"
    code, output = _cli("run", "--resume", str(run_dir), "--out", str(tmp_path))
    _refused(code, output)
    assert re.search(r"pickle|auto_map|cannot load|unreadable|not a workbench checkpoint", output), output
    assert not marker.exists()


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_model_is_refused_by_the_inspector(kind: str, trained: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("workbench.inspector.loading") is None:
        pytest.skip("the inspector is not there yet")
    from workbench.inspector.loading import ModelCache

    marker = tmp_path / "PWNED"
    hostile = make_hostile(shutil.copytree(trained / "model", tmp_path / "hostile"), kind, marker)
    with pytest.raises(WorkbenchError):
        ModelCache().get(resolve_base(str(hostile)))
    code, output = _cli("inspect", str(hostile), str(trained / "model"), "--text", "The cat sat")
    _refused(code, output)
    assert not marker.exists()


def test_a_stray_pickle_next_to_safetensors_is_never_loaded(trained: Path, tmp_path: Path) -> None:
    """A base that has both (a common hub layout) loads the safetensors and ignores the pickle."""
    marker = tmp_path / "PWNED"
    base = shutil.copytree(trained / "model", tmp_path / "both")
    (base / "pytorch_model.bin").write_bytes(pickle.dumps(_Marker(marker), protocol=2))
    load_model(resolve_base(str(base)), __import__("transformers").AutoModelForCausalLM)
    assert not marker.exists()


FORBIDDEN = ("weights_only=False", "pickle.load", "trust_remote_code=True")


def test_source_never_unpickles_or_runs_remote_code() -> None:
    offenders = []
    for path in sorted((REPO / "workbench").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in FORBIDDEN:
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert not offenders, offenders


def test_minimum_safe_versions_are_pinned() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    torch_pin = re.search(r'"torch>=(\d+)\.(\d+)', pyproject)
    transformers_pin = re.search(r'"transformers>=(\d+)\.(\d+)', pyproject)
    assert torch_pin and (int(torch_pin[1]), int(torch_pin[2])) >= (2, 6)  # weights_only=True by default
    assert transformers_pin and int(transformers_pin[1]) >= 5
