"""`workbench inspect`: base vs fine-tuned predictions side by side (or any two models)."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from workbench.commands.common import fail
from workbench.errors import WorkbenchError


def inspect_command(
    models: List[str] = typer.Argument(..., help="A run (its base vs its result), or two models: run dirs, local HF dirs or hub ids."),
    text: Optional[List[str]] = typer.Option(None, "--text", "-t", help="Query: text with [MASK] or ___, a prompt, or 'A ||| B'. Repeatable. Default: the run's probes."),
    pair: Optional[str] = typer.Option(None, "--pair", help="Second sentence: asks whether it follows --text (next-sentence prediction)."),
    mode: str = typer.Option("auto", "--mode", help="auto, mask, next, surprisal, pair or task."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=50, help="Predictions shown per side."),
    candidates: Optional[str] = typer.Option(None, "--candidates", help="Comma-separated fill-ins a causal model ranks for each mask."),
    max_new_tokens: int = typer.Option(12, "--max-new-tokens", min=0, max=200, help="Length of each continuation."),
    sample: bool = typer.Option(False, "--sample", help="Sample continuations (same seed on both sides) instead of greedy."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampled continuations."),
    probes: bool = typer.Option(False, "--probes", help="Print the run's probe timeline (top-1 and probability per eval)."),
    out: str = typer.Option("checkpoints", "--out", help="Run root for run names."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document (schema: workbench.inspector.report)."),
) -> None:
    """Compare two models' predictions: masked fill-in, next token, surprisal, NSP, task heads.

    `workbench inspect RUN` compares a run's base with its final model (a from-scratch run:
    its earliest checkpoint with its final model) on the run's probes.
    """
    from workbench.inspector import QueryOptions, inspect_models

    try:
        texts = list(text or [])
        if pair is not None:
            if len(texts) != 1:
                raise WorkbenchError("--pair needs exactly one --text (sentence A)", fix='workbench inspect A B --text "A" --pair "B"')
            texts = [f"{texts[0]} ||| {pair}"]
        if device not in ("cpu", "cuda"):
            raise WorkbenchError(f"unknown device {device!r}", fix="use --device cpu or cuda")
        options = QueryOptions(
            mode=mode, top_k=top_k, max_new_tokens=max_new_tokens, sample=sample, seed=seed,
            candidates=[c.strip() for c in (candidates or "").split(",") if c.strip()],
        )
        report = inspect_models(models, texts or None, options, out=out, with_probes=probes,
                                probes_only=probes and not texts, device=device)
    except WorkbenchError as error:
        fail(error)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), default=str) + "\n")
        return
    from rich.console import Console

    from workbench.inspector.render import report_renderables

    console = Console()
    for renderable in report_renderables(report):
        console.print(renderable)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
