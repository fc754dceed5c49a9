"""Atomic, pickle-free checkpoints for exact resume.

A checkpoint is written into a hidden temp folder, every file fsynced, ``MANIFEST.json``
written last, then the folder is renamed into place. A folder without a manifest (or whose
files do not match it) is incomplete: resume ignores it and cleanup removes it. Model
weights go through ``save_pretrained`` (safetensors), optimizer tensors into
``optimizer.safetensors``, everything else into JSON: nothing here is ever unpickled.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.errors import RunDirError, TrainingError

MANIFEST = "MANIFEST.json"
PREFIX = "step-"
TMP_PREFIX = ".tmp-"
REQUIRED_FILES = ("config.json", "optimizer.safetensors", "trainer_state.json")
"""Besides ``*.safetensors`` weights: what a resumable checkpoint must hold."""
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _fsync_dir(path: Path, strict: bool = False) -> None:
    """Flush a directory entry. Filesystems that cannot fsync a directory (EINVAL) are
    fine; with ``strict`` any other failure (ENOSPC, EIO) is raised."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if strict and exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for file in folder.iterdir():
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder, strict=True)


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


def optimizer_from_safetensors(optimizer: torch.optim.Optimizer, path: Path,
                               load: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Restore the optimizer (or hand the state to ``load``, e.g. a sharded optimizer's
    loader); a damaged or foreign file is a one-line ``RunDirError``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
        state: dict[int, dict[str, Any]] = {}
        for name, tensor in tensors.items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
        for index, slots in json.loads(metadata.get("scalars", "{}")).items():
            state.setdefault(int(index), {}).update(slots)
        full = {"state": state, "param_groups": json.loads(metadata["param_groups"])}
        (load or optimizer.load_state_dict)(full)
    except (OSError, SafetensorError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise RunDirError(
            f"optimizer state is unreadable or does not match the model ({' '.join(str(exc).split())[:200]})",
            where=str(path),
            fix="delete this checkpoint folder to resume from an earlier one, or start a new run",
        ) from None


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
    final = root / step_dir_name(step)
    if is_complete(final):
        return final
    tmp = root / f"{TMP_PREFIX}{step_dir_name(step)}-{os.getpid()}"
    renamed = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
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
        renamed = True
        _fsync_dir(root)
    except (OSError, SafetensorError) as exc:  # disk full, quota, read-only, I/O error
        reason = (exc.strerror if isinstance(exc, OSError) else None) or " ".join(str(exc).split())[:200]
        disk = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise TrainingError(
            f"could not write the checkpoint for step {step} ({reason}); the previous checkpoint is intact",
            where=str(root),
            fix=("free disk space (df -h) and " if disk else "check the disk, then ") + "resume with `workbench run --resume`",
        ) from None
    finally:
        if not renamed:
            shutil.rmtree(tmp, ignore_errors=True)
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
    return sorted(found, key=_step_of)


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name[len(PREFIX):])
    except ValueError:
        return -1


def check_resumable(folder: Path) -> None:
    """Refuse a checkpoint that is not one of ours before anything in it is read.

    Only safetensors and JSON are ever loaded; a checkpoint carrying pickles
    (``optimizer.pt``, ``training_args.bin``: another trainer's, or planted) is refused
    outright rather than half-used.
    """
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise RunDirError(
            f"checkpoint holds pickle files ({', '.join(pickles)}); the workbench never loads pickles",
            where=str(folder),
            fix="delete these files if you trust nothing in them, or start a new run",
        )
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        config = {}
    if isinstance(config, dict) and "auto_map" in config:
        raise RunDirError(
            "checkpoint config.json has auto_map, which would run code shipped with it; the workbench never runs remote code",
            where=str(folder / "config.json"),
            fix="delete this checkpoint folder to resume from an earlier one, or start a new run",
        )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any(folder.glob("*.safetensors")) or missing:
        raise RunDirError(
            f"not a workbench checkpoint (missing {', '.join(missing) or 'safetensors weights'})",
            where=str(folder),
            fix="delete this checkpoint folder to resume from an earlier one, or start a new run",
        )


def clean_incomplete(root: Path) -> list[Path]:
    """Remove temp folders and step folders without a valid manifest."""
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if entry.is_dir() and (entry.name.startswith(TMP_PREFIX) or (entry.name.startswith(PREFIX) and not is_complete(entry))):
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
        try:
            loss = read_state(folder).get("eval_loss")
        except RunDirError:
            continue
        if isinstance(loss, (int, float)) and loss < best_loss:
            best, best_loss = folder, loss
    protected = set(checkpoints[-max(1, keep):])
    if best is not None:
        protected.add(best)
    for folder in checkpoints:
        if folder not in protected:
            remove_checkpoint(folder)


def remove_checkpoint(folder: Path) -> None:
    """Rename out of the ``step-*`` namespace first, so a kill mid-delete leaves a temp
    folder (cleaned on resume), never a half-deleted step folder."""
    doomed = folder.with_name(f"{TMP_PREFIX}delete-{folder.name}")
    try:
        os.replace(folder, doomed)
    except OSError:
        doomed = folder
    shutil.rmtree(doomed, ignore_errors=True)


def ensure_free_space(folder: Path, needed_bytes: int) -> None:
    """Refuse to start (or go on) when a checkpoint would not fit: a clear error beats ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise TrainingError(
            f"only {free / 1e6:.0f} MB free, a checkpoint needs about {needed_bytes / 1e6:.0f} MB",
            where=str(folder),
            fix="free disk space or pass --out on a larger disk",
        )
