"""Which two models to compare: a run's base and result, or any two models named.

``workbench inspect RUN`` compares the run's base (``base_model_dir`` in run.toml) with
its final ``model/``. A from-scratch run has no base, so it compares its untrained start,
``checkpoints/initial/`` (saved before the first step), with its final model (or its newest
checkpoint while it still runs). A run saved before ``initial/`` existed falls back to its
earliest surviving checkpoint, which is already trained, and the note says so. The choice
is stated in ``Pairing.note`` (and the labels) and printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.engine import checkpoint as ckpt
from workbench.engine.rundir import RunDir, find_run
from workbench.errors import RunDirError, WorkbenchError
from workbench.models import BaseRef, resolve_base


@dataclass
class Pairing:
    a: BaseRef | None  # None only in a probes-only report
    b: BaseRef | None
    label_a: str
    label_b: str
    note: str
    run: RunDir | None = None


def _local(path: Path, given: str) -> BaseRef:
    return BaseRef(given=given, kind="local", model_dir=str(path.resolve()))


def pair_for_run(run: RunDir) -> Pairing:
    """Base vs result for one run directory."""
    meta = run.meta()
    spec = run.read_run_toml().get("spec", {})
    complete = ckpt.complete_checkpoints(run.checkpoints) if run.checkpoints.is_dir() else []
    if (run.model_dir / "config.json").is_file():
        tuned, tuned_note = _local(run.model_dir, str(run.model_dir)), "final model/"
    elif complete:
        tuned, tuned_note = _local(complete[-1], str(complete[-1])), f"newest checkpoint {complete[-1].name} (no final model yet)"
    else:
        raise RunDirError("the run has no final model and no complete checkpoint yet", where=str(run.path),
                          fix="wait for its first checkpoint, or pick a finished run (`workbench runs`)")
    base_dir = meta.get("base_model_dir") or ""
    base_given = meta.get("base") or spec.get("base") or ""
    if base_dir or base_given:
        if base_dir and meta.get("base_kind") != "hub" and not Path(base_dir).is_dir():
            raise RunDirError("the run's base model folder is gone", where=base_dir,
                              fix=f"restore it, or compare two models explicitly: workbench inspect BASE {run.model_dir}")
        base = BaseRef(given=base_given or base_dir, kind=meta.get("base_kind", "local"), model_dir=base_dir) if base_dir else resolve_base(base_given)
        return Pairing(base, tuned, "base", "tuned", f"run {run.path.name}: base {base.given} vs {tuned_note}", run)
    return _scratch_pair(run, tuned, tuned_note, complete)


def _scratch_pair(run: RunDir, tuned: BaseRef, tuned_note: str, complete: list[Path]) -> Pairing:
    """A from-scratch run: its initial weights vs ``tuned``, or (a run from before
    ``initial/`` was saved) its earliest surviving checkpoint, said plainly."""
    label_b = "final" if tuned_note == "final model/" else "newest"
    initial = ckpt.initial_weights(run.checkpoints)
    if initial is not None:
        return Pairing(_local(initial, str(initial)), tuned, "initial (step 0)", label_b,
                       f"run {run.path.name} was trained from scratch: initial weights (step 0, before training) vs {tuned_note}", run)
    earlier = complete[:-1]  # the newest checkpoint holds the same weights as the final model
    if not earlier:
        raise RunDirError("a from-scratch run needs two snapshots to compare, and this one has only one "
                          "(no checkpoints/initial/: an older workbench did not save the initial weights)",
                          where=str(run.path), fix="compare against another model: workbench inspect OTHER RUN")
    first = earlier[0]
    step = ckpt_step(first)
    return Pairing(_local(first, str(first)), tuned, f"step {step}", label_b,
                   f"run {run.path.name} was trained from scratch but has no initial weights saved (an older workbench): "
                   f"earliest surviving checkpoint {first.name} (already trained {step} step{'' if step == 1 else 's'}, not the untrained model) "
                   f"vs {tuned_note}", run)


def ckpt_step(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix(ckpt.PREFIX))
    except ValueError:
        return -1


def choose_pair(models: list[str], out: str = "checkpoints") -> Pairing:
    """``[RUN]`` -> the run's base vs result; ``[A, B]`` -> those two models."""
    if len(models) == 1:
        try:
            run = find_run(models[0], out=out)
        except RunDirError:
            raise WorkbenchError("one model given, and it is not a run directory", where=models[0],
                                 fix="pass a run (its base vs its result) or two models: workbench inspect BASE TUNED") from None
        return pair_for_run(run)
    if len(models) != 2:
        raise WorkbenchError(f"expected a run or two models, got {len(models)} arguments", fix="workbench inspect RUN, or workbench inspect BASE TUNED")
    a, b = (_resolve(m, out) for m in models)
    run = None
    for given in reversed(models):
        candidate = Path(given)
        if (candidate / "run.toml").is_file():
            run = RunDir(candidate.resolve())
            break
    return Pairing(a, b, "A", "B", f"{models[0]} vs {models[1]}", run)


def _resolve(given: str, out: str) -> BaseRef:
    path = Path(given)
    if not path.exists() and (Path(out) / given / "run.toml").is_file():
        given = str(Path(out) / given)
    return resolve_base(given)
