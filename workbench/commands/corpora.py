"""`workbench corpora` and `workbench corpora show NAME`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from workbench.commands.common import fail
from workbench.corpora import load_corpus
from workbench.corpora.stats import human_bytes, list_corpora, preview, stats_of
from workbench.errors import WorkbenchError

corpora_app = typer.Typer(help="List corpora, or preview one with `show`.", invoke_without_command=True)


@corpora_app.callback()
def corpora_list(ctx: typer.Context) -> None:
    """List the built-in corpora and those under corpora/ with size, documents and estimated tokens."""
    if ctx.invoked_subcommand is not None:
        return

    console = Console()
    table = Table(title="Corpora")
    for column in ("name", "kind", "size", "documents", "est. tokens", "eval split"):
        table.add_column(column, justify="right" if column in ("size", "documents", "est. tokens") else "left")
    for row in list_corpora():
        table.add_row(row.name, row.kind, human_bytes(row.size_bytes), f"{row.documents:,}", f"{row.estimated_tokens:,}", row.eval_source)
    console.print(table)
    console.print("[dim]Also: any local file or folder (.txt .md .rst .csv .tsv .jsonl .json .parquet), or hf:NAME[:CONFIG].[/]")


@corpora_app.command("show")
def corpora_show(
    name: str = typer.Argument(..., help="Built-in name, local path, or hf:NAME[:CONFIG]."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Text column of a tabular corpus."),
    count: int = typer.Option(5, "--count", "-n", help="Documents to preview."),
) -> None:
    """Preview a corpus and print its stats."""
    try:
        corpus = load_corpus(name, text_column=text_column)
    except WorkbenchError as error:
        fail(error)
    stats = stats_of(corpus)
    console = Console()
    table = Table(title=f"{stats.name} ({stats.kind})", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in (
        ("location", stats.location),
        ("size", human_bytes(stats.size_bytes)),
        ("documents", f"{stats.documents:,} train, {stats.eval_documents:,} eval"),
        ("characters", f"{'about ' if stats.estimated else ''}{stats.characters:,}"),
        ("words", f"{'about ' if stats.estimated else ''}{stats.words:,}"
                  + (f" (scaled up from the first {stats.sampled_documents:,} documents)" if stats.estimated else "")),
        ("estimated tokens", f"{stats.estimated_tokens:,} (about 4 characters a token)"),
        ("text column", stats.text_column),
        ("eval split", stats.eval_source),
    ):
        table.add_row(key, value)
    if stats.label_counts:
        table.add_row("labels", ", ".join(f"{k}: {v}" for k, v in stats.label_counts.items()))
    console.print(table)
    for i, text in enumerate(preview(corpus, count), start=1):
        console.print(f"[bold cyan]{i}.[/] {text}", highlight=False)
