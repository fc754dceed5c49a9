"""Inspector pane: two or three models' predictions side by side, and a run's probe timeline.

All model work happens in ``workbench.inspector`` (no UI) inside a thread worker; the
worker builds Rich renderables and posts them back as a message, which the pane shows.
Models stay in the inspector's LRU cache, so the second query on the same pair is fast.

Choosing a run fills model A with it (its base vs its result) and shows its probe
timeline; when the pane is shown with model A empty, it preselects ``suggested_run`` (the
app sets it to the run highlighted in the Runs pane). The second run menu ("beside…")
puts another run beside them as a third column and runs the query: a run alone in A is
then its base, the run and the other run, as ``workbench inspect BASE RUN OTHER`` shows
them (labelled by method: base | lora | full, Δp against the base, each run's forgetting
table); its blank entry goes back to two models. The run choices are the Runs pane's
list, which the app hands down (``set_runs``) whenever it changes.

Ctrl+G opens the Diff view: two passages side by side (by default a ``domain`` and a
``general`` document: what a domain fine-tune gained and what it forgot, word by word), each
token coloured by how much more (green) or less (red) likely the second model finds it; each
passage is the typed text or a corpus document. Left/right move a cursor over the tokens and
the panel below shows both models' top-k there. Ctrl+L shows the layer view (logit lens) of
the typed text's slot. Both run ``workbench.inspector`` in a thread worker; Escape cancels a
diff that is still scoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.corpora.sources import list_names
from workbench.errors import WorkbenchError
from workbench.inspector.render_diff import lens_table
from workbench.tui.heavy import import_heavy_libraries
from workbench.tui.widgets.field import FieldInput
from workbench.tui.widgets.token_diff import TokenDiffView

DEFAULT_TEXT = "The cat sat on the [MASK]."
TYPED = "typed text"
"""The Diff view's source that is the text box rather than a corpus document."""
DIFF_SIDES = (("left", "domain"), ("right", "general"))
"""The Diff view's two passages and the corpus each starts on."""


