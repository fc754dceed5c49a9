"""Rich renderables for an ``InspectReport``: what the CLI prints and the TUI pane shows.

Rich only (no Textual), so the CLI, the TUI and tests share one presentation.

Output fits the models: a row or column that a model cannot answer (a GPT-2 has no
next-sentence head, a base has no classification head) is left out, and one dim line says
what was left out and why ("next-sentence rows left out: GPT2LMHeadModel has no
next-sentence head"), instead of a table of "no ... head" cells. ``--json`` keeps every
side and its note: this is presentation only.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from workbench.inspector.queries import QueryResult, Row, SideAnswer, Slot

MAX_BITS = 16.0
NO_HEAD = re.compile(r"no (?P<what>.+?) head \((?P<arch>[^()]+)\)")
"""How the inspector notes a missing head: ``no next-sentence head (GPT2LMHeadModel)``."""


def lacks(note: str) -> tuple[str, str]:
    """A side's note -> (what it lacks, e.g. ``next-sentence``; why, as a sentence):
    ``no next-sentence head (GPT2LMHeadModel)`` -> ``GPT2LMHeadModel has no next-sentence head``."""
    found = NO_HEAD.fullmatch(note.strip())
    if found is None:
        return "", note
    return found["what"], f"{found['arch']} has no {found['what']} head"


def left_out(what: str, notes: Iterable[str]) -> Text:
    """One line: ``<what> left out: <why>`` (each reason once)."""
    reasons = list(dict.fromkeys(lacks(note)[1] for note in notes if note))
    return Text(f"{what} left out: {'; '.join(reasons) or 'no answer'}", style="dim italic")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _rank_change(row: Row) -> Text:
    change = row.rank_change
    if row.other_rank is None:
        return Text("new", style="bold yellow")
    if change == 0:
        return Text("=", style="dim")
    return Text(f"{'▲' if change > 0 else '▼'}{abs(change)} (was #{row.other_rank})", style="green" if change > 0 else "red")


def _prob_change(row: Row) -> Text:
    change = row.prob_change
    if change is None:
        return Text("-", style="dim")
    if abs(change) < 0.0005:
        return Text("0.0", style="dim")
    style = "green" if change > 0.005 else "red" if change < -0.005 else "dim"
    return Text(f"{100 * change:+.1f}", style=style)


def _cannot(side: SideAnswer) -> bool:
    """The side has no way to answer (its note says why), as opposed to answering nothing."""
    return not side.rows and bool(side.note)


def slot_table(slot: Slot, label_a: str, label_b: str) -> RenderableType:
    """Top-k on both sides; the right-hand columns say how each tuned token moved. A side
    that cannot answer has no columns (and the comparison none either): a line says why."""
    show_a, show_b = not _cannot(slot.a), not _cannot(slot.b)
    gone = [(label, side) for label, side, shown in ((label_a, slot.a, show_a), (label_b, slot.b, show_b)) if not shown]
    lines = [left_out(f"{escape(label)} columns", [side.note]) for label, side in gone]
    if not (show_a or show_b):
        return Group(Text(slot.label, style="italic"), *lines)
    compare = show_a and show_b
    table = Table(title=escape(slot.label), title_justify="left", expand=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    for label, shown in ((label_a, show_a), (label_b, show_b)):
        if shown:
            table.add_column(escape(label))
            table.add_column("p", justify="right")
    if compare:
        table.add_column("Δp (pts)", justify="right")
        table.add_column("rank vs " + escape(label_a), justify="left")
    rows_a, rows_b = slot.a.rows, slot.b.rows
    top_a = {r.key.lower() for r in rows_a}
    for i in range(max(len(rows_a), len(rows_b), 1)):
        ra = rows_a[i] if i < len(rows_a) else None
        rb = rows_b[i] if i < len(rows_b) else None
        cells: list[Any] = [str(i + 1)]
        if show_a:
            cells += [Text(ra.token), _pct(ra.prob)] if ra else ["", ""]
        if show_b:
            name = Text(rb.token, style="bold" if compare and rb.key.lower() not in top_a else "") if rb else ""
            cells += [name, _pct(rb.prob) if rb else ""]
        if compare:
            cells += [_prob_change(rb), _rank_change(rb)] if rb else ["", ""]
        table.add_row(*cells)
    table.caption = escape(_methods(slot.a, slot.b, label_a, label_b))
    table.caption_justify = "left"
    return Group(table, *lines) if lines else table


def slot_table_several(slot: Slot, label_a: str, label_b: str, besides: list[tuple[str, Slot]]) -> RenderableType:
    """Three or more models side by side: ``a``'s top-k, then each other model's top-k with its
    probability change against ``a`` (Δp). A model that cannot answer has no columns."""
    sides = [(label_b, slot.b)] + [(label, other.b) for label, other in besides]
    shown = [(label, side) for label, side in sides if not _cannot(side)]
    lines = [left_out(f"{escape(label)} columns", [side.note]) for label, side in sides if _cannot(side)]
    show_a = not _cannot(slot.a)
    if not show_a:
        lines.insert(0, left_out(f"{escape(label_a)} columns", [slot.a.note]))
    table = Table(title=escape(slot.label), title_justify="left", expand=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    if show_a:
        table.add_column(escape(label_a))
        table.add_column("p", justify="right")
    for label, _ in shown:
        table.add_column(escape(label))
        table.add_column("p", justify="right")
        if show_a:
            table.add_column("Δp", justify="right")
    rows_a = slot.a.rows if show_a else []
    top_a = {r.key.lower() for r in rows_a}
    for i in range(max([len(rows_a)] + [len(side.rows) for _, side in shown] + [1])):
        cells: list[Any] = [str(i + 1)]
        if show_a:
            ra = rows_a[i] if i < len(rows_a) else None
            cells += [Text(ra.token), _pct(ra.prob)] if ra else ["", ""]
        for _, side in shown:
            row = side.rows[i] if i < len(side.rows) else None
            if row is None:
                cells += ["", ""] + ([""] if show_a else [])
                continue
            cells += [Text(row.token, style="bold" if show_a and row.key.lower() not in top_a else ""), _pct(row.prob)]
            if show_a:
                cells.append(_prob_change(row))
        table.add_row(*cells)
    captions = [_methods(slot.a, slot.b, label_a, label_b)] + [f"{label}: {other.b.method}" for label, other in besides if other.b.method]
    table.caption = escape("; ".join(c for c in captions if c) + ("; Δp: points against " + label_a if show_a else ""))
    table.caption_justify = "left"
    return Group(table, *lines) if lines else table


def _methods(a: SideAnswer, b: SideAnswer, label_a: str, label_b: str) -> str:
    parts = []
    for label, side in ((label_a, a), (label_b, b)):
        if side.method:
            parts.append(f"{label}: {side.method}" + (" ≈" if side.approximate else ""))
    return "; ".join(parts)


def surprisal_colour(bits: float | None) -> str:
    """Green (expected) through yellow to red (surprising); grey when not scored."""
    if bits is None or not math.isfinite(bits):
        return "grey30"
    x = max(0.0, min(1.0, bits / MAX_BITS))
    red = int(255 * min(1.0, 2 * x))
    green = int(255 * min(1.0, 2 * (1 - x)))
    return f"rgb({red},{green},60)"


def surprisal_strip(text: str, tokens: list[dict]) -> Text:
    """The passage with each token's background coloured by its surprisal."""
    strip = Text()
    cursor = 0
    for token in tokens:
        start, end = token["start"], token["end"]
        if start > cursor:
            strip.append(text[cursor:start])
        piece = text[start:end] or token["token"]
        strip.append(piece, style=f"black on {surprisal_colour(token['bits'])}")
        cursor = max(cursor, end)
    strip.append(text[cursor:])
    return strip


