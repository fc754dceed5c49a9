"""nanoGPT parity on shakespeare-char: the workbench against a hand-written PyTorch loop.

One invocation trains ``examples/shakespeare_char.toml`` (nanoGPT's shakespeare-char CPU
recipe: 4 layers x 4 heads x 128, 64-token windows, batch 12, 2000 steps, AdamW
(0.9, 0.99) wd 0.1, warmup 100 then cosine to 1e-4, clip 1.0) three ways, each in its own
subprocess so CPU seconds and peak RSS are its own:

- ``workbench``: ``run_spec`` on the spec (it trains the lean GPT-2 twin);
- ``hand-gpt2``: a minimal loop written here over transformers' ``GPT2LMHeadModel``;
- ``hand-lean``: the same loop over ``LeanGPT2.sharing(model)``, the module the workbench
  trains, so the table separates engine overhead (workbench vs hand-lean) from model code
  (hand-gpt2 vs hand-lean);
- with ``--compare-sampling`` also ``workbench-blocks``: the workbench with
  ``sampling = "blocks"`` (aligned blocks, epoch permutations) at the same steps.

The hand loops use the workbench's own prepared data (same corpus loader, char tokenizer,
tail holdout and packed blocks; not timed), the same initial weights (same seed and config),
AdamW with the same decay grouping (ndim >= 2), the same lr formula, clipping, and nanoGPT's
random-offset windows drawn from their own generator. The validation number is the whole
validation split as aligned non-overlapping 64-token blocks in batches of ``batch_size``
(12), averaged per batch exactly as the workbench's final eval does, so the two columns
are comparable; the hand loops also record the plain mean over all blocks (``val_loss_blocks``
in the JSON).

For equal work the workbench runs with ``eval_interval = steps`` (no periodic evals; the hand
loops do none). Its timed span runs from the ``started`` event (after data preparation) to
the end of ``run_spec``: the initial checkpoint and eval (``eval_loss_before``), training, the
final whole-split eval, checkpoint and model save. The hand loops time training plus the
final eval.

    python benchmarks/shakespeare_char.py --steps 50                # quick check
    python benchmarks/shakespeare_char.py --compare-sampling --json results.json
    python benchmarks/shakespeare_char.py --only hand-lean --json one.json   # one contender
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "shakespeare_char.toml"
CONTENDERS = ("workbench", "hand-gpt2", "hand-lean")
BLOCKS = "workbench-blocks"
LOSS_GOAL = 1.89
CPU_GOAL = 1.05


# ---------------------------------------------------------------------- shared
def mark() -> tuple[float, float]:
    """(wall, process CPU) seconds now; process CPU counts every thread of this process."""
    return time.perf_counter(), time.process_time()


def span(start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    return end[0] - start[0], end[1] - start[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_spec(config: Path, steps: int, out: str, sampling: str | None = None, seed: int | None = None) -> Any:
    """The example spec for ``steps`` steps (and ``seed``, if given), no periodic evals, writing
    under ``out``; a relative corpus path is read from the repository root (where the example
    says to run)."""
    from workbench.config import RunSpec

    spec = RunSpec.from_toml(config)
    corpus = Path(spec.corpus)
    if not corpus.is_absolute() and not corpus.exists() and (ROOT / corpus).exists():
        spec = spec.replace(corpus=str((ROOT / corpus).resolve()))
    return spec.replace(out=out, max_steps=steps, eval_interval=steps, sampling=sampling or spec.sampling,
                        name=f"bench-{sampling or spec.sampling}", seed=spec.seed if seed is None else seed)


# ---------------------------------------------------------------------- the workbench
def run_workbench(spec: Any) -> dict[str, Any]:
    """``run_spec`` on ``spec``; phases timed from its events (the listener runs in the loop's thread)."""
    from workbench.engine.runner import run_spec

    marks: dict[str, tuple[float, float]] = {}
    total = spec.max_steps

    def listener(event: Any) -> None:
        if event.kind == "started":
            marks["start"] = mark()
        elif event.kind == "eval" and event.step == 0:
            marks["initial"] = mark()
        elif event.kind == "step":
            if event.step == total:
                marks["trained"] = mark()
            if event.step % 250 == 0 or event.step == total:
                print(f"  workbench step {event.step}/{total} loss {event.loss:.4f}", file=sys.stderr, flush=True)

    result = run_spec(spec, listeners=[listener])
    end = mark()
    summary = result.summary
    wall, cpu = span(marks["start"], end)
    train_wall, train_cpu = span(marks["initial"], marks["trained"])
    final_wall, final_cpu = span(marks["trained"], end)
    return {
        "val_loss": summary["eval_loss_after"], "val_covers": summary["eval_after_covers"],
        "val_loss_before": summary["eval_loss_before"], "wall_s": wall, "cpu_s": cpu,
        "train_wall_s": train_wall, "train_cpu_s": train_cpu, "final_wall_s": final_wall, "final_cpu_s": final_cpu,
        "initial_wall_s": span(marks["start"], marks["initial"])[0], "tokens": summary["tokens"],
        "engine_tokens_per_s": summary["tokens_per_s"],
    }


# ---------------------------------------------------------------------- the hand loop
def prepare(spec: Any) -> tuple[Any, Any, Any]:
    """The resolved spec, tokenizer and packed blocks exactly as the workbench's set-up makes
    them (``engine/setup.py``: ``read_inputs``, ``train_tokenizer``, ``task.prepare``)."""
    from workbench.engine.setup import read_inputs
    from workbench.quiet import quiet_libraries
    from workbench.tokenization import train_tokenizer

    quiet_libraries()
    inputs = read_inputs(spec, None, spec.out)
    spec, task, corpus = inputs.spec, inputs.task, inputs.corpus
    tokenizer = train_tokenizer(spec.model.tokenizer, corpus.sample_texts(), spec.model.vocab_size, masked=task.masked)
    data = task.prepare(corpus, tokenizer, spec, inputs.checked)
    return spec.as_run_spec(), tokenizer, data  # the hand loop reads the flat settings


def hand_model(spec: Any, vocab_size: int) -> Any:
    """GPT-2 of the spec's shape, initialised after ``torch.manual_seed(seed)`` as the workbench does."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=spec.max_position, n_embd=spec.d_model, n_layer=spec.n_layer,
                        n_head=spec.n_head, n_inner=spec.d_ff, resid_pdrop=spec.dropout, embd_pdrop=spec.dropout,
                        attn_pdrop=spec.dropout, bos_token_id=None, eos_token_id=None, pad_token_id=None,
                        tie_word_embeddings=True)
    torch.manual_seed(spec.seed)
    return GPT2LMHeadModel(config)


def lr_at(step: int, spec: Any) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` down to ``lr * min_lr_ratio`` at the last step."""
    peak, floor, warmup, total = spec.lr, spec.lr * spec.min_lr_ratio, spec.warmup_steps, spec.max_steps
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def window_starts(spec: Any, limit: int, windows: str) -> Any:
    """Per step, the batch's window offsets: drawn here (``own``), or the workbench's own draws
    (``workbench``: its ``BatchOrder``, to tell sampling noise from a real difference)."""
    import torch

    if windows == "workbench":
        from workbench.engine.order import BatchOrder

        order = BatchOrder(limit, spec.batch_size, spec.seed, windows=limit)
        return lambda step: torch.tensor(order.indices(step))
    generator = torch.Generator().manual_seed(spec.seed)
    return lambda step: torch.randint(limit, (spec.batch_size,), generator=generator)


def train_loop(module: Any, train_blocks: Any, spec: Any, windows: str = "own") -> int:
    """nanoGPT's loop: random 64-token windows of the packed text, AdamW, clip, step. Returns tokens."""
    import torch

    decay = [p for p in module.parameters() if p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps)
    flat = train_blocks.reshape(-1)
    offsets = torch.arange(spec.seq_len)
    draw = window_starts(spec, flat.numel() - spec.seq_len + 1, windows)  # every window inside the packed text
    module.train()
    for step in range(spec.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, spec)
        x = flat[draw(step)[:, None] + offsets]
        loss = module(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), spec.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 250 == 0 or step + 1 == spec.max_steps:
            print(f"  hand step {step + 1}/{spec.max_steps} loss {loss.item():.4f}", file=sys.stderr, flush=True)
    return spec.max_steps * spec.batch_size * spec.seq_len


def evaluate(module: Any, blocks: Any, batch_size: int) -> tuple[float, float]:
    """(mean of per-batch mean losses, as the workbench; mean over all blocks) on aligned blocks."""
    import torch

    module.eval()
    losses, sizes = [], []
    with torch.no_grad():
        for start in range(0, blocks.shape[0], batch_size):
            x = blocks[start:start + batch_size]
            losses.append(float(module(input_ids=x, labels=x).loss))
            sizes.append(x.shape[0])
    by_block = sum(loss * size for loss, size in zip(losses, sizes)) / sum(sizes)
    return sum(losses) / len(losses), by_block


def run_hand(spec: Any, lean: bool, windows: str = "own") -> dict[str, Any]:
    spec, tokenizer, data = prepare(spec)
    model = hand_model(spec, len(tokenizer))
    if lean:
        from workbench.lean_gpt2 import LeanGPT2

        module = LeanGPT2.sharing(model)
    else:
        module = model
    start = mark()
    tokens = train_loop(module, data.train, spec, windows)
    trained = mark()
    val_loss, by_block = evaluate(module, data.eval, spec.batch_size)
    end = mark()
    wall, cpu = span(start, end)
    train_wall, train_cpu = span(start, trained)
    final_wall, final_cpu = span(trained, end)
    return {
        "val_loss": val_loss, "val_loss_blocks": by_block,
        "val_covers": f"whole eval split ({data.eval.shape[0]:,} blocks, batches of {spec.batch_size})",
        "wall_s": wall, "cpu_s": cpu, "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "final_wall_s": final_wall, "final_cpu_s": final_cpu, "tokens": tokens,
    }


# ---------------------------------------------------------------------- one contender (a subprocess)
def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="shakespeare-bench-") as out:
        spec = load_spec(args.config, args.steps, out, "blocks" if name == BLOCKS else None, args.seed)
        if name.startswith("workbench"):
            row = run_workbench(spec)
        else:
            row = run_hand(spec, lean=name == "hand-lean", windows=args.hand_windows)
            row["hand_windows"] = args.hand_windows
    row.update(name=name, steps=args.steps, seed=spec.seed, threads=torch.get_num_threads(), peak_rss_mib=peak_rss_mib())
    row["tokens_per_s"] = row["tokens"] / row["train_wall_s"]
    return row


