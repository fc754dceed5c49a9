"""`workbench inspect ... --passage/--corpus/--doc/--mode diff`, `--layers` and `--corpus-diff`:
where fine-tuning changed the model (token by token, layer by layer, document by document)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from workbench.commands.common import fail
from workbench.errors import WorkbenchError
from workbench.inspector import render_diff

SCHEMA = "workbench.inspect.diff/1"
"""``--json``: {"schema", "pairing", "models": {"a", "b"}, and one of "diff" (a passage,
``PassageDiff.to_json``), "layers" (``LensResult.to_json`` per text) or "corpus_diff"
(``CorpusDiff.to_json``)}; log-probabilities and changes in nats."""


def passage_of(options: dict[str, Any]) -> str:
    """The passage the flags name: --passage FILE, --corpus NAME --doc N, or one --text."""
    from workbench.inspector.corpusdiff import corpus_document, read_passage_file  # loads torch: only when used

    texts = list(options["text"] or [])
    given = [name for name, value in (("--passage", options["passage"]), ("--corpus", options["corpus"]), ("--text", texts)) if value]
    if len(given) > 1:
        raise WorkbenchError(f"{' and '.join(given)} both name the passage", fix="give one of --passage FILE, --corpus NAME --doc N, --text TEXT")
    if options["passage"]:
        return read_passage_file(options["passage"])
    if options["corpus"] or options["doc"] is not None:
        if not options["corpus"] or options["doc"] is None:
            raise WorkbenchError("--corpus and --doc go together", fix="workbench inspect BASE TUNED --corpus domain --doc 3")
        return corpus_document(options["corpus"], options["doc"], options["split"])
    if len(texts) != 1:
        raise WorkbenchError("the token diff needs one passage", fix="give --passage FILE, --corpus NAME --doc N, or one --text")
    return texts[0]


def diff_command(options: dict[str, Any]) -> None:
    """Load the pair once, then the layer view, the corpus view or the passage diff."""
    from workbench.inspector.report import load_compared  # loads torch: only when used

    try:
        if options["device"] not in ("cpu", "cuda"):
            raise WorkbenchError(f"unknown device {options['device']!r}", fix="use --device cpu or cuda")
        if options["layers"] and not options["text"]:
            raise WorkbenchError("--layers reads the slot of a --text", fix='workbench inspect BASE TUNED --text "The cat sat on the [MASK]." --layers')
        passage = None if options["layers"] or options["corpus_diff"] else passage_of(options)
        pairing, a, b = load_compared(options["models"], out=options["out"], device=options["device"])
        labels = (pairing.label_a, pairing.label_b)
        document, renderables = _run(options, a, b, labels, passage)
    except WorkbenchError as error:
        fail(error)
    if options["as_json"]:
        models = {"a": a.describe(labels[0], pairing.a), "b": b.describe(labels[1], pairing.b)}
        sys.stdout.write(json.dumps({"schema": SCHEMA, "pairing": pairing.note, "models": models, **document}) + "\n")
        return

    console = Console()
    console.print(Text(pairing.note, style="dim"))
    for renderable in renderables(console.color_system is not None):
        console.print(renderable)


def _run(options: dict[str, Any], a: Any, b: Any, labels: tuple[str, str], passage: str | None) -> tuple[dict, Any]:
    """(the JSON document's part, a function colour -> renderables) for the view asked for."""
    if options["layers"]:
        from workbench.inspector.lens import logit_lens  # loads torch: only when used

        lenses = [logit_lens(a, b, text, labels) for text in options["text"]]
        return {"layers": [lens.to_json() for lens in lenses]}, lambda colour: [render_diff.lens_table(lens) for lens in lenses]
    if options["corpus_diff"]:
        from workbench.inspector.corpusdiff import diff_corpus  # loads torch: only when used

        result = diff_corpus(a, b, options["corpus_diff"], split=options["split"], docs=options["docs"], labels=labels)
        return {"corpus_diff": result.to_json()}, lambda colour: render_diff.corpus_table(result)
    from workbench.inspector.tokendiff import diff_passage  # loads torch: only when used

    diff = diff_passage(a, b, passage or "", labels=labels)
    return {"diff": diff.to_json()}, lambda colour: render_diff.diff_renderables(diff, colour=colour)