class InspectorPane(Vertical):
    """Its layout is in ``inspector.tcss``, which the app loads with the other panes' CSS."""

    @dataclass
    class Done(Message):
        """A finished inspection: renderables to show and a one-line status."""

        renderable: Any
        status: str

    @dataclass
    class DiffProgress(Message):
        """Scoring under way: ``done`` of ``total`` forward passes of one passage."""

        label: str
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, InspectorPane.DiffProgress)

    @dataclass
    class DiffDone(Message):
        """Both passages' diffs (``(title, PassageDiff)``), and the pair's note."""

        diffs: list[tuple[str, Any]]
        status: str

    SHOW_TIMING = True
    """Put the query time in the status line (snapshot tests turn it off)."""

    BINDINGS = [
        Binding("ctrl+r", "inspect", "Inspect", tooltip="Run the query on both models (also Enter in the text box)"),
        Binding("ctrl+t", "timeline", "Probes", tooltip="Show the selected run's probe timeline"),
        Binding("ctrl+g", "diff", "Diff", tooltip="Diff view: every token of two passages scored by both models, side by side"),
        Binding("ctrl+l", "layers", "Layers", tooltip="Layer view: each layer's top-1 at the text's slot (logit lens)"),
        Binding("escape", "cancel_diff", "Cancel", tooltip="Cancel the diff that is still scoring"),
    ]
    HELP_BINDINGS = BINDINGS + TokenDiffView.BINDINGS

    def __init__(self, run_root: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_root = Path(run_root)
        self.suggested_run: str | None = None
        """A run to preselect when the pane is shown with model A empty."""
        self._run_paths: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="inspect-row"):
            yield Select([], prompt="run…", id="inspect-run", allow_blank=True)
            yield Select([], prompt="beside…", id="inspect-beside", allow_blank=True,
                         tooltip="A second run, beside model A (and B) as a third column")
            yield FieldInput(placeholder="model A: run dir, HF folder or hub id", id="inspect-a")
            yield FieldInput(placeholder="model B (empty: A's base vs its result)", id="inspect-b")
        with Horizontal(classes="inspect-row"):
            yield FieldInput(value=DEFAULT_TEXT, placeholder="text with [MASK], a prompt, or 'A ||| B'", id="inspect-text")
            yield Button("Inspect", id="inspect-go", variant="primary")
        with Horizontal(classes="inspect-row", id="inspect-diff-row"):
            names = [TYPED, *self._corpus_names()]
            for side, corpus in DIFF_SIDES:
                yield Select([(n, n) for n in names], value=corpus if corpus in names else TYPED, allow_blank=False,
                             id=f"diff-{side}-source", tooltip=f"The {side} passage: the typed text or a corpus document")
                yield FieldInput("0", restrict=r"[0-9]*", refusal="a document number: 0, 1, 2…", id=f"diff-{side}-doc",
                                 tooltip="Which document of the corpus (0-based, its eval split)")
        yield Static("Pick a run or two models, then Enter.", id="inspect-status")
        with VerticalScroll(id="inspect-results"):
            yield Static("", id="inspect-output")
        with Horizontal(id="inspect-diff"):
            for side, _ in DIFF_SIDES:
                yield TokenDiffView(id=f"diff-{side}")

    def on_show(self) -> None:
        """Preselect ``suggested_run`` unless model A is filled in already."""
        if self.suggested_run and not self.query_one("#inspect-a", Input).value:
            self.choose_run(self.suggested_run)

    def focus_home(self) -> None:
        """Leaving a field (escape): the results take the focus (arrows scroll them); in the
        Diff view, the left passage (arrows move its token cursor)."""
        self.query_one("#diff-left" if self.has_class("diffing") else "#inspect-results").focus()

    @staticmethod
    def _corpus_names() -> list[str]:
        return list_names()

    # ------------------------------------------------------------------ runs
    @property
    def run_choices(self) -> list[str]:
        """The runs the run menu offers."""
        return list(self._run_paths)

    def set_runs(self, paths: list[str]) -> None:
        """The runs under the run root (the app hands them down whenever the Runs pane's list
        changes); the run chosen stays chosen while it is there."""
        if list(paths) != self._run_paths:
            self._set_runs(paths)

    def _set_runs(self, paths: list[str]) -> None:
        self._run_paths = list(paths)
        for select in self.query("#inspect-run, #inspect-beside").results(Select):
            current = select.value
            with select.prevent(Select.Changed):
                select.set_options([(escape(Path(p).name), p) for p in self._run_paths])  # a name is not markup
                if current in self._run_paths:
                    select.value = current

    def choose_run(self, path: str) -> None:
        """Compare this run's base with its result, and show its probe timeline."""
        if path not in self._run_paths:
            self._set_runs(self._run_paths + [path])
        select = self.query_one("#inspect-run", Select)
        with select.prevent(Select.Changed):
            select.value = path
        self._use_run(path)

    @on(Select.Changed, "#inspect-run")
    def _run_selected(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._use_run(event.value)

    def _use_run(self, path: str) -> None:
        self.query_one("#inspect-a", Input).value = path
        self.query_one("#inspect-b", Input).value = ""
        self.action_timeline()

    @property
    def beside(self) -> str | None:
        """The run chosen in the second run menu (a third column), or None."""
        value = self.query_one("#inspect-beside", Select).value
        return value if isinstance(value, str) else None

    def choose_beside(self, path: str | None) -> None:
        """Put this run beside model A (and B) as a third column and run the query; None: two
        models again."""
        if path is not None and path not in self._run_paths:
            self._set_runs(self._run_paths + [path])
        select = self.query_one("#inspect-beside", Select)
        with select.prevent(Select.Changed):
            select.value = path if path is not None else Select.NULL
        self.action_inspect()

    @on(Select.Changed, "#inspect-beside")
    def _beside_selected(self, event: Select.Changed) -> None:
        self.action_inspect()

    # ------------------------------------------------------------------ queries
    @on(Input.Submitted)
    @on(Button.Pressed, "#inspect-go")
    def _submit(self, event: Message) -> None:
        event.stop()
        self.action_inspect()

    def models(self) -> list[str]:
        return [v for v in (self.query_one("#inspect-a", Input).value.strip(), self.query_one("#inspect-b", Input).value.strip()) if v]

    def action_inspect(self) -> None:
        self.remove_class("diffing")
        models = self.models()
        if not models:
            self._status("Pick a run, or give model A (and B).", error=True)
            return
        text = self.query_one("#inspect-text", Input).value
        beside = self.beside
        with_third = f", {Path(beside).name} beside" if beside else ""
        self._status(f"Inspecting {' vs '.join(Path(m).name or m for m in models)}{with_third}…")
        self.inspect(models, text, beside)

    def action_timeline(self) -> None:
        models = self.models()
        if len(models) == 1:
            self._status("Reading the probe timeline…")
            self.inspect(models, None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspect")
    def inspect(self, models: list[str], text: str | None, beside: str | None = None) -> None:
        """Thread worker: load (cached) and query the models, build Rich output. ``beside``:
        a third model (a run alone in ``models`` is then its base and itself)."""
        if not import_heavy_libraries():
            return  # cancelled while the libraries load
        from workbench.inspector import QueryOptions, inspect_models  # loads torch: only when used
        from workbench.inspector.pairing import with_beside  # loads torch: only when used
        from workbench.inspector.probes import unreadable_notes  # loads torch: only when used
        from workbench.inspector.render import report_renderables  # loads torch: only when used

        worker = get_current_worker()
        started = time.perf_counter()
        out = str(self.run_root)
        if beside and text is not None:
            models = with_beside(models, beside, out)  # reads the run's base from its run.toml
        if text is None:
            report = inspect_models(models, out=out, probes_only=True)
        else:
            report = inspect_models(models, [text], QueryOptions(max_new_tokens=8), out=out, with_probes=len(models) == 1)
        if worker.is_cancelled:
            return
        seconds = time.perf_counter() - started
        timing = f"  ({seconds * 1000:.0f} ms)" if self.SHOW_TIMING else ""
        skipped = unreadable_notes(report.pairing.run.path) if report.pairing.run is not None else []
        status = "  ·  ".join([report.pairing.note + timing, *skipped])  # a damaged run: what was skipped
        self.post_message(self.Done(Group(*report_renderables(report)), status))

    def on_inspector_pane_done(self, message: InspectorPane.Done) -> None:
        message.stop()
        self.query_one("#inspect-output", Static).update(message.renderable)
        self._status(message.status)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group not in ("inspect", "diff"):
            return
        event.stop()  # shown here, not as the app's generic notification
        self.refresh_bindings()  # Escape cancels only while a diff runs
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            text = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
            if event.worker.group == "inspect":
                self.query_one("#inspect-output", Static).update(Text(""))
            self._status(text, error=True)
        elif event.state == WorkerState.CANCELLED and event.worker.group == "diff":
            self._status("Diff cancelled.")

    # ------------------------------------------------------------------ diff and layers
    def diff_sources(self) -> list[tuple[str, str, int]]:
        """(side, source, document) for the two passages: source is TYPED or a corpus name."""
        out = []
        for side, _ in DIFF_SIDES:
            source = self.query_one(f"#diff-{side}-source", Select).value
            doc = self.query_one(f"#diff-{side}-doc", Input).value
            out.append((side, str(source), int(doc) if doc.isdigit() else 0))
        return out

    def action_diff(self) -> None:
        """Show the Diff view and score both passages (thread worker)."""
        self.add_class("diffing")
        models = self.models()
        if not models:
            self._status("Pick a run, or give model A (and B).", error=True)
            return
        text = self.query_one("#inspect-text", Input).value
        for side, source, doc in self.diff_sources():
            self.query_one(f"#diff-{side}", TokenDiffView).say(_title(source, doc), "scoring…")
        self._status("Scoring both passages under both models…  (Escape cancels)")
        self.diff_worker(models, text, self.diff_sources())

    @work(thread=True, exclusive=True, exit_on_error=False, group="diff")
    def diff_worker(self, models: list[str], text: str, sources: list[tuple[str, str, int]]) -> None:
        """Thread worker: load the pair (cached), read the passages, score every token."""
        if not import_heavy_libraries():
            return
        from workbench.inspector.corpusdiff import corpus_document  # loads torch: only when used
        from workbench.inspector.report import load_compared  # loads torch: only when used
        from workbench.inspector.tokendiff import diff_passage  # loads torch: only when used

        worker = get_current_worker()
        pairing, a, b = load_compared(models, out=str(self.run_root))
        diffs = []
        for _, source, doc in sources:
            passage = text if source == TYPED else corpus_document(source, doc)
            title = _title(source, doc)
            diffs.append((title, diff_passage(a, b, passage, labels=(pairing.label_a, pairing.label_b),
                                              progress=lambda done, total, t=title: self.post_message(self.DiffProgress(t, done, total)),
                                              cancelled=lambda: worker.is_cancelled)))
        if not worker.is_cancelled:
            self.post_message(self.DiffDone(diffs, f"{pairing.note}  ·  green: {pairing.label_b} more confident, red: less"))

    def on_inspector_pane_diff_progress(self, message: InspectorPane.DiffProgress) -> None:
        message.stop()
        self._status(f"Scoring {message.label}: {message.done}/{message.total} forward passes…  (Escape cancels)")

    def on_inspector_pane_diff_done(self, message: InspectorPane.DiffDone) -> None:
        message.stop()
        for (side, _), (title, diff) in zip(DIFF_SIDES, message.diffs):
            self.query_one(f"#diff-{side}", TokenDiffView).show(title, diff)
        self._status(message.status)
        self.query_one("#diff-left").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape is the pane's only while a diff runs; otherwise the app's (leave the field)."""
        if action == "cancel_diff":
            return any(w.group == "diff" and w.is_running for w in self.workers)
        return True

    def action_cancel_diff(self) -> None:
        self.workers.cancel_group(self, "diff")

    def action_layers(self) -> None:
        """The layer view of the typed text's slot, in the results."""
        self.remove_class("diffing")
        models = self.models()
        if not models:
            self._status("Pick a run, or give model A (and B).", error=True)
            return
        self._status("Reading every layer through the output head…")
        self.lens_worker(models, self.query_one("#inspect-text", Input).value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspect")
    def lens_worker(self, models: list[str], text: str) -> None:
        if not import_heavy_libraries():
            return
        from workbench.inspector.lens import logit_lens  # loads torch: only when used
        from workbench.inspector.report import load_compared  # loads torch: only when used

        pairing, a, b = load_compared(models, out=str(self.run_root))
        lens = logit_lens(a, b, text, (pairing.label_a, pairing.label_b))
        if not get_current_worker().is_cancelled:
            self.post_message(self.Done(lens_table(lens), pairing.note))

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#inspect-status", Static)
        status.update(Text(text))
        status.set_class(error, "error")


def _title(source: str, doc: int) -> str:
    return "typed text" if source == TYPED else f"{source} #{doc}"
