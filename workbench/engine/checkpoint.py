"""Atomic, pickle-free checkpoints for exact resume.

A checkpoint is written into a hidden temp folder, every file fsynced, ``MANIFEST.json``
written last, then the folder is renamed into place. A folder without a manifest (or whose
files do not match it) is incomplete: resume ignores it and cleanup removes it. Model
weights go through ``save_pretrained`` (safetensors), optimizer tensors into
``optimizer.safetensors``, everything else into JSON: nothing here is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from workbench.errors import RunDirError, TrainingError

MANIFEST = "MANIFEST.json"
PREFIX = "step-"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for file in folder.iterdir():
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def optimizer_to_safetensors(optimizer: torch.optim.Optimizer, path: Path) -> None:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    metadata = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(path), metadata=metadata)


def optimizer_from_safetensors(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    tensors = load_file(str(path))
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, slots in json.loads(metadata.get("scalars", "{}")).items():
        state.setdefault(int(index), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:07d}"


def save_checkpoint(
    root: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """Write a complete checkpoint for ``step`` or raise; never leaves a half folder in place."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    if is_complete(final):
        return final
    tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        optimizer_to_safetensors(optimizer, tmp / "optimizer.safetensors")
        full_state = dict(state, step=step, scheduler=scheduler.state_dict())
        (tmp / "trainer_state.json").write_text(json.dumps(full_state, default=float), encoding="utf-8")
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}), encoding="utf-8")
        _fsync_tree(tmp)
        if final.exists():  # an incomplete folder from a crash: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TrainingError(
            f"could not write the checkpoint for step {step} ({exc.strerror or exc}); the previous checkpoint is intact",
            where=str(root),
            fix="free disk space (df -h) and resume with `workbench run --resume`",
        ) from None
    return final


def is_complete(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return all((folder / name).is_file() and (folder / name).stat().st_size == size for name, size in data["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and is_complete(p)]
    return sorted(found, key=lambda p: p.name)


def clean_incomplete(root: Path) -> list[Path]:
    """Remove temp folders and step folders without a valid manifest."""
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if entry.is_dir() and (entry.name.startswith(".tmp-") or (entry.name.startswith(PREFIX) and not is_complete(entry))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def read_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"checkpoint state is unreadable ({exc})", where=str(folder), fix="delete this checkpoint folder and resume from an earlier one") from None


def rotate(root: Path, keep: int) -> None:
    """Delete old checkpoints, always keeping the newest ``keep`` and the best (lowest eval loss)."""
    checkpoints = complete_checkpoints(root)
    if len(checkpoints) <= keep:
        return
    best, best_loss = None, float("inf")
    for folder in checkpoints:
        loss = read_state(folder).get("eval_loss")
        if loss is not None and loss < best_loss:
            best, best_loss = folder, loss
    protected = set(checkpoints[-max(1, keep):])
    if best is not None:
        protected.add(best)
    for folder in checkpoints:
        if folder not in protected:
            shutil.rmtree(folder, ignore_errors=True)


def ensure_free_space(folder: Path, needed_bytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise TrainingError(
            f"only {free / 1e6:.0f} MB free, a checkpoint needs about {needed_bytes / 1e6:.0f} MB",
            where=str(folder),
            fix="free disk space or pass --out on a larger disk",
        )
