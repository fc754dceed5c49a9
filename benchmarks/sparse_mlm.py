"""Masked LM with the vocabulary head on masked positions only vs transformers' full head.

Trains the default from-scratch ``mlm`` spec on the built-in ``general`` corpus for
``--steps`` steps twice per round, ``lean_model = "auto"`` (the ``SparseMaskedLM`` twin)
and ``"off"`` (``BertForMaskedLM`` as transformers runs it), alternating in one process so
both see the same machine, and prints each run's training tokens/s (from ``summary.json``:
steps 0 to N, the run's own training time) and the median ratio. Same seed, same data, so
the losses must agree; the script prints both final eval losses as a check.

    python benchmarks/sparse_mlm.py --steps 200 --rounds 3
    python benchmarks/sparse_mlm.py --objective nsp --steps 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="mlm", choices=("mlm", "nsp"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from workbench.config import RunSpec
    from workbench.engine import TrainingRun

    rates: dict[str, list[float]] = {"auto": [], "off": []}
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            for lean in ("auto", "off"):
                spec = RunSpec(objective=args.objective, corpus="general", max_steps=args.steps, eval_interval=args.steps,
                               out=out, name=f"{lean}-{round_}", lean_model=lean, probes=[])
                summary = TrainingRun(spec).run().summary
                rates[lean].append(summary["tokens_per_s"])
                losses[lean] = summary["eval_loss_after"]
                print(f"round {round_} lean_model={lean:4s} tokens/s {summary['tokens_per_s']:8.0f}  "
                      f"eval loss {summary['eval_loss_after']:.4f}", flush=True)
    ratios = [a / b for a, b in zip(rates["auto"], rates["off"])]
    print(f"{args.objective}, {args.steps} steps x {args.rounds} rounds, load {os.getloadavg()[0]:.2f}: "
          f"sparse {statistics.median(rates['auto']):.0f} tokens/s, full head {statistics.median(rates['off']):.0f} tokens/s, "
          f"median ratio {statistics.median(ratios):.2f}x; final eval loss {losses['auto']:.4f} vs {losses['off']:.4f}")


if __name__ == "__main__":
    main()
