"""Which two models to compare: a run's base and result, or any two models named.

``workbench inspect RUN`` compares the run's base (``base_model_dir`` in run.toml) with
its final ``model/``. A from-scratch run has no base, so it compares its untrained start,
``checkpoints/initial/`` (saved before the first step), with its final model (or its newest
checkpoint while it still runs). A run saved before ``initial/`` existed falls back to its
earliest surviving checkpoint, which is already trained, and the note says so. The choice
is stated in ``Pairing.note`` (and the labels) and printed. ``with_beside`` puts a third
model beside a run and its base (the TUI Inspector's second run menu): ``BASE RUN X``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import RunDirError, WorkbenchError
from workbench.methods import read_adapter_config
from workbench.models import BaseRef, resolve_base
from workbench.runs import checkpoint as ckpt
from workbench.runs.rundir import RunDir, find_run


@dataclass
class Pairing:
    a: BaseRef | None  # None only in a probes-only report
    b: BaseRef | None
    label_a: str
    label_b: str
    note: str
    run: RunDir | None = None
    more: list[tuple[str, BaseRef]] = field(default_factory=list)
    """Models after the second (``workbench inspect BASE LORA FULL``): each compared with ``a``."""
    runs: dict[str, RunDir] = field(default_factory=dict)
    """Each model that is a run directory, by its label: its forgetting numbers are shown."""


def _local(path: Path, given: str) -> BaseRef:
    return BaseRef(given=given, kind="local", model_dir=str(path.resolve()))


def pair_for_run(run: RunDir) -> Pairing:
    """Base vs result for one run directory."""
    meta = run.meta()
    spec = run.read_run_toml().get("spec", {})
    complete = ckpt.complete_checkpoints(run.checkpoints) if run.checkpoints.is_dir() else []
    method = spec.get("method", "full")
    if (run.model_dir / "config.json").is_file():
        tuned, tuned_note = _local(run.model_dir, str(run.model_dir)), "final model/"
    elif complete and method != "full":
        raise RunDirError(f"the run has no final model yet, and the checkpoints of a {method} run hold only its trainable weights",
                          where=str(run.path), fix="wait for it to finish (a stopped run writes model/ too), or pick a finished run")
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
    """``[RUN]`` -> the run's base vs result; ``[A, B]`` -> those two models; ``[A, B, C...]``
    -> A beside each of the others (labelled by each run's method where they differ). A LoRA
    ``adapter/`` folder after the first model is loaded on the first model as its base."""
    if len(models) == 1:
        try:
            run = find_run(models[0], out=out)
        except RunDirError:
            raise WorkbenchError("one model given, and it is not a run directory", where=models[0],
                                 fix="pass a run (its base vs its result) or two models: workbench inspect BASE TUNED") from None
        return pair_for_run(run)
    if len(models) > 2:
        return _several(models, out)
    if len(models) != 2:
        raise WorkbenchError(f"expected a run or two models, got {len(models)} arguments", fix="workbench inspect RUN, or workbench inspect BASE TUNED")
    a = _resolve(models[0], out)
    b = _resolve(models[1], out, base=a)
    run = None
    for given in reversed(models):
        candidate = Path(given)
        if (candidate / "run.toml").is_file():
            run = RunDir(candidate.resolve())
            break
    return Pairing(a, b, "A", "B", f"{models[0]} vs {models[1]}", run)


def _resolve(given: str, out: str, base: BaseRef | None = None) -> BaseRef:
    path = Path(given)
    if not path.exists() and (Path(out) / given / "run.toml").is_file():
        given = str(Path(out) / given)
    if base is not None and (Path(given) / "adapter_config.json").is_file():
        read_adapter_config(Path(given), base.model_dir)  # remote code, another base, pickles: refused here
        return AdapterRef(given=given, kind="adapter", model_dir=str(Path(given).resolve()), base_dir=base.model_dir)
    return resolve_base(given)


@dataclass(frozen=True)
class AdapterRef(BaseRef):
    """A LoRA ``adapter/`` folder, loaded on the base at ``base_dir`` (checked to be its own)."""

    base_dir: str = ""


def _run_of(given: str, out: str) -> RunDir | None:
    for candidate in (Path(given), Path(out) / given):
        if (candidate / "run.toml").is_file():
            return RunDir(candidate.resolve())
    return None


def model_labels(models: list[str], out: str) -> list[str]:
    """Short column labels for several models: ``base`` for the first (the one the others are
    compared with; a run's own ``initial/`` or ``step-N`` checkpoint says so); then a run's
    method (lora, full, frozen) where the runs' methods differ, else its name; letters for
    models that are no run."""
    runs = [_run_of(m, out) for m in models]
    methods: list[str | None] = []
    for run in runs:
        try:
            methods.append(run.read_run_toml().get("spec", {}).get("method", "full") if run is not None else None)
        except WorkbenchError:
            methods.append(None)
    named = [m for m in methods[1:] if m is not None]
    unique = len(set(named)) == len(named)
    labels = [_first_label(models[0])]  # the first model is what the others are compared with
    for index, (run, method) in enumerate(zip(runs, methods)):
        if index == 0:
            continue
        if run is not None:
            labels.append(method if unique and method else run.path.name)
        else:
            labels.append(chr(ord("A") + index))
    return [label if labels.count(label) == 1 else f"{label}-{i + 1}" for i, label in enumerate(labels)]


def _first_label(given: str) -> str:
    """``base``, or for a run's own snapshot (``RUN/checkpoints/initial``, as ``with_beside``
    gives a from-scratch run) what it is: ``initial (step 0)``, ``step 20``."""
    folder = Path(given)
    if folder.parent.name == "checkpoints" and (folder.parent.parent / "run.toml").is_file():
        if folder.name == ckpt.INITIAL:
            return "initial (step 0)"
        if folder.name.startswith(ckpt.PREFIX) and (step := ckpt_step(folder)) >= 0:
            return f"step {step}"
    return "base"


def compared_with(run: RunDir) -> str:
    """What ``workbench inspect RUN`` compares the run's result with, as a model to name: its
    base (a run directory, a model folder or a hub id) or its initial weights (from scratch)."""
    ref = pair_for_run(run).a
    folder = Path(ref.model_dir)
    if ref.kind != "hub" and folder.name == "model" and (folder.parent / "run.toml").is_file():
        return str(folder.parent)  # a run used as the base: named by its directory (and its forgetting read)
    return ref.model_dir


def with_beside(models: list[str], beside: str, out: str = "checkpoints") -> list[str]:
    """``models`` and one more model beside them (the TUI's third column). A run alone stands
    for its base (or initial weights) and its result, so ``[RUN] + X`` is ``[RUN's base, RUN,
    X]``, as ``workbench inspect BASE RUN X`` would have it; ``[A, B] + X`` is ``[A, B, X]``."""
    if len(models) == 1 and (run := _run_of(models[0], out)) is not None:
        return [compared_with(run), models[0], beside]
    return [*models, beside]


def _several(models: list[str], out: str) -> Pairing:
    """A beside each of the others: ``a`` and ``b`` as a pair, the rest in ``more``."""
    first = _resolve(models[0], out)
    refs = [first] + [_resolve(m, out, base=first) for m in models[1:]]
    labels = model_labels(models, out)
    runs = {label: run for label, m in zip(labels, models) if (run := _run_of(m, out)) is not None}
    note = " vs ".join(f"{label} ({Path(m).name or m})" for label, m in zip(labels, models))
    return Pairing(refs[0], refs[1], labels[0], labels[1], note, runs.get(labels[-1]) or next(iter(runs.values()), None),
                   more=list(zip(labels[2:], refs[2:])), runs=runs)
