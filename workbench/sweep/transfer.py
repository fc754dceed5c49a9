"""Transfer studies: one downstream spec fine-tuned from many bases, as one sweep.

``workbench transfer PRETRAIN_RUN... --objective sentiment ...`` fine-tunes the downstream
spec from each kept checkpoint of each pre-training run (``RUN@STEP``), from each run's
untrained weights (``RUN@initial``: no pre-training, same shape and tokenizer) and from any
``--extra-base``, each with ``--seeds`` seeds. It is an ordinary sweep whose grid axis is
``base`` (so resume, ``--parallel``, ``--storage``, Ctrl-C and the results table are the
sweep's), plus ``transfer.toml`` (``runs/transferdir.py``), which says where each base came
from so the transfer view can put each fine-tune against its pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import BaseModelError, SpecError
from workbench.models import load_config, resolve_base
from workbench.runs import kept
from workbench.runs.rundir import RunDir, find_run
from workbench.runs.transferdir import pretrain_entry, write_transfer
from workbench.sweep.spec import SweepSpec, check_sweep
from workbench.tasks import get_task


@dataclass
class Bases:
    """The study's bases in grid order, and the ``transfer.toml`` entries they came from."""

    values: list[str] = field(default_factory=list)
    sources: list[tuple[str, str, list[int], bool]] = field(default_factory=list)
    """(run as given, its objective, the kept steps used, whether its @initial is used)."""
    extras: list[str] = field(default_factory=list)


def gather_bases(runs: list[str], extras: list[str], steps: list[int] | None = None, initial: bool = True) -> Bases:
    """Every base of the study: each run's kept checkpoints (or ``steps`` of them), its
    ``@initial``, then the extra bases. A run with no kept checkpoint is refused in one line."""
    if not runs and not extras:
        raise SpecError("a transfer study needs a pre-training run", fix="pass one or more run folders, e.g. "
                        "`workbench transfer checkpoints/mlm-run --objective sentiment -c reviews.csv`")
    bases = Bases(extras=list(extras))
    for given in runs:
        run = find_run(given, out=str(Path(given).parent))
        on_disk = kept.kept_on_disk(run.path)
        chosen = on_disk if steps is None else [s for s in on_disk if s in steps]
        if steps is not None and len(chosen) < len(steps):
            missing = sorted(set(steps) - set(on_disk))
            raise SpecError(f"{given} keeps no checkpoint at step {missing[0]}",
                            fix=f"use its kept steps: {', '.join(map(str, on_disk)) or 'none'}")
        if not chosen:
            raise SpecError(f"{given} keeps no checkpoints for later", where=given,
                            fix="pre-train with --keep-steps (e.g. --keep-steps log:4), then start the study")
        use_initial = initial and (run.path / "checkpoints" / kept.INITIAL_WORD / "config.json").is_file()
        objective = str(run.read_run_toml().get("spec", {}).get("objective", "?"))
        bases.values += [f"{given}@{step}" for step in chosen] + ([f"{given}@{kept.INITIAL_WORD}"] if use_initial else [])
        bases.sources.append((given, objective, chosen, use_initial))
    bases.values += list(extras)
    if len(set(bases.values)) < len(bases.values):
        raise SpecError("the same base is named twice", fix="give each pre-training run and --extra-base once")
    return bases


def check_bases(objective: str, values: list[str]) -> None:
    """Every base can do the downstream objective (an mlm run cannot be the base of a task
    that needs a decoder, and so on): refused in one line naming the base, before any trial."""
    for value in values:
        ref = resolve_base(value)
        config = load_config(ref)
        try:
            get_task(objective, config).check_base(config, where=value)
        except BaseModelError as error:
            raise BaseModelError(error.problem, where=value, fix=error.fix or "pick a base of the kind this objective needs") from None


def transfer_sweep(fixed: dict[str, Any], bases: Bases, settings: dict[str, Any]) -> SweepSpec:
    """The study as a sweep spec: ``fixed`` (the downstream spec), the grid over ``base`` and
    the sweep settings (seeds, metric, direction, prune, storage), checked as a sweep is."""
    if fixed.get("base"):
        raise SpecError("--base is what a transfer study varies", fix="give the pre-training runs as arguments and "
                        "other bases as --extra-base")
    spec = SweepSpec(fixed=dict(fixed), grid={"base": list(bases.values)}, prune=False)
    for key, value in settings.items():
        if value is not None:
            setattr(spec, key, value)
    check_sweep(spec)
    return spec


def record(study: Path, bases: Bases) -> None:
    """Write ``transfer.toml``: where each base came from."""
    entries = [pretrain_entry(study, given, objective, steps, initial) for given, objective, steps, initial in bases.sources]
    write_transfer(study, entries, bases.extras)


def run_exists(given: str) -> bool:
    return (Path(given) / "run.toml").is_file() and RunDir(Path(given)).run_toml.is_file()
