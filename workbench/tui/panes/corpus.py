"""Corpus pane: built-in, local and recently used hub corpora, with stats and a preview.

Loading a corpus (``load_corpus`` + ``stats_of``) can take seconds, so it runs in a thread
worker; the result comes back as a ``CorpusPane.Loaded`` message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.config import tomllib
from workbench.corpora import load_corpus
from workbench.corpora.sources import list_names
from workbench.corpora.stats import preview, stats_of
from workbench.errors import WorkbenchError
from workbench.tui.heavy import import_heavy_libraries
from workbench.tui.widgets.field import FieldInput


def format_stats(stats: object) -> str:
    """The stats block (no paths, no times: the pane must look the same on any machine)."""
    s = stats
    kind = {"builtin": "built-in", "local": "local file", "hub": "hub dataset"}.get(s.kind, s.kind)
    lines = [
        f"[b]{s.name}[/b]  [dim]{kind}[/dim]",
        f"documents      {s.documents:>10,}   eval {s.eval_documents:,}",
        f"characters    {'≈' if s.estimated else ' '}{s.characters:>10,}",
        f"words         {'≈' if s.estimated else ' '}{s.words:>10,}",
        f"est. tokens    {s.estimated_tokens:>10,}   [dim](~4 chars/token)[/dim]",
        f"text column    {s.text_column}",
    ]
    if s.estimated:
        lines.append(f"[dim]≈ scaled up from the first {s.sampled_documents:,} documents[/dim]")
    if s.label_counts:
        total = sum(s.label_counts.values()) or 1
        lines.append("labels")
        for label, count in s.label_counts.items():
            bar = "█" * max(1, round(20 * count / total))
            lines.append(f"  {label[:12]:<12} {count:>7,} {bar}")
    return "\n".join(lines)


def recent_hub_corpora(run_root: Path) -> list[str]:
    """Hub corpora named in the run root's ``run.toml`` files, newest first (cheap: no metrics)."""
    found: list[tuple[float, str]] = []
    if run_root.is_dir():
        for run_toml in run_root.glob("*/run.toml"):
            try:
                data = tomllib.loads(run_toml.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            corpus = data.get("spec", {}).get("corpus", "")
            if corpus.startswith("hf:"):
                found.append((float(data.get("meta", {}).get("created", 0)), corpus))
    seen: list[str] = []
    for _, corpus in sorted(found, reverse=True):
        if corpus not in seen:
            seen.append(corpus)
    return seen


def corpus_names(run_root: Path) -> list[str]:
    """What the pane offers: built-in and ``corpora/`` names, then hub corpora used before."""
    return list_names() + [c for c in recent_hub_corpora(run_root) if c not in list_names()]


class CorpusPane(Vertical):
    @dataclass
    class Loaded(Message):
        """Stats and preview of the highlighted corpus, computed in a thread worker."""

        name: str
        stats: object
        preview: list[str]

    @dataclass
    class Chosen(Message):
        """The user picked a corpus for the next run."""

        name: str

    BINDINGS = [
        Binding("u", "use", "Use corpus", tooltip="Use the highlighted corpus for the next run"),
        Binding("slash", "focus_path", "Add path", tooltip="Type a file/folder path or hf:NAME[:CONFIG]"),
    ]
    HELP_BINDINGS = BINDINGS + [Binding("enter", "use", "Use", tooltip="Use the highlighted corpus")]
    """The keys the help screen lists for this pane (Enter is the option list's own)."""

    def __init__(self, names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = list(names)
        self._cache: dict[str, CorpusPane.Loaded] = {}

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(*[Option(n, id=n) for n in self.names], id="corpus-list")
            with VerticalScroll(id="corpus-detail"):
                yield Static("Highlight a corpus to see its stats.", id="corpus-stats")
                yield Static("", id="corpus-preview")
        yield FieldInput(placeholder="/ add a path or hf:NAME[:CONFIG], then Enter", id="corpus-path", compact=True)

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        if self.names:
            option_list.highlighted = 0

    # ------------------------------------------------------------------ loading
    @on(OptionList.OptionHighlighted, "#corpus-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id or ""
        if name in self._cache:
            self._show(self._cache[name])
        else:
            self.query_one("#corpus-stats", Static).update(f"Loading [b]{name}[/b]…")
            self.query_one("#corpus-preview", Static).update("")
            self.load(name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="corpus")
    def load(self, name: str) -> None:
        if not import_heavy_libraries():
            return  # cancelled while the libraries load

        corpus = load_corpus(name)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.Loaded(name, stats_of(corpus), preview(corpus, count=4, width=240)))

    def on_corpus_pane_loaded(self, message: CorpusPane.Loaded) -> None:
        message.stop()
        self._cache[message.name] = message
        highlighted = self.query_one(OptionList).highlighted_option
        if highlighted is not None and highlighted.id == message.name:
            self._show(message)

    def _show(self, loaded: CorpusPane.Loaded) -> None:
        self.query_one("#corpus-stats", Static).update(format_stats(loaded.stats))

        body = "\n\n".join(f"[dim]{i + 1}.[/dim] {escape(text)}" for i, text in enumerate(loaded.preview))
        self.query_one("#corpus-preview", Static).update(f"\n[b]Preview[/b]\n{body}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A corpus that cannot be loaded is shown here as its one-line error (worker messages do not bubble)."""
        if event.state == WorkerState.ERROR and event.worker.group == "corpus":
            error = event.worker.error
            text = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
            self.show_error("Cannot load this corpus", text)

    def show_error(self, name: str, text: str) -> None:
        self.query_one("#corpus-stats", Static).update(f"[b]{name}[/b]\n[red]{escape(text)}[/red]")

    # ------------------------------------------------------------------ choosing
    def add_name(self, name: str) -> None:
        option_list = self.query_one(OptionList)
        if name not in self.names:
            self.names.append(name)
            option_list.add_option(Option(name, id=name))
        option_list.highlighted = self.names.index(name)

    @on(OptionList.OptionSelected, "#corpus-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.post_message(self.Chosen(event.option.id or ""))

    def action_use(self) -> None:
        option = self.query_one(OptionList).highlighted_option
        if option is not None:
            self.post_message(self.Chosen(option.id or ""))

    def focus_home(self) -> None:
        """Leaving the path field (escape): the corpus list takes the focus, so u and / work."""
        self.query_one(OptionList).focus()

    def action_focus_path(self) -> None:
        self.query_one("#corpus-path", Input).focus()

    @on(Input.Submitted, "#corpus-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not name:
            return
        event.input.value = ""
        self.add_name(name)
        self.query_one(OptionList).focus()
        self.post_message(self.Chosen(name))
