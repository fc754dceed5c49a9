"""Checkpoints kept out of rotation (``keep_steps``), and bases named ``RUN@STEP``.

A pre-training run with ``keep_steps`` saves a checkpoint at each of those steps (even off
its save interval) and ``rotate`` never deletes them, so a later fine-tune can start from
any of them (``--base RUN@STEP``, ``workbench transfer``). The steps are fixed once the
run's plan is known and recorded in ``run.toml`` as ``[kept] steps = [...]``; a resume reads
them from there, so ``--max-steps`` on a resume does not move them.

``RUN@initial`` names the run's untrained weights (``checkpoints/initial/``): the same
shape and tokenizer, no pre-training.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from workbench.errors import BaseModelError, SpecError
from workbench.runs.rundir import RunDir, atomic_write_text

KEPT_TABLE = "kept"
INITIAL_WORD = "initial"
STEP_PREFIX = "step-"


def planned_steps(text: str, total: int | None, where: str = "keep_steps") -> list[int]:
    """The steps ``keep_steps`` names for a run of ``total`` steps (None: a time budget).

    ``100,200,400``: those steps; ``log:K``: K steps spread evenly in log(step), ending at the
    last step, each twice the one before when the run is long enough (``log:4`` of 1000 steps:
    125, 250, 500, 1000), fewer when a short run has fewer distinct steps. A step past the end,
    or ``log:K`` without a step count, is a one-line ``SpecError``."""
    text = text.replace(" ", "")
    if text.startswith("log:"):
        if total is None:
            raise SpecError(f"{where} {text} spreads checkpoints over the run's steps, and a time budget alone has no "
                            "step count", fix="give --max-steps or --epochs, or list the steps (e.g. 100,200,400)")
        count = int(text[4:])
        first = max(1.0, total / 2 ** (count - 1))
        ratio = (total / first) ** (1 / (count - 1)) if count > 1 else 1.0
        return sorted({min(total, max(1, round(first * ratio ** i))) for i in range(count)} | {total})
    steps = sorted({int(part) for part in text.split(",")})
    if total is not None and steps[-1] > total:
        raise SpecError(f"{where} {steps[-1]} is past the run's last step ({total})",
                        fix=f"keep steps up to {total}, or train longer (--max-steps)")
    return steps


def recorded_steps(run: RunDir) -> list[int] | None:
    """``[kept] steps`` of ``run.toml``; None when the run records none (or it is unreadable)."""
    try:
        data = tomllib.loads(run.run_toml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    steps = data.get(KEPT_TABLE, {}).get("steps") if isinstance(data.get(KEPT_TABLE), dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in steps):
        return None
    return sorted(steps)


def record_steps(run: RunDir, steps: list[int]) -> None:
    """Write ``[kept] steps`` into ``run.toml`` (atomically; the rest of it unchanged)."""
    data = tomllib.loads(run.run_toml.read_text(encoding="utf-8"))
    data[KEPT_TABLE] = {"steps": sorted(steps)}
    atomic_write_text(run.run_toml, tomli_w.dumps(data))


def step_folder(run_path: Path, step: int) -> Path:
    return run_path / "checkpoints" / f"{STEP_PREFIX}{step:07d}"


def kept_on_disk(run_path: Path) -> list[int]:
    """The recorded kept steps whose checkpoint folder exists now (a running run has not
    reached the later ones yet)."""
    steps = recorded_steps(RunDir(run_path)) or []
    return [step for step in steps if (step_folder(run_path, step) / "config.json").is_file()]


def saved_steps(run_path: Path) -> list[int]:
    """Every ``step-N`` checkpoint folder of a run, kept or not, oldest first."""
    root = run_path / "checkpoints"
    if not root.is_dir():
        return []
    steps = []
    for folder in root.iterdir():
        name = folder.name
        if name.startswith(STEP_PREFIX) and name[len(STEP_PREFIX):].isdigit() and (folder / "config.json").is_file():
            steps.append(int(name[len(STEP_PREFIX):]))
    return sorted(steps)


def split_at(base: str) -> tuple[str, str] | None:
    """``RUN@STEP`` / ``RUN@initial`` -> (RUN, STEP or "initial"); None for any other text."""
    run, sep, at = base.rpartition("@")
    if not sep or not run or not (at.isdigit() or at == INITIAL_WORD):
        return None
    return run, at


def base_at(base: str) -> tuple[Path, Path, int | None] | None:
    """For ``RUN@STEP``: (run folder, the checkpoint folder to load, the step; None for
    ``@initial``), refused in one line when the run or the step is not there. None when
    ``base`` is not of that form or names no run folder (then it is another kind of base)."""
    parts = split_at(base)
    if parts is None:
        return None
    run_path = Path(parts[0]).expanduser()
    if not (run_path / "run.toml").is_file():
        return None
    return run_path, *_checkpoint_of(base, run_path, parts[1])


def _checkpoint_of(base: str, run_path: Path, at: str) -> tuple[Path, int | None]:
    listed = ", ".join(str(s) for s in saved_steps(run_path)) or "none"
    if at == INITIAL_WORD:
        folder = run_path / "checkpoints" / INITIAL_WORD
        if not (folder / "config.json").is_file():
            raise BaseModelError("the run has no initial weights (checkpoints/initial/: a run from a base has none)",
                                 where=base, fix=f"pick a from-scratch run, or a saved step of this one: {listed}")
        return folder, None
    step = int(at)
    folder = step_folder(run_path, step)
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"the run has no checkpoint at step {step}", where=base,
                             fix=f"use one of its saved steps: {listed} (or @initial); keep steps with --keep-steps")
    method = _method_of(run_path)
    if method != "full":
        raise BaseModelError(f"the run trained with method {method}, so its step checkpoints hold only the trained "
                             "weights, not a whole model", where=base,
                             fix="use the run's final model (--base RUN), or a checkpoint of a method full run")
    return folder, step


def _method_of(run_path: Path) -> str:
    try:
        data: dict[str, Any] = tomllib.loads((run_path / "run.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "full"
    spec = data.get("spec")
    return str(spec.get("method", "full")) if isinstance(spec, dict) else "full"
