"""Rich renderables for the token diff, the layer view and the corpus view (CLI and TUI).

Colour: green where the tuned model is more confident than the base (a gain), red where it
is less (a loss), deeper for a larger change. Without colour, ``plain_marked`` writes the
passage with the larger changes marked in brackets instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from workbench.inspector.text import printable

if TYPE_CHECKING:  # the data modules import torch; the TUI imports this module at start-up
    from workbench.inspector.corpusdiff import CorpusDiff
    from workbench.inspector.lens import LensResult
    from workbench.inspector.tokendiff import PassageDiff, TokenScore

STEPS = (0.1, 0.5, 1.0, 2.0)
"""Change sizes (nats) at which the colour deepens; below the first, no colour."""
GAIN = ("#b7e4c7", "#74c69d", "#40916c", "#1b4332")
LOSS = ("#ffccd5", "#ff8fa3", "#e5383b", "#a4161a")
MARK_AT = 0.5
"""Plain form: changes at least this large (nats) are marked."""


def change_style(change: float | None) -> str:
    if change is None:
        return "dim"
    level = sum(abs(change) >= step for step in STEPS)
    if level == 0:
        return ""
    colour = (GAIN if change > 0 else LOSS)[level - 1]
    return f"{'white' if level > 2 else 'black'} on {colour}"


def legend() -> Text:
    text = Text("colour: ")
    text.append(" gain ", style=change_style(2.5)).append(" tuned more confident  ")
    text.append(" loss ", style=change_style(-2.5)).append(" tuned less confident; deeper = larger (0.1, 0.5, 1, 2 nats)")
    return text


def passage_strip(diff: PassageDiff, cursor: int | None = None) -> Text:
    """The passage with each token's background coloured by its change; ``cursor`` reversed."""
    strip = Text()
    at = 0
    for index, token in enumerate(diff.tokens):
        if token.start > at:
            strip.append(diff.text[at:token.start])
        piece = diff.text[token.start:token.end] or token.token
        style = change_style(token.change)
        if index == cursor:
            style = f"{style} reverse bold".strip()
        strip.append(piece, style=style)
        at = max(at, token.end)
    strip.append(diff.text[at:])
    return strip


def plain_marked(diff: PassageDiff, at_least: float = MARK_AT) -> str:
    """The passage with ``[+1.23 word]`` after gains and ``[-1.23 word]`` after losses of at
    least ``at_least`` nats; for terminals without colour and for pipes."""
    out, at = [], 0
    for token in diff.tokens:
        out.append(diff.text[at:token.start])
        piece = diff.text[token.start:token.end]
        change = token.change
        out.append(f"[{change:+.2f} {piece}]" if change is not None and abs(change) >= at_least else piece)
        at = max(at, token.end)
    out.append(diff.text[at:])
    return "".join(out)


def _top(top: list[tuple[str, float]], k: int) -> str:
    return " ".join(f"{printable(t)} {100 * p:.0f}%" for t, p in top[:k])


