"""Engine vs a minimal hand-written PyTorch loop: same model, batches and optimizer.

Runs both in this one process, alternating (engine, loop) several times, and prints
tokens/s for each and the ratio engine/loop (median over repeats). The goal is a ratio of
at least 1.0 on CPU: the engine adds no per-step host sync or data overhead that a hand
loop would not have. The hand loop trains transformers' model; the engine trains what a
user's run trains (for clm from scratch, the lean GPT-2 twin; ``--lean off`` compares like
with like).

    python benchmarks/throughput.py                      # CLM, tiny preset, built-in corpus
    python benchmarks/throughput.py --objective mlm --steps 80 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.order import BatchOrder, step_seed
from workbench.quiet import quiet_libraries


def engine_run(spec: RunSpec, warmup: int) -> tuple[float, TrainingRun]:
    """Tokens/s of the engine between the log at ``warmup`` and the last step's log."""
    marks: dict[int, tuple[float, int]] = {}

    def listener(event) -> None:
        if event.kind == "step":
            marks[event.step] = (time.perf_counter(), event.tokens)

    run = TrainingRun(spec, listeners=[listener])
    run.run()
    (t0, tok0), (t1, tok1) = marks[warmup], marks[spec.max_steps]
    return (tok1 - tok0) / (t1 - t0), run


def hand_loop(run: TrainingRun, spec: RunSpec, warmup: int) -> float:
    """The loop a person writes by hand: index a tensor, forward, backward, clip, step."""
    task, data = run.state.task, run.state.data
    spec = run.state.spec.as_run_spec()  # the settings the engine ran with, flat, for the hand loop
    torch.manual_seed(spec.seed)
    model = task.build_model(run.state.spec, run.state.tokenizer)
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.lr, betas=(0.9, 0.98),
    )
    order = BatchOrder(data.num_examples("train"), spec.batch_size, spec.seed)
    tokens = 0
    start = 0.0
    for step in range(spec.max_steps):
        if step == warmup:
            start, tokens = time.perf_counter(), 0
        torch.manual_seed(step_seed(spec.seed, step))
        batch, n_tokens = data.batch("train", order.indices(step))
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += n_tokens
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", default="clm", choices=["clm", "mlm"])
    parser.add_argument("--corpus", default="general")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lean", default="auto", choices=["auto", "off"], help="The engine's lean_model setting.")
    args = parser.parse_args()
    quiet_libraries()
    torch.set_num_threads(torch.get_num_threads())

    engine_rates, loop_rates, ratios = [], [], []
    run = None
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            spec = RunSpec(
                corpus=args.corpus, objective=args.objective, size=args.size, max_steps=args.steps,
                batch_size=args.batch_size, seq_len=args.seq_len, log_interval=args.warmup,
                eval_interval=10 * args.steps, save_interval=10 * args.steps, eval_batches=1,
                out=out, name=f"bench-{repeat}", device="cpu", probes=[], lean_model=args.lean,
            )
            # Alternate which goes first, so neither always gets the warm allocator and caches.
            if repeat % 2 == 0:
                engine_rate, run = engine_run(spec, args.warmup)
                loop_rate = hand_loop(run, run.state.spec, args.warmup)
            else:  # the loop reuses the previous repeat's tokenizer and data (identical)
                loop_rate = hand_loop(run, run.state.spec, args.warmup)
                engine_rate, run = engine_run(spec, args.warmup)
            engine_rates.append(engine_rate)
            loop_rates.append(loop_rate)
            ratios.append(engine_rate / loop_rate)
            print(f"repeat {repeat + 1}: engine {engine_rate:,.0f} tok/s  loop {loop_rate:,.0f} tok/s  ratio {engine_rate / loop_rate:.3f}", flush=True)
    print(
        f"\n{args.objective} {args.size}, batch {args.batch_size}x{args.seq_len}, {args.steps} steps "
        f"({args.warmup} warm-up), {torch.get_num_threads()} threads, {args.repeats} repeats, engine lean_model={args.lean}"
    )
    print(f"median engine {statistics.median(engine_rates):,.0f} tok/s | median loop {statistics.median(loop_rates):,.0f} tok/s | "
          f"median ratio engine/loop {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
