"""`workbench inspect`: base vs fine-tuned predictions side by side (or any two or more models)."""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from workbench.commands.common import err_console, fail, keyword_option
from workbench.commands.inspect_diff import diff_command
from workbench.errors import WorkbenchError

INSPECT_PARAMETERS = [
    inspect.Parameter("models", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[str], default=typer.Argument(
        ..., help="A run (its base vs its result), or two or more models side by side (e.g. BASE LORA_RUN FULL_RUN): "
                  "run dirs, local HF dirs, hub ids, or a LoRA adapter/ folder (loaded on the first model).")),
    keyword_option("text", Optional[list[str]], typer.Option(
        None, "--text", "-t", help="Query: text with [MASK] or ___, a prompt, or 'A ||| B'. Repeatable. Default: the run's probes.")),
    keyword_option("pair", Optional[str], typer.Option(
        None, "--pair", help="Second sentence: asks whether it follows --text (next-sentence prediction).")),
    keyword_option("mode", str, typer.Option("auto", "--mode", help="auto, mask, next, surprisal, pair, task, or diff (--text as a passage).")),
    keyword_option("passage", Optional[str], typer.Option(
        None, "--passage", help="Token-level diff of a passage file: every token's log-probability under both models.")),
    keyword_option("corpus", Optional[str], typer.Option(None, "--corpus", help="Token-level diff of a corpus document (with --doc).")),
    keyword_option("doc", Optional[int], typer.Option(None, "--doc", min=0, help="Which document of --corpus (0-based).")),
    keyword_option("split", str, typer.Option("eval", "--split", help="Corpus split for --corpus and --corpus-diff: eval or train.")),
    keyword_option("corpus_diff", Optional[str], typer.Option(
        None, "--corpus-diff", help="Rank a corpus's documents by the mean change per token (which text the fine-tune helped or hurt).")),
    keyword_option("docs", int, typer.Option(50, "--docs", min=1, help="Documents --corpus-diff scores (the split's first N).")),
    keyword_option("layers", bool, typer.Option(
        False, "--layers", help="Layer view (logit lens): each layer's top-1 at the --text's first mask (or next token).")),
    keyword_option("top_k", int, typer.Option(5, "--top-k", "-k", min=1, max=50, help="Predictions shown per side.")),
    keyword_option("candidates", Optional[str], typer.Option(
        None, "--candidates", help="Comma-separated fill-ins a causal model ranks for each mask.")),
    keyword_option("max_new_tokens", int, typer.Option(12, "--max-new-tokens", min=0, max=200, help="Length of each continuation.")),
    keyword_option("sample", bool, typer.Option(False, "--sample", help="Sample continuations (same seed on both sides) instead of greedy.")),
    keyword_option("seed", int, typer.Option(0, "--seed", help="Seed for sampled continuations.")),
    keyword_option("probes", bool, typer.Option(False, "--probes", help="Print the run's probe timeline (top-1 and probability per eval).")),
    keyword_option("out", str, typer.Option("checkpoints", "--out", help="Run root for run names.")),
    keyword_option("device", str, typer.Option("cpu", "--device", help="cpu or cuda.")),
    keyword_option("as_json", bool, typer.Option(
        False, "--json", help="Print the report as one JSON document (schema: workbench.inspector.report).")),
]
"""The command's arguments, listed rather than spelled as twenty function parameters."""


def inspect_command(**options: Any) -> None:
    """Compare two models' predictions: masked fill-in, next token, surprisal, NSP, task heads.

    `workbench inspect RUN` compares a run's base with its final model (a from-scratch run:
    its earliest checkpoint with its final model) on the run's probes.
    """
    from workbench.inspector import QueryOptions, inspect_models  # loads torch: only when used

    if any(options[k] for k in ("passage", "corpus", "corpus_diff", "layers")) or options["doc"] is not None or options["mode"] == "diff":
        diff_command(options)
        return
    text, pair, device, probes = options["text"], options["pair"], options["device"], options["probes"]

    try:
        texts = list(text or [])
        if pair is not None:
            if len(texts) != 1:
                raise WorkbenchError("--pair needs exactly one --text (sentence A)", fix='workbench inspect A B --text "A" --pair "B"')
            texts = [f"{texts[0]} ||| {pair}"]
        if device not in ("cpu", "cuda"):
            raise WorkbenchError(f"unknown device {device!r}", fix="use --device cpu or cuda")
        query = QueryOptions(
            mode=options["mode"], top_k=options["top_k"], max_new_tokens=options["max_new_tokens"],
            sample=options["sample"], seed=options["seed"],
            candidates=[c.strip() for c in (options["candidates"] or "").split(",") if c.strip()],
        )
        report = inspect_models(options["models"], texts or None, query, out=options["out"], with_probes=probes,
                                probes_only=probes and not texts, device=device)
    except WorkbenchError as error:
        fail(error)
    if options["as_json"]:
        sys.stdout.write(json.dumps(report.to_json(), default=str) + "\n")
    else:
        from workbench.inspector.render import report_renderables  # loads torch: only when used

        console = Console()
        for renderable in report_renderables(report):
            console.print(renderable)
    warn_unreadable(report)


def warn_unreadable(report: Any) -> None:
    """On stderr (stdout may be a JSON document): what the readers skipped in a damaged run."""
    if report.pairing.run is None:
        return
    from workbench.inspector.probes import unreadable_notes  # loads torch: only when used

    for note in unreadable_notes(report.pairing.run.path):
        err_console.print(f"warning: {note}", markup=False)


inspect_command.__signature__ = inspect.Signature(INSPECT_PARAMETERS)  # type: ignore[attr-defined]
