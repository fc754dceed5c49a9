"""A transfer study's folder: a sweep folder whose grid axis is ``base``, plus ``transfer.toml``.

``transfer.toml`` records where each base came from, so a reader can put each fine-tune
against the pre-training behind its base (step, tokens, FLOPs)::

    [[pretrain]]
    path = "checkpoints/bert-general"   # as the user gave it
    relative = "../bert-general"        # from the study folder, when it sits beside the study
    objective = "mlm"
    steps = [8, 16, 32, 64]             # its kept steps the study fine-tunes from
    initial = true                      # and its untrained weights (RUN@initial)

    [[extra]]
    base = "/path/to/all-MiniLM-L6-v2"  # extra bases, as given

It is a file of its own, beside ``sweep.toml``, so that ``sweep.toml`` stays a plain sweep spec
that ``workbench sweep --resume`` reads unchanged. No absolute path of the study itself is
stored; a pre-training run beside the study is found again after both move together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tomli_w

from workbench.config import tomllib
from workbench.runs.rundir import RunDir, atomic_write_text, read_small_file

TRANSFER_FILE = "transfer.toml"


def is_transfer(folder: Path) -> bool:
    try:
        return (folder / TRANSFER_FILE).is_file()
    except OSError:
        return False


def pretrain_entry(study: Path, given: str, objective: str, steps: list[int], initial: bool) -> dict[str, Any]:
    """One ``[[pretrain]]`` entry; ``relative`` when the run sits under the study's parent."""
    entry: dict[str, Any] = {"path": given, "objective": objective, "steps": steps, "initial": initial}
    run, parent = Path(given).resolve(), study.resolve().parent
    if run == parent or parent in run.parents:
        entry["relative"] = os.path.relpath(run, study.resolve())
    return entry


def write_transfer(study: Path, pretrain: list[dict[str, Any]], extras: list[str]) -> None:
    atomic_write_text(study / TRANSFER_FILE, tomli_w.dumps({"pretrain": pretrain, "extra": [{"base": b} for b in extras]}))


def read_transfer(study: Path) -> tuple[dict[str, Any], list[str]]:
    """``transfer.toml`` as a dict with ``pretrain`` and ``extra`` lists of tables, and what could not be read."""
    try:
        data = tomllib.loads(read_small_file(study / TRANSFER_FILE).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {"pretrain": [], "extra": []}, [f"{TRANSFER_FILE} is unreadable ({exc})"]
    problems = []
    for key in ("pretrain", "extra"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            problems.append(f"{TRANSFER_FILE}: {key} is not a list of tables")
            data[key] = []
    return data, problems


def source_run(study: Path, entry: dict[str, Any]) -> Path | None:
    """The pre-training run of an entry: beside the study (``relative``) first, then as given."""
    candidates = [study / entry["relative"]] if isinstance(entry.get("relative"), str) else []
    if isinstance(entry.get("path"), str):
        candidates.append(Path(entry["path"]).expanduser())
    return next((c for c in candidates if (c / "run.toml").is_file()), None)


def tokens_at(run_path: Path, step: int) -> tuple[int | None, str]:
    """Pre-training tokens seen by ``step`` and where the figure comes from: the kept
    checkpoint's ``trainer_state.json`` (exact), else a step event at exactly that step."""
    state = run_path / "checkpoints" / f"step-{step:07d}" / "trainer_state.json"
    try:
        tokens = json.loads(read_small_file(state).decode("utf-8")).get("tokens_seen")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        tokens = None
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        return tokens, f"trainer_state.json of step {step}"
    for event in reversed(RunDir(run_path).events()):
        if event.get("event") == "step" and event.get("step") == step and isinstance(event.get("tokens"), int):
            return event["tokens"], f"metrics.jsonl step {step}"
    return None, f"no record of step {step}"


def parameters_of(run_path: Path) -> int | None:
    """The parameter count a run's start event gives (what 6 x N x D uses for N)."""
    for event in RunDir(run_path).events():
        if event.get("event") == "started" and isinstance(event.get("parameters"), int):
            return event["parameters"]
    return None