def surprisal_block(text: str, data: dict, label_a: str, label_b: str) -> RenderableType:
    parts: list[RenderableType] = []
    for name, label in (("a", label_a), ("b", label_b)):
        side = data[name]
        if side.get("note"):
            parts.append(left_out(f"{escape(label)} surprisal", [side["note"]]))
            continue
        mean = side.get("mean_bits")
        header = Text(f"{label} surprisal (mean {mean:.2f} bits, {side['method']}): " if mean is not None else f"{label}: ", style="bold")
        parts.append(header + surprisal_strip(text, side["tokens"]))
    if data.get("changes"):
        table = Table(title=f"largest surprisal changes (by {data['unit']})", title_justify="left")
        for column in (data["unit"], f"{label_a} bits", f"{label_b} bits", "change"):
            table.add_column(escape(column), justify="left" if column == data["unit"] else "right")
        for change in data["changes"]:
            delta = change["change"]
            table.add_row(Text(change["unit"]), f"{change['a_bits']:.2f}", f"{change['b_bits']:.2f}",
                          Text(f"{delta:+.2f}", style="green" if delta < 0 else "red"))
        parts.append(table)
    return Group(*parts)


def tokenisation_block(result: QueryResult, label_a: str, label_b: str) -> RenderableType:
    tok = result.tokenization
    if tok.same:
        return Text(f"tokenisation: the same on both sides ({len(tok.a)} tokens)", style="dim")
    table = Table(title="tokenisation differs", title_justify="left")
    table.add_column("word")
    table.add_column(label_a)
    table.add_column(label_b)
    for diff in tok.differences:
        table.add_row(Text(diff["word"]), Text(" ".join(diff["a"])), Text(" ".join(diff["b"])))
    return table