def spawn(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """``name`` in a fresh interpreter: its own CPU seconds and peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "row.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--json", str(path),
                   "--steps", str(args.steps), "--threads", str(args.threads), "--config", str(args.config),
                   "--hand-windows", args.hand_windows, *(["--seed", str(args.seed)] if args.seed is not None else [])]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        subprocess.run(command, check=True, env=env, cwd=ROOT)
        return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- the report
def medians(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per contender, the median of every number over the repeats (the rest from the first)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    out = {}
    for name, group in by_name.items():
        merged = dict(group[0])
        for key, value in group[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                merged[key] = statistics.median(r[key] for r in group)
        out[name] = merged
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| run | val loss | wall s | CPU s | train wall s | train CPU s | final eval wall s | tokens/s (train) | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        lines.append(f"| {name} | {r['val_loss']:.4f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['train_wall_s']:.1f} | "
                     f"{r['train_cpu_s']:.1f} | {r['final_wall_s']:.1f} | {r['tokens_per_s']:,.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def verdicts(summary: dict[str, dict[str, Any]]) -> list[str]:
    wb = summary.get("workbench")
    out = []
    if wb is None:
        return out
    out.append(f"workbench val loss {wb['val_loss']:.4f} (goal <= {LOSS_GOAL}): "
               f"{'met' if wb['val_loss'] <= LOSS_GOAL else 'NOT met'}  [{wb['val_covers']}]")
    for hand in ("hand-gpt2", "hand-lean"):
        if hand in summary:
            h = summary[hand]
            ratio, train_ratio = wb["cpu_s"] / h["cpu_s"], wb["train_cpu_s"] / h["train_cpu_s"]
            out.append(f"CPU seconds workbench / {hand}: {ratio:.3f} whole timed span (goal <= {CPU_GOAL}: "
                       f"{'met' if ratio <= CPU_GOAL else 'NOT met'}); {train_ratio:.3f} training steps only")
    out.append(f"workbench phases: initial checkpoint + eval {wb['initial_wall_s']:.1f} s wall, "
               f"train {wb['train_wall_s']:.1f} s, final eval + saves {wb['final_wall_s']:.1f} s")
    blocks = summary.get(BLOCKS)
    if blocks is not None:
        delta = blocks["val_loss"] - wb["val_loss"]
        out.append(f"sampling at {wb['steps']} steps: random {wb['val_loss']:.4f} vs blocks {blocks['val_loss']:.4f} "
                   f"(blocks - random = {delta:+.4f}); train wall {wb['train_wall_s']:.1f} s vs {blocks['train_wall_s']:.1f} s")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="Optimizer steps for every contender (default 2000).")
    parser.add_argument("--repeats", type=int, default=1, help="Run every contender N times; report medians.")
    parser.add_argument("--compare-sampling", action="store_true", help=f"Also run {BLOCKS} (sampling = \"blocks\").")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every contender (default 1).")
    parser.add_argument("--config", type=Path, default=CONFIG, help="The spec (default examples/shakespeare_char.toml).")
    parser.add_argument("--seed", type=int, help="Override the spec's seed (init, data order) for every contender.")
    parser.add_argument("--hand-windows", choices=["own", "workbench"], default="own",
                        help="The hand loops' windows: their own random draws (default), or the workbench's draws "
                             "(same batches: tells sampling noise from a real difference).")
    parser.add_argument("--json", type=Path, help="Write the results (every row and the medians) here.")
    parser.add_argument("--only", choices=[*CONTENDERS, BLOCKS],
                        help="Run one contender in this process and print (or write with --json) its row.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only:
        row = run_one(args.only, args)
        text = json.dumps(row, indent=2)
        args.json.write_text(text, encoding="utf-8") if args.json else print(text)
        return
    names = [*CONTENDERS, *([BLOCKS] if args.compare_sampling else [])]
    rows = []
    for repeat in range(args.repeats):
        for name in names:
            print(f"[repeat {repeat + 1}/{args.repeats}] {name}, {args.steps} steps, {args.threads} thread(s)", flush=True)
            rows.append(spawn(name, args))
    summary = medians(rows)
    print(f"\nshakespeare-char, {args.steps} steps, {args.threads} thread(s), {args.repeats} repeat(s) (medians), "
          f"seed {rows[0]['seed']}, hand-loop windows: {args.hand_windows}\n")
    print(table(summary))
    print()
    for line in verdicts(summary):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "medians": summary}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
