"""The sweep spec: a fixed run spec, the swept fields, and how trials are chosen.

``sweep.toml`` (written into the sweep folder, and what ``--config`` reads)::

    seeds = 1                 # repeats of every point, seeds seed, seed+1, ...
    trials = 12               # a search's trial count (absent for a grid)
    sampler = "tpe"           # grid | random | tpe
    prune = false             # default: on for a search, off for a grid or --seeds
    pruner = "median"         # median | halving
    metric = "eval_loss"
    direction = "minimize"
    storage = "postgresql://user@host/db"   # absent: study.db in the sweep folder (never a password)
    study = "sweep-clm-..."   # the Optuna study's name (written by the sweep; read on --resume)

    [fixed]                   # RunSpec fields, keys as in run.toml
    corpus = "general"
    max_steps = 40

    [grid]                    # field -> values
    lr = [1e-3, 3e-4]

    [search]                  # field -> distribution
    lr = "loguniform:1e-4:3e-3"

RunSpec fields may also sit at the top level (or in a ``[spec]`` table, as in ``run.toml``):
they go into ``fixed``, so any run spec file is a sweep config too. Every value is checked
by the RunSpec field's own rules before anything starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from workbench.config import RunSpec, checked_value, read_config_toml, spec_field_types
from workbench.engine.spec_resolution import corpus_label
from workbench.errors import SpecError
from workbench.tasks import get_objective

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "halving")
DIRECTIONS = ("minimize", "maximize")
DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
NOT_SWEPT = ("name", "out", "probes")
"""Fields a sweep cannot vary: the sweep names and places its trials; probes are a list."""
SWEEP_KEYS = ("seeds", "trials", "sampler", "prune", "pruner", "metric", "direction", "storage", "study")
MAX_TRIALS = 1000
"""A sweep's trial count (grid points x seeds, or trials x seeds) above this needs --max-trials."""
NO_PRUNING_ACROSS = ("objective", "corpus")
"""Swept fields that change what the metric measures: trials that differ in one are not
compared by a pruner, so such a sweep does not prune."""
ALWAYS_METRICS = ("eval_loss", "best_eval_loss")
"""Metrics every objective's runs report."""


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(RunSpec)}


@dataclass
class Distribution:
    """One searched field: ``loguniform:1e-4:3e-3``, ``uniform:0:0.2``, ``int:1:4``, ``choice:a,b``."""

    field: str
    kind: str
    low: Any = None
    high: Any = None
    choices: list = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        if self.kind == "choice":
            return "choice:" + ",".join(str(c) for c in self.choices)
        return f"{self.kind}:{self.low:g}:{self.high:g}" if self.kind != "int" else f"int:{self.low}:{self.high}"