def _answers_pair(side: dict) -> bool:
    return side.get("prob_next") is not None or side.get("gain") is not None


def pair_block(data: dict, label_a: str, label_b: str, architectures: tuple[str, str] = ("", "")) -> RenderableType:
    """P(B follows A) from a next-sentence head; a causal side's log-prob gain (not a
    probability) in a column of its own. A model with neither has no row, and the P column
    is there only if some model has the head: a line says what was left out and why."""
    title = f"does B follow A?  A: {data['first']!r}  B: {data['second']!r}"
    sides = [(label, data[name], arch or label) for name, label, arch in (("a", label_a, architectures[0]),
                                                                           ("b", label_b, architectures[1]))]
    answering = [(label, side) for label, side, _ in sides if _answers_pair(side)]
    silent = [(label, side.get("note", "")) for label, side, _ in sides if not _answers_pair(side)]
    if not answering:
        what = lacks(silent[0][1])[0]
        return Group(Text(title, style="italic"), left_out(f"{what} rows".strip(), [note for _, note in silent]))
    lines: list[RenderableType] = []
    if silent:
        lines.append(left_out(" and ".join(escape(label) for label, _ in silent) + " row", [note for _, note in silent]))
    with_prob = any(side.get("prob_next") is not None for _, side in answering)
    with_gain = any(side.get("gain") is not None for _, side in answering)
    if not with_prob:
        heads = [f"no next-sentence head ({arch})" for _, side, arch in sides if _answers_pair(side)]
        lines.append(left_out("P(B follows A) column", heads))
    table = Table(title=escape(title), title_justify="left")
    table.add_column("model")
    if with_prob:
        table.add_column("P(B follows A)", justify="right")
    if with_gain:
        table.add_column("gain of B after A", justify="right")
    table.add_column("how")
    for label, side in answering:
        cells: list[Any] = [Text(label)]
        if with_prob:
            cells.append(_pct(side["prob_next"]) if side.get("prob_next") is not None else "-")
        if with_gain:
            cells.append(f"{side['gain']:+.3f} nats/token" if side.get("gain") is not None else "-")
        table.add_row(*cells, Text(side.get("method") or ""))
    return Group(table, *lines) if lines else table


