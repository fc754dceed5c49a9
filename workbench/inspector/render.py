"""Rich renderables for an ``InspectReport``: what the CLI prints and the TUI pane shows.

Rich only (no Textual), so the CLI, the TUI and tests share one presentation.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from workbench.inspector.queries import QueryResult, Row, SideAnswer, Slot

MAX_BITS = 16.0


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


def slot_table(slot: Slot, label_a: str, label_b: str) -> Table:
    """Top-k on both sides; the right-hand columns say how each tuned token moved."""
    table = Table(title=escape(slot.label), title_justify="left", expand=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column(escape(label_a))
    table.add_column("p", justify="right")
    table.add_column(escape(label_b))
    table.add_column("p", justify="right")
    table.add_column("Δp (pts)", justify="right")
    table.add_column("rank vs " + escape(label_a), justify="left")
    rows_a, rows_b = slot.a.rows, slot.b.rows
    top_a = {r.key.lower() for r in rows_a}
    for i in range(max(len(rows_a), len(rows_b), 1)):
        ra = rows_a[i] if i < len(rows_a) else None
        rb = rows_b[i] if i < len(rows_b) else None
        cells: list[Any] = [str(i + 1)]
        cells += [Text(ra.token), _pct(ra.prob)] if ra else [Text(slot.a.note or "", style="dim italic") if i == 0 else "", ""]
        if rb:
            name = Text(rb.token, style="bold" if rb.key.lower() not in top_a else "")
            cells += [name, _pct(rb.prob), _prob_change(rb), _rank_change(rb)]
        else:
            cells += [Text(slot.b.note or "", style="dim italic") if i == 0 else "", "", "", ""]
        table.add_row(*cells)
    table.caption = escape(_methods(slot.a, slot.b, label_a, label_b))
    table.caption_justify = "left"
    return table


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
            parts.append(Text(f"{label}: {side['note']}", style="dim italic"))
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


def pair_block(data: dict, label_a: str, label_b: str) -> RenderableType:
    table = Table(title=escape(f"does B follow A?  A: {data['first']!r}  B: {data['second']!r}"), title_justify="left")
    table.add_column("model")
    table.add_column("P(B follows A)", justify="right")
    table.add_column("how")
    for name, label in (("a", label_a), ("b", label_b)):
        side = data[name]
        if side.get("prob_next") is not None:
            value = _pct(side["prob_next"])
        elif side.get("gain") is not None:
            value = f"gain {side['gain']:+.3f} nats/token"
        else:
            value = "-"
        table.add_row(Text(label), value, Text(side.get("method") or "") or Text(side.get("note", ""), style="dim italic"))
    return table


def task_block(data: dict, label_a: str, label_b: str) -> RenderableType:
    head = data["head"]
    table = Table(title={"classify": "class probabilities", "tag": "tags", "qa": "answer span"}[head], title_justify="left")
    table.add_column(escape(label_a))
    table.add_column(escape(label_b))

    def cell(side: dict) -> RenderableType:
        if side.get("note"):
            return Text(side["note"], style="dim italic")
        if head == "classify":
            return Text("\n".join(f"{x['label']}: {_pct(x['prob'])}" for x in side["labels"]))
        if head == "tag":
            return Text(" ".join(f"{w['word']}/{w['tag']}" for w in side["words"]))
        return Text(f"{side['answer']!r} (chars {side['start']}-{side['end']}, p {side['score']:.2f})")

    table.add_row(cell(data["a"]), cell(data["b"]))
    return table


def continuation_block(data: dict, prompt: str, label_a: str, label_b: str) -> RenderableType:
    mode = "sampled" if data["sampled"] else "greedy"
    table = Table(title=f"continuations ({mode}, seed {data['seed']})", title_justify="left")
    table.add_column("model")
    table.add_column("continuation")
    table.add_column("how", style="dim")
    for name, label in (("a", label_a), ("b", label_b)):
        side = data[name]
        body = Text(prompt, style="dim") + Text(side["text"], style="bold") if not side.get("note") else Text(side["note"], style="dim italic")
        table.add_row(Text(label), body, Text(side.get("method", "")))
    return table


def query_renderable(result: QueryResult, label_a: str, label_b: str) -> RenderableType:
    parts: list[RenderableType] = [tokenisation_block(result, label_a, label_b)]
    parts += [slot_table(slot, label_a, label_b) for slot in result.slots]
    if result.continuation:
        parts.append(continuation_block(result.continuation, result.text, label_a, label_b))
    if result.surprisal:
        parts.append(surprisal_block(result.text, result.surprisal, label_a, label_b))
    if result.pair:
        parts.append(pair_block(result.pair, label_a, label_b))
    if result.task:
        parts.append(task_block(result.task, label_a, label_b))
    parts += [Text(note, style="dim") for note in result.notes]
    return Panel(Group(*parts), title=f"[bold]{result.mode}[/]: {escape(result.text)}", title_align="left")


def models_table(report: Any) -> Table:
    table = Table(title=escape(report.pairing.note), title_justify="left")
    for column in ("", "model", "architecture", "parameters", "tokenizer vocab"):
        table.add_column(column)
    pairing = report.pairing
    for label, ref, side in ((pairing.label_a, pairing.a, report.a), (pairing.label_b, pairing.b, report.b)):
        table.add_row(Text(label), Text(_short(ref.given)), f"{side.architecture} ({side.family})", f"{side.parameters / 1e6:.2f}M",
                      str(len(side.tokenizer)))
    return table


def _short(path: str, parts: int = 3) -> str:
    """The last few path components: enough to tell models apart in a narrow table."""
    pieces = path.rstrip("/").split("/")
    return path if len(pieces) <= parts else "…/" + "/".join(pieces[-parts:])


def forgetting_table(data: dict) -> Table:
    table = Table(title=f"forgetting: base eval split, {data['evals']} evals (steps {data['first_step']}-{data['last_step']})",
                  title_justify="left")
    for column in ("curve", "first", "last", "change"):
        table.add_column(column, justify="left" if column == "curve" else "right")
    for name, curve in data["curves"].items():
        worse = curve["change"] > 0 if "loss" in name or "perplexity" in name else curve["change"] < 0
        table.add_row(Text(name), f"{curve['first']:.4f}", f"{curve['last']:.4f}",
                      Text(f"{curve['change']:+.4f}", style="red" if worse else "green"))
    return table


def probe_timeline_tables(timeline: dict[str, list[dict]]) -> list[RenderableType]:
    """One table per probe: its top-1 and probability at every recorded step."""
    if not timeline:
        return [Text("no probes recorded (probes.jsonl is missing or empty)", style="dim")]
    tables: list[RenderableType] = []
    for probe, points in timeline.items():
        title = f"probe: {probe}"
        table = Table(title=escape(title), title_justify="left", min_width=min(len(title) + 2, 100))
        table.add_column("step", justify="right")
        table.add_column("top-1")
        table.add_column("p", justify="right")
        table.add_column("")
        previous = None
        for point in points:
            if point.get("skipped"):
                table.add_row(str(point["step"]), Text(point["skipped"], style="dim italic"), "", "")
                continue
            changed = previous is not None and point["top1"] != previous
            bar = "█" * int(round(10 * (point["prob"] or 0)))
            table.add_row(str(point["step"]), Text(str(point["top1"]), style="bold yellow" if changed else ""),
                          _pct(point["prob"]), Text(bar, style="cyan"))
            previous = point["top1"]
        methods = sorted({p["method"] for p in points if p.get("method")})
        if methods:
            table.caption = escape("; ".join(methods))
            table.caption_justify = "left"
        tables.append(table)
    return tables


def report_renderables(report: Any) -> Iterable[RenderableType]:
    if report.a is not None:
        yield models_table(report)
    else:
        yield Text(report.pairing.note, style="bold")
    for query in report.queries:
        yield query_renderable(query, report.pairing.label_a, report.pairing.label_b)
    if report.forgetting:
        yield forgetting_table(report.forgetting)
    if report.probes is not None:
        yield from probe_timeline_tables(report.probes)
