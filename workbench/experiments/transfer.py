"""A transfer study (``workbench transfer``) as a table: one row per base.

Each row is a base of the study: a pre-training run at a kept step (``RUN@STEP``), a run's
untrained weights (``RUN@initial``, no pre-training: a reference line) or an extra base (a
reference line). It carries the pre-training behind the base (step, tokens from the kept
checkpoint's ``trainer_state.json``, FLOPs as 6 x parameters x tokens) and the downstream
results over the base's seeds: the task metric (accuracy for sentiment...) and the final eval
loss as mean and spread over the finished fine-tunes only, and how much of the pre-training
eval loss each fine-tune lost (``base_eval_loss_before/after`` of the forgetting check).
The folder is read as it is, finished or not: ``seeds`` says how many fine-tunes each figure
covers, of how many planned.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.experiments.compare import CompareRow, fmt_number, read_sweep, read_sweep_toml
from workbench.runs.kept import INITIAL_WORD, split_at
from workbench.runs.rundir import RunDir
from workbench.runs.transferdir import is_transfer, parameters_of, read_transfer, source_run, tokens_at

KINDS = ("pretrained", "initial", "extra")
FLOPS_COVERS = "pre-training FLOPs, 6 x parameters x tokens up to the step (attention not counted)"


@dataclass
class Stat:
    """Mean and spread of one figure over a base's finished fine-tunes."""

    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": self.values}


@dataclass
class TransferRow:
    base: str
    kind: str
    """pretrained (RUN@STEP), initial (RUN@initial: no pre-training) or extra (--extra-base)."""
    source: str = ""
    """The pre-training run's folder name (a curve); the base itself for an extra base."""
    pretrain_objective: str = ""
    step: int | None = None
    tokens: int | None = None
    tokens_covers: str = ""
    parameters: int | None = None
    metric: Stat = field(default_factory=Stat)
    eval_loss: Stat = field(default_factory=Stat)
    forgetting: Stat = field(default_factory=Stat)
    """base_eval_loss_after - base_eval_loss_before per fine-tune: the pre-training eval loss lost."""
    base_loss_before: Stat = field(default_factory=Stat)
    states: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> float | None:
        return None if self.parameters is None or self.tokens is None else 6.0 * self.parameters * self.tokens

    @property
    def reference(self) -> bool:
        return self.kind != "pretrained"

    def to_json(self, seeds: int) -> dict[str, Any]:
        return {
            "base": self.base, "kind": self.kind, "source": self.source, "pretrain_objective": self.pretrain_objective,
            "pretrain_step": self.step, "pretrain_tokens": self.tokens, "pretrain_tokens_covers": self.tokens_covers,
            "pretrain_parameters": self.parameters, "pretrain_flops": self.flops, "flops_covers": FLOPS_COVERS,
            "metric": self.metric.to_json(), "eval_loss": self.eval_loss.to_json(),
            "forgetting": {**self.forgetting.to_json(), "before": self.base_loss_before.mean,
                           "covers": "base_eval_loss_after - base_eval_loss_before, the pre-training eval split"},
            "seeds_finished": self.metric.n if self.metric.n else self.eval_loss.n, "seeds_planned": seeds,
            "states": self.states,
        }


@dataclass
class TransferView:
    title: str
    path: str
    metric: str
    """The task metric shown (accuracy, macro_f1...; perplexity for language modelling)."""
    metric_covers: str
    loss_covers: str
    seeds: int
    rows: list[TransferRow]
    problems: list[str] = field(default_factory=list)

    def curves(self) -> dict[str, list[TransferRow]]:
        """The pre-trained rows by source run, in step order: one curve each."""
        found: dict[str, list[TransferRow]] = {}
        for row in self.rows:
            if row.kind == "pretrained":
                found.setdefault(row.source, []).append(row)
        return {name: sorted(rows, key=lambda r: r.step or 0) for name, rows in found.items()}

    def to_json(self) -> dict[str, Any]:
        return {"kind": "transfer", "title": self.title, "path": self.path, "metric": self.metric,
                "metric_covers": self.metric_covers, "eval_loss_covers": self.loss_covers, "seeds": self.seeds,
                "rows": [row.to_json(self.seeds) for row in self.rows], "problems": self.problems}


def read_transfer_study(folder: Path) -> TransferView:
    """The study folder as a view, whatever state it is in (what cannot be read is in ``problems``)."""
    record, problems = read_transfer(folder)
    config, more = read_sweep_toml(folder)
    comparison = read_sweep(folder)
    seeds = config.get("seeds") if isinstance(config.get("seeds"), int) else 1
    grid = config.get("grid", {}).get("base", []) if isinstance(config.get("grid"), dict) else []
    rows = {base: _row(folder, base, record) for base in grid if isinstance(base, str)}
    finals = [t for t in comparison.rows if t.is_final and t.task_metric and t.task_value is not None]
    names = [t.task_metric for t in finals]
    metric = max(set(names), key=names.count) if names else ""  # one metric per column, never two mixed
    metric_covers = next((t.task_covers for t in finals if t.task_metric == metric), "")
    loss_covers = next((t.eval_covers for t in comparison.rows if t.is_final), "")
    for trial in comparison.rows:
        base = trial.params.get("base") or trial.spec.get("base")
        if not isinstance(base, str):
            continue
        row = rows.setdefault(base, _row(folder, base, record))
        row.states[trial.state] = row.states.get(trial.state, 0) + 1
        if trial.is_final:
            _add_results(row, trial, metric)
    problems = problems + more + comparison.problems
    problems += [f"{t.name}: {'; '.join(t.problems)}" for t in comparison.rows if t.problems]
    return TransferView(folder.name, str(folder), metric, metric_covers, loss_covers, seeds, list(rows.values()), problems)