def task_block(data: dict, label_a: str, label_b: str, more: list[tuple[str, dict]] = ()) -> RenderableType:
    """The task head's answer per model; a model without the head has no column (a line says so).
    ``more``: further models' sides (label, side), each a column after ``b``'s."""
    head = data["head"]
    table = Table(title={"classify": "class probabilities", "tag": "tags", "qa": "answer span"}[head], title_justify="left")
    sides = [(label, data[name]) for name, label in (("a", label_a), ("b", label_b))] + list(more)
    shown = [(label, side) for label, side in sides if not side.get("note")]
    lines = [left_out(f"{escape(label)} column", [side["note"]]) for label, side in sides if side.get("note")]
    if not shown:
        return Group(*lines)

    def cell(side: dict) -> RenderableType:
        if head == "classify":
            return Text("\n".join(f"{x['label']}: {_pct(x['prob'])}" for x in side["labels"]))
        if head == "tag":
            return Text(" ".join(f"{w['word']}/{w['tag']}" for w in side["words"]))
        return Text(f"{side['answer']!r} (chars {side['start']}-{side['end']}, p {side['score']:.2f})")

    for label, _ in shown:
        table.add_column(escape(label))
    table.add_row(*(cell(side) for _, side in shown))
    return Group(table, *lines) if lines else table


def continuation_block(data: dict, prompt: str, label_a: str, label_b: str, more: list[tuple[str, dict]] = ()) -> RenderableType:
    """Each model's continuation; a model that cannot generate has no row (a line says so)."""
    mode = "sampled" if data["sampled"] else "greedy"
    sides = [(label, data[name]) for name, label in (("a", label_a), ("b", label_b))] + list(more)
    lines = [left_out(f"{escape(label)} continuation", [side["note"]]) for label, side in sides if side.get("note")]
    if len(lines) == len(sides):
        return Group(*lines)
    table = Table(title=f"continuations ({mode}, seed {data['seed']})", title_justify="left")
    table.add_column("model")
    table.add_column("continuation")
    table.add_column("how", style="dim")
    for label, side in sides:
        if not side.get("note"):
            table.add_row(Text(label), Text(prompt, style="dim") + Text(side["text"], style="bold"), Text(side.get("method", "")))
    return Group(table, *lines) if lines else table


def query_renderable(result: QueryResult, label_a: str, label_b: str, architectures: tuple[str, str] = ("", ""),
                     more: list[tuple[str, QueryResult]] = ()) -> RenderableType:
    """One query's answers. ``more``: further models' answers to the same text (each compared
    with ``a``), shown as more columns (fill-in, task heads) or rows (continuations) of the
    same tables, and for surprisal and sentence pairs as blocks of their own."""
    same_mode = [(label, other) for label, other in more if other.mode == result.mode]
    parts: list[RenderableType] = [tokenisation_block(result, label_a, label_b)]
    for index, slot in enumerate(result.slots):
        besides = [(label, other.slots[index]) for label, other in same_mode if index < len(other.slots)]
        parts.append(slot_table_several(slot, label_a, label_b, besides) if besides else slot_table(slot, label_a, label_b))
    if result.continuation:
        extra = [(label, other.continuation["b"]) for label, other in same_mode if other.continuation]
        parts.append(continuation_block(result.continuation, result.text, label_a, label_b, extra))
    if result.surprisal:
        parts.append(surprisal_block(result.text, result.surprisal, label_a, label_b))
        parts += [surprisal_block(result.text, other.surprisal, label_a, label) for label, other in same_mode if other.surprisal]
    if result.pair:
        parts.append(pair_block(result.pair, label_a, label_b, architectures))
        parts += [pair_block(other.pair, label_a, label) for label, other in same_mode if other.pair]
    if result.task:
        extra = [(label, other.task["b"]) for label, other in same_mode if other.task and other.task["head"] == result.task["head"]]
        parts.append(task_block(result.task, label_a, label_b, extra))
    parts += [Text(note, style="dim") for note in result.notes]
    parts += [Text(f"{label}: asked as {other.mode} (its heads differ)", style="dim") for label, other in more if other.mode != result.mode]
    return Panel(Group(*parts), title=f"[bold]{result.mode}[/]: {escape(result.text)}", title_align="left")


def models_table(report: Any) -> Table:
    table = Table(title=escape(report.pairing.note), title_justify="left")
    for column in ("", "model", "architecture", "parameters", "tokenizer vocab"):
        table.add_column(column)
    pairing = report.pairing
    besides = [(m.label, m.ref, m.model) for m in getattr(report, "more", [])]
    for label, ref, side in ((pairing.label_a, pairing.a, report.a), (pairing.label_b, pairing.b, report.b), *besides):
        table.add_row(Text(label), Text(_short(ref.given)), f"{side.architecture} ({side.family})", f"{side.parameters / 1e6:.2f}M",
                      str(len(side.tokenizer)))
    return table