@dataclass
class SweepSpec:
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    search: dict[str, str] = field(default_factory=dict)
    seeds: int = 1
    trials: int | None = None
    sampler: str | None = None
    prune: bool | None = None
    """None: prune a search, never a grid or a --seeds sweep (``pruning``)."""
    pruner: str = "median"
    metric: str = "eval_loss"
    direction: str = "minimize"
    storage: str | None = None
    study: str | None = None
    """The Optuna study's name in its storage, recorded when the sweep is made."""

    # ------------------------------------------------------------------ derived
    @property
    def pruning(self) -> bool:
        """Whether trials are pruned: when asked, else for a search whose trials all measure
        the same thing (not one over objectives or corpora, ``NO_PRUNING_ACROSS``)."""
        if self.prune is not None:
            return self.prune
        return bool(self.search) and not any(name in self.search for name in NO_PRUNING_ACROSS)

    @property
    def trial_count(self) -> int:
        """Trials in the sweep, counted without listing them."""
        points = (self.trials or 0) if self.search else math.prod(len(v) for v in self.grid.values())
        return points * self.seeds

    @property
    def fixed_steps(self) -> int | None:
        """Every trial's step count when the fixed part sets it (None when swept or by epochs)."""
        steps = self.fixed.get("max_steps")
        swept = "max_steps" in self.grid or "max_steps" in self.search or "epochs" in self.grid or "epochs" in self.search
        return steps if isinstance(steps, int) and not swept else None

    @property
    def base_seed(self) -> int:
        return int(self.fixed.get("seed", RunSpec().seed))

    @property
    def seed_values(self) -> list[int]:
        return [self.base_seed + i for i in range(self.seeds)] if self.seeds > 1 else []

    @property
    def swept(self) -> list[str]:
        """The params a results row shows: swept fields, then ``seed`` with repeats."""
        return [*self.grid, *self.search, *(["seed"] if self.seeds > 1 else [])]

    def distributions(self) -> dict[str, Distribution]:
        return {name: parse_distribution(name, text) for name, text in self.search.items()}

    def points(self) -> list[dict[str, Any]]:
        """A grid's trials in order (each point with each seed); a search's fixed part per
        trial (the seed when repeated; the searched values are sampled when it starts)."""
        seeds = [{"seed": s} for s in self.seed_values] or [{}]
        if self.search:
            return [dict(s) for _ in range(self.trials or 0) for s in seeds]
        names = list(self.grid)
        combos = itertools.product(*(self.grid[n] for n in names)) if names else [()]
        return [{**dict(zip(names, combo)), **s} for combo in combos for s in seeds]

    def run_spec(self, params: dict[str, Any], out: str, name: str) -> RunSpec:
        """The trial's run spec: the fixed part, its params, in the sweep folder."""
        values = {**self.fixed, **params, "out": out, "name": name}
        spec = RunSpec(**values)
        spec.validate()
        return spec

    # ------------------------------------------------------------------ TOML
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seeds": self.seeds}
        if self.trials is not None:
            data["trials"] = self.trials
        data.update(sampler=self.sampler_name, prune=self.pruning, pruner=self.pruner, metric=self.metric,
                    direction=self.direction)
        if self.storage:
            data["storage"] = redact(self.storage)  # the password stays in the environment
        if self.study:
            data["study"] = self.study
        data["fixed"] = {k: v for k, v in self.fixed.items() if v is not None}
        data["grid"] = dict(self.grid)
        data["search"] = dict(self.search)
        return data

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @property
    def sampler_name(self) -> str:
        return self.sampler or ("tpe" if self.search else "grid")

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same study (where it is stored is not part of it)."""
        data = self.to_dict()
        data.pop("storage", None)
        data.pop("study", None)
        return data


def redact(url: str) -> str:
    """A storage URL without its password (``postgresql://user@host/db``): what is stored and shown."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url.split("@")[-1] if "@" in url else url
    if parts.password is None:
        return url
    netloc = (f"{parts.username}@" if parts.username else "") + (parts.hostname or "") + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------------- parsing
def parse_distribution(name: str, text: str) -> Distribution:
    kind, _, rest = str(text).partition(":")
    where = f"--search {name}"
    if kind not in DISTRIBUTIONS or not rest:
        raise SpecError(f"{where}: cannot read {text!r}",
                        fix="write loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,...")
    if kind == "choice":
        return Distribution(name, kind, choices=[typed_value(name, v, where) for v in rest.split(",")])
    low_text, _, high_text = rest.partition(":")
    low, high = typed_value(name, low_text, where), typed_value(name, high_text, where)
    if not isinstance(low, (int, float)) or isinstance(low, bool) or not isinstance(high, (int, float)):
        raise SpecError(f"{where}: {kind} needs a numeric field", fix="use choice:A,B for this field")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise SpecError(f"{where}: int needs whole-number bounds, not {text!r}", fix="write int:LOW:HIGH with whole numbers")
    if kind != "int":
        low, high = float(low), float(high)
    if not low < high or (kind == "loguniform" and low <= 0):
        raise SpecError(f"{where}: the range {text!r} is empty or not positive",
                        fix="write LOW below HIGH (and above 0 for loguniform)")
    return Distribution(name, kind, low, high)


def typed_value(name: str, value: Any, where: str) -> Any:
    """One swept value as the field's type, checked by the field's own rules."""
    fields = _fields()
    if name not in fields or name in NOT_SWEPT:
        allowed = ", ".join(n for n in fields if n not in NOT_SWEPT)
        raise SpecError(f"{where}: {name!r} is not a field a sweep can vary", fix=f"use one of: {allowed}")
    spec_field, annotation = fields[name], spec_field_types()[name]
    if isinstance(value, str):
        value = _from_text(spec_field, value.strip())
    try:
        return checked_value(spec_field, annotation, value, f"{where}={value}" if where.startswith("--") else where)
    except SpecError as error:
        problem = error.problem if where in error.problem else f"{where}: {error.problem}"
        raise SpecError(problem, fix=error.fix) from None


def _from_text(spec_field: dataclasses.Field, text: str) -> Any:
    """Command-line text as the field's value: a number where the field takes one."""
    if "switch" in spec_field.metadata or "choices" in spec_field.metadata:
        return text
    parse = spec_field.metadata.get("parse")
    if parse is not None:
        return text  # checked_value applies the field's parser (5m, auto)
    for convert in (int, float):
        try:
            number = convert(text)
        except ValueError:
            continue
        return number if not isinstance(number, float) or math.isfinite(number) else text
    return text


def parse_grid_flag(text: str) -> tuple[str, list]:
    """``lr=1e-3,3e-4`` -> ("lr", [0.001, 0.0003]), each value checked."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise SpecError(f"--grid {text!r}: expected FIELD=V1,V2,...", fix="write e.g. --grid lr=1e-3,3e-4")
    return name, [typed_value(name, v, f"--grid {name}") for v in values.split(",")]


def parse_search_flag(text: str) -> tuple[str, str]:
    """``lr=loguniform:1e-4:3e-3`` -> ("lr", "loguniform:1e-4:3e-3"), checked."""
    name, sep, dist = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep:
        raise SpecError(f"--search {text!r}: expected FIELD=DISTRIBUTION", fix="write e.g. --search lr=loguniform:1e-4:3e-3")
    parse_distribution(name, dist.strip())
    return name, dist.strip()


def read_sweep_toml(path: Path) -> SweepSpec:
    """A sweep config (or any run spec file: its fields are the fixed part)."""
    return sweep_from_dict(read_config_toml(path), str(path))


def sweep_from_dict(data: dict[str, Any], where: str) -> SweepSpec:
    data = dict(data)
    fixed = {}
    for table in ("spec", "fixed"):
        part = data.pop(table, {})
        if not isinstance(part, dict):
            raise SpecError(f"[{table}] is not a table", where=where, fix=f"write [{table}] followed by key = value lines")
        fixed.update(part)
    grid, search = data.pop("grid", {}), data.pop("search", {})
    if not isinstance(grid, dict) or not isinstance(search, dict):
        raise SpecError("[grid] and [search] must be tables", where=where, fix="write [grid] lr = [1e-3, 3e-4]")
    sweep_keys = {k: data.pop(k) for k in SWEEP_KEYS if k in data}
    fixed.update(data)  # run spec fields at the top level
    RunSpec.from_dict({k: v for k, v in fixed.items()}, source=where)  # unknown keys and bad values, named
    spec = SweepSpec(fixed=fixed, **sweep_keys)
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"grid {name} must be a list of values", where=where, fix=f"write {name} = [v1, v2]")
        spec.grid[name] = [typed_value(name, v, f"{where}: grid {name}") for v in values]
    for name, text in search.items():
        spec.search[name] = parse_search_flag(f"{name}={text}")[1]
    return spec


def check_sweep(spec: SweepSpec, max_trials: int = MAX_TRIALS) -> None:
    """The sweep's own settings, a grid and a search not mixed, its size, metric and pruning."""
    if spec.grid and spec.search:
        raise SpecError("a sweep is a grid or a search, not both", fix="turn the grid fields into choice:A,B in --search")
    for name in ("name", "out"):  # the sweep names its trials and puts them in its folder
        spec.fixed.pop(name, None)
    overlap = set(spec.grid) & set(spec.fixed) | set(spec.search) & set(spec.fixed)
    for name in sorted(overlap):
        spec.fixed.pop(name)  # the swept values win over a fixed one from the same file
    if spec.seeds > 1 and "seed" in spec.grid | dict.fromkeys(spec.search):
        raise SpecError("--seeds repeats each point with seeds seed, seed+1, ...; do not also sweep seed",
                        fix="drop --seeds, or seed from --grid/--search")
    checks = [("seeds", isinstance(spec.seeds, int) and not isinstance(spec.seeds, bool) and 1 <= spec.seeds <= 1000,
               "a whole number from 1 to 1000"),
              ("trials", spec.trials is None or (isinstance(spec.trials, int) and 1 <= spec.trials <= 100000),
               "a whole number from 1"),
              ("sampler", spec.sampler in (None, *SAMPLERS), " or ".join(SAMPLERS)),
              ("pruner", spec.pruner in PRUNERS, " or ".join(PRUNERS)),
              ("direction", spec.direction in DIRECTIONS, " or ".join(DIRECTIONS)),
              ("prune", spec.prune is None or isinstance(spec.prune, bool), "true or false"),
              ("study", spec.study is None or (isinstance(spec.study, str) and spec.study), "a study name"),
              ("metric", isinstance(spec.metric, str) and spec.metric, "a metric name such as eval_loss")]
    for name, ok, wanted in checks:
        if not ok:
            raise SpecError(f"{name} must be {wanted}, not {getattr(spec, name)!r}", fix=f"set {name} to {wanted}")
    if spec.search and spec.trials is None:
        raise SpecError("a search needs a trial count", fix="pass --trials N (e.g. --trials 12)")
    if spec.sampler == "grid" and spec.search:
        raise SpecError("the grid sampler takes --grid, not --search", fix="use --sampler random or tpe with --search")
    if spec.sampler in ("random", "tpe") and not spec.search:
        raise SpecError(f"the {spec.sampler} sampler needs --search FIELD=DISTRIBUTION", fix="add --search, or use --grid")
    if spec.trials is not None and not spec.search:
        raise SpecError("--trials is a search's trial count; a grid runs every point", fix="drop --trials, or use --search")
    RunSpec.from_dict(dict(spec.fixed), source="the fixed part of the sweep")
    check_size(spec, max_trials)
    check_metric(spec)
    check_pruning(spec)


def check_size(spec: SweepSpec, max_trials: int = MAX_TRIALS) -> None:
    """The product of the sweep's bounds, before anything is queued or written."""
    count = spec.trial_count
    if count > max_trials:
        made = (f"{spec.trials} trials" if spec.search else " x ".join(str(len(v)) for v in spec.grid.values()) + " grid points")
        raise SpecError(f"the sweep has {count} trials ({made} x {spec.seeds} seed(s)), more than the limit of {max_trials}",
                        fix=f"sweep fewer values, or pass --max-trials {count} if you mean it")


def swept_values(spec: SweepSpec, name: str) -> list[Any]:
    """The values a field takes across the sweep: swept, fixed or the default."""
    if name in spec.grid:
        return list(spec.grid[name])
    if name in spec.search:
        return list(parse_distribution(name, spec.search[name]).choices)
    return [spec.fixed.get(name, getattr(RunSpec(), name))]


def check_metric(spec: SweepSpec) -> None:
    """``--metric`` is one every trial's objective reports (else each trial would train, then fail)."""
    objectives = swept_values(spec, "objective")
    reported = [set(ALWAYS_METRICS) | set(get_objective(name).metrics) for name in objectives]
    common = set.intersection(*reported)
    if spec.metric not in common:
        missing = [name for name, names in zip(objectives, reported) if spec.metric not in names]
        raise SpecError(f"--metric {spec.metric}: objective {missing[0]} does not report it",
                        fix=f"use one of: {', '.join(sorted(common, key=lambda m: (m not in ALWAYS_METRICS, m)))}")


def check_pruning(spec: SweepSpec) -> None:
    """A pruner compares a trial with the others: only trials whose metric means the same."""
    across = [name for name in NO_PRUNING_ACROSS if name in spec.grid or name in spec.search]
    if across and spec.prune:
        raise SpecError(f"cannot prune a sweep over {across[0]}: its trials' {spec.metric} values are not comparable",
                        fix="pass --no-prune, or run one sweep per " + across[0])


def default_name(spec: SweepSpec) -> str:
    fixed = RunSpec(**{k: v for k, v in spec.fixed.items()})
    label = re.sub(r"[^A-Za-z0-9._-]", "_", corpus_label(fixed.corpus))
    return f"sweep-{fixed.objective}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