def changes_table(diff: PassageDiff, *, gains: bool, n: int = 10) -> Table | Text:
    largest = diff.largest(n, gains=gains)
    what = "gains (tuned more confident)" if gains else "losses (tuned less confident)"
    if not largest:
        return Text(f"no {what}", style="dim")
    table = Table(title=f"{len(largest)} largest {what}, nats", title_justify="left")
    for column, justify in (("token", "left"), ("in context", "left"), (diff.label_a, "right"), (diff.label_b, "right"),
                            ("change", "right"), (f"{diff.label_a} top-3", "left"), (f"{diff.label_b} top-3", "left")):
        table.add_column(escape(column), justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for index, token in largest:
        before, piece, after = diff.context_of(index, 14)
        context = Text(printable(before), style="dim").append(printable(piece), style="bold").append(printable(after), style="dim")
        table.add_row(Text(printable(piece)), context, f"{token.logprob_a:.2f}", f"{token.logprob_b:.2f}",
                      Text(f"{token.change:+.2f}", style="green" if gains else "red"), Text(_top(token.top_a, 3)), Text(_top(token.top_b, 3)))
    return table


def diff_header(diff: PassageDiff) -> Text:
    return Text(f"{diff.summary}\n{diff.window_note}", style="bold")


def diff_renderables(diff: PassageDiff, *, colour: bool = True, n: int = 10) -> list[RenderableType]:
    """What ``workbench inspect A B --passage FILE`` prints."""
    if colour:
        body: list[RenderableType] = [legend(), passage_strip(diff)]
    else:
        body = [Text(f"marked: [+x token] gain, [-x token] loss of at least {MARK_AT} nats (tuned − base log-probability)"),
                Text(plain_marked(diff))]
    return [diff_header(diff), *body, changes_table(diff, gains=True, n=n), changes_table(diff, gains=False, n=n)]


def cursor_panel(diff: PassageDiff, index: int, k: int = 5) -> RenderableType:
    """Both models' top-k at one token (the TUI's cursor)."""
    if not diff.tokens:
        return Text("no tokens", style="dim")
    token: TokenScore = diff.tokens[max(0, min(index, len(diff.tokens) - 1))]
    piece = printable(diff.text[token.start:token.end] or token.token)
    if token.change is None:
        head = Text(f"{piece}: not scored (nothing before it)", style="dim")
    else:
        head = Text(f"{piece}  {diff.label_a} {token.logprob_a:.2f}  {diff.label_b} {token.logprob_b:.2f}  ")
        head.append(f"change {token.change:+.2f} nats", style="green" if token.change > 0 else "red")
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column(escape(diff.label_a))
    table.add_column(escape(diff.label_b))
    for rank in range(min(k, max(len(token.top_a), len(token.top_b)))):
        cells = [f"{printable(top[rank][0])} {100 * top[rank][1]:.1f}%" if rank < len(top) else "" for top in (token.top_a, token.top_b)]
        table.add_row(str(rank + 1), *cells)
    return Group(head, table)


def lens_table(lens: LensResult) -> RenderableType:
    """Each layer's top-1 and its probability, base beside tuned."""
    parts: list[RenderableType] = []
    notes = [f"{label} left out: {side.note}" for label, side in ((lens.label_a, lens.a), (lens.label_b, lens.b)) if side.note]
    table = Table(title=f"layer view (logit lens) at {escape(lens.a.position or lens.b.position)}", title_justify="left")
    table.add_column("layer", justify="left")
    shown = [(label, side) for label, side in ((lens.label_a, lens.a), (lens.label_b, lens.b)) if not side.note]
    for label, _ in shown:
        table.add_column(f"{escape(label)} top-1", justify="left")
        table.add_column("p", justify="right")
    depth = max((len(side.rows) for _, side in shown), default=0)
    for layer in range(depth):
        name = "embeddings" if layer == 0 else f"layer {layer}" + (" (output)" if layer == depth - 1 else "")
        cells: list[str | Text] = [name]
        for _, side in shown:
            token, prob = side.rows[layer] if layer < len(side.rows) else ("", float("nan"))
            cells += [Text(printable(token)), f"{100 * prob:.1f}%"]
        table.add_row(*cells, style="bold" if lens.changed_from is not None and layer >= lens.changed_from else "")
    if shown:
        parts.append(table)
        methods = "; ".join(f"{label}: {side.method}" for label, side in shown)
        changed = (f"the top-1 answers differ from {'the embeddings' if lens.changed_from == 0 else f'layer {lens.changed_from}'} on (bold)"
                   if lens.changed_from is not None else "")
        parts.append(Text("; ".join(p for p in (changed, f"read through {methods}") if p), style="dim"))
    parts += [Text(note, style="yellow") for note in notes]
    return Group(*parts)


def corpus_table(result: CorpusDiff, n: int = 10) -> list[RenderableType]:
    """The most helped and most hurt documents (all of them in one table when few)."""
    ranked = result.ranked()
    out: list[RenderableType] = [Text(result.summary, style="bold")]
    if len(ranked) <= 2 * n:
        parts = [("documents, most helped first", ranked)]
    else:
        parts = [("most helped documents", ranked[:n]), ("most hurt documents", list(reversed(ranked[-n:])))]
    for title, rows in parts:
        table = Table(title=f"{title} (mean change per token, nats)", title_justify="left")
        for column, justify in (("doc", "right"), ("tokens", "right"), ("mean change", "right"), ("text", "left")):
            table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
        for doc in rows:
            table.add_row(str(doc.index), str(doc.tokens), Text(f"{doc.mean_change:+.3f}", style="green" if doc.mean_change > 0 else "red"),
                          Text(printable(doc.text.strip())[:80]))
        out.append(table)
    return out