def _short(path: str, parts: int = 3) -> str:
    """The last few path components: enough to tell models apart in a narrow table."""
    pieces = path.rstrip("/").split("/")
    return path if len(pieces) <= parts else "…/" + "/".join(pieces[-parts:])


def forgetting_table(data: dict, label: str = "") -> Table:
    who = f" of {label}" if label else ""
    table = Table(title=f"forgetting{escape(who)}: base eval split, {data['evals']} evals (steps {data['first_step']}-{data['last_step']})",
                  title_justify="left")
    for column in ("curve", "first", "last", "change"):
        table.add_column(column, justify="left" if column == "curve" else "right")
    for name, curve in data["curves"].items():
        worse = curve["change"] > 0 if "loss" in name or "perplexity" in name else curve["change"] < 0
        table.add_row(Text(name), f"{curve['first']:.4f}", f"{curve['last']:.4f}",
                      Text(f"{curve['change']:+.4f}", style="red" if worse else "green"))
    return table


def probe_timeline_tables(timeline: dict[str, list[dict]]) -> list[RenderableType]:
    """One table per probe: its top-1 and probability at every recorded step. Steps at
    which the model could not answer the probe are left out, with one line saying why; a
    probe it never answered (a pair probe on a GPT-2) has that line and no table."""
    if not timeline:
        return [Text("no probes recorded (probes.jsonl is missing or empty)", style="dim")]
    tables: list[RenderableType] = []
    for probe, points in timeline.items():
        skipped = [point["skipped"] for point in points if point.get("skipped")]
        answered = [point for point in points if not point.get("skipped")]
        if not answered:
            what = lacks(skipped[0])[0]
            line = left_out(f"{what} rows".strip(), skipped)
            tables.append(line.append(f" (probe: {probe})", style="dim italic"))
            continue
        tables.append(_probe_table(probe, answered, skipped))
    return tables


def _probe_table(probe: str, points: list[dict], skipped: list[str]) -> RenderableType:
    title = f"probe: {probe}"
    table = Table(title=escape(title), title_justify="left", min_width=min(len(title) + 2, 100))
    table.add_column("step", justify="right")
    table.add_column("top-1")
    table.add_column("p", justify="right")
    table.add_column("")
    previous = None
    for point in points:
        changed = previous is not None and point["top1"] != previous
        bar = "█" * int(round(10 * (point["prob"] or 0)))
        table.add_row(str(point["step"]), Text(str(point["top1"]), style="bold yellow" if changed else ""),
                      _pct(point["prob"]), Text(bar, style="cyan"))
        previous = point["top1"]
    methods = sorted({p["method"] for p in points if p.get("method")})
    if methods:
        table.caption = escape("; ".join(methods))
        table.caption_justify = "left"
    if not skipped:
        return table
    return Group(table, left_out(f"{len(skipped)} step{'s' if len(skipped) > 1 else ''}", skipped))


def report_renderables(report: Any) -> Iterable[RenderableType]:
    if report.a is not None:
        yield models_table(report)
    else:
        yield Text(report.pairing.note, style="bold")
    architectures = (report.a.architecture, report.b.architecture) if report.a is not None and report.b is not None else ("", "")
    more = getattr(report, "more", [])
    for index, query in enumerate(report.queries):
        besides = [(m.label, m.queries[index]) for m in more if index < len(m.queries)]
        yield query_renderable(query, report.pairing.label_a, report.pairing.label_b, architectures, besides)
    by_model = getattr(report, "forgetting_by_model", {})
    if more and by_model:  # several models: each run's forgetting table
        for label, data in by_model.items():
            if data:
                yield forgetting_table(data, label)
            elif label != report.pairing.label_a:
                yield Text(f"forgetting of {label}: no base-eval evals logged (its base is no workbench run)", style="dim")
    elif report.forgetting:
        yield forgetting_table(report.forgetting)
    if report.probes is not None:
        yield from probe_timeline_tables(report.probes)