def _row(folder: Path, base: str, record: dict[str, Any]) -> TransferRow:
    """A base's row with its pre-training facts (none for an extra base)."""
    parts = split_at(base)
    entry = next((e for e in record["pretrain"] if parts and e.get("path") == parts[0]), None)
    if parts is None or entry is None:
        return TransferRow(base=base, kind="extra", source=Path(base).name or base)
    run = source_run(folder, entry)
    source = Path(str(entry.get("path"))).name
    row = TransferRow(base=base, kind="initial" if parts[1] == INITIAL_WORD else "pretrained", source=source,
                      pretrain_objective=str(entry.get("objective", "")))
    row.step = 0 if row.kind == "initial" else int(parts[1])
    if run is None:
        row.tokens_covers = f"pre-training run {entry.get('path')} not found"
        return row
    row.parameters = parameters_of(run)
    row.tokens, row.tokens_covers = (0, "no pre-training") if row.kind == "initial" else tokens_at(run, row.step)
    return row


def _add_results(row: TransferRow, trial: CompareRow, metric: str) -> None:
    if trial.task_value is not None and trial.task_metric == metric:
        row.metric.values.append(trial.task_value)
    if trial.final_eval_loss is not None:
        row.eval_loss.values.append(trial.final_eval_loss)
    metrics = RunDir(Path(trial.path)).summary().get("metrics", {}) if trial.path else {}
    before, after = metrics.get("base_eval_loss_before"), metrics.get("base_eval_loss_after")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after)):
        row.forgetting.values.append(float(after) - float(before))
        row.base_loss_before.values.append(float(before))


def detect(folder: Path) -> bool:
    """A transfer study: a sweep folder with ``transfer.toml``."""
    return is_transfer(folder)


# ---------------------------------------------------------------------- as text
def fmt_stat(stat: Any, digits: int = 3) -> str:
    """``mean±std`` (the spread over seeds; no spread from one seed)."""
    if stat.mean is None:
        return "-"
    spread = f"±{stat.std:.{digits}f}" if stat.std is not None else ""
    return f"{stat.mean:.{digits}f}{spread}"


def fmt_count(value: float | None) -> str:
    return "-" if value is None else fmt_number(value)


TABLE_COLUMNS = ("base", "step", "tokens", "FLOPs", "metric", "eval loss", "forgot", "seeds")


def table_cells(view: TransferView) -> list[tuple[str, ...]]:
    """One tuple of cells per row (``TABLE_COLUMNS``), curves first, reference lines after."""
    rows = [r for rows in view.curves().values() for r in rows] + [r for r in view.rows if r.reference]
    cells = []
    for row in rows:
        label = f"{row.source}@{row.step}" if row.kind == "pretrained" else (
            f"{row.source}@initial" if row.kind == "initial" else f"{row.source} (extra)")
        done = row.metric.n or row.eval_loss.n
        cells.append((label, "-" if row.step is None else str(row.step), fmt_count(row.tokens), fmt_count(row.flops),
                      fmt_stat(row.metric), fmt_stat(row.eval_loss), fmt_stat(row.forgetting), f"{done}/{view.seeds}"))
    return cells


def transfer_notes(view: TransferView) -> list[str]:
    """What each figure covers, in words."""
    notes = ["@initial: the run's untrained weights (no pre-training); (extra): an --extra-base; both are reference lines",
             f"{view.metric or 'metric'}: {view.metric_covers or 'no finished fine-tune yet'}",
             f"eval loss: {view.loss_covers or 'no finished fine-tune yet'}",
             "tokens: pre-training tokens up to the step (the kept checkpoint's trainer_state.json); "
             "FLOPs: 6 x parameters x those tokens",
             "forgot: pre-training eval loss after the fine-tune minus before it (the forgetting check; - when not measured)",
             "seeds: finished fine-tunes of those planned; running, stopped or failed ones are not in the means"]
    return notes + [f"skipped: {problem}" for problem in view.problems]


def transfer_csv(view: TransferView) -> str:
    """The view as CSV: one line per base, every figure with its own column."""
    buffer = io.StringIO()
    columns = ["base", "kind", "source", "pretrain_objective", "pretrain_step", "pretrain_tokens", "pretrain_flops",
               f"{view.metric or 'metric'}_mean", f"{view.metric or 'metric'}_std", "eval_loss_mean", "eval_loss_std",
               "forgetting_mean", "forgetting_std", "seeds_finished", "seeds_planned"]
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in view.rows:
        data = row.to_json(view.seeds)
        writer.writerow([row.base, row.kind, row.source, row.pretrain_objective, row.step, row.tokens, row.flops,
                         row.metric.mean, row.metric.std, row.eval_loss.mean, row.eval_loss.std, row.forgetting.mean,
                         row.forgetting.std, data["seeds_finished"], view.seeds])
    return buffer.getvalue()
