"""The workbench's UX promises, driven with Pilot: focus you can see, Escape out of any
field, one key table for the help and the palette, `f` choosing a fine-tuning objective,
and run lists that follow the run root by themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import wait_until
from textual.geometry import Region
from textual.widgets import DataTable, Input, OptionList, Select, TabbedContent

from workbench.config import RunSpec
from workbench.tui.app import WorkbenchApp, create_app
from workbench.tui.panes.inspector import InspectorPane
from workbench.tui.panes.objective import base_is_decoder, finetune_objective
from workbench.tui.screens.help import HelpScreen
from workbench.tui.synthetic import SyntheticRun

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(run_root: Path, poll: float = 0) -> WorkbenchApp:
    return create_app(run_root, corpora=["general", "domain"], runs_poll_seconds=poll)


def finished_run(root: Path, name: str, objective: str = "clm", created: float = 1.0) -> Path:
    run = SyntheticRun(RunSpec(objective=objective, corpus="general", name=name, out=str(root)), steps=4, delay=0,
                       created=created).run()
    return run.path


# ---------------------------------------------------------------------------- A: focus and fields
async def test_focused_field_is_marked_and_typing_adds_to_its_value(run_root: Path) -> None:
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        lr = app.query_one("#f-lr", Input)
        lr.value = "0.001"  # set from code: Textual leaves the cursor at the start
        lr.focus()
        await pilot.press("5")
        assert lr.value == "0.0015", "typing replaced the value or went in before it"
        # the focused row has a bar beside it and its label in reverse video; the others neither
        label = lr.parent.query_one(".form-label")
        other = app.query_one("#f-seq_len").parent.query_one(".form-label")
        assert label.rich_style.reverse and not other.rich_style.reverse
        assert lr.parent.styles.border_left[0] not in ("", "none", "blank", "hidden")
        assert other.parent.styles.border_left[0] in ("", "none", "blank", "hidden")
        # a key the number field refuses says why
        await pilot.press("x")
        assert lr.value == "0.0015"
        assert any("learning rate takes a number or auto" in n.message for n in app._notifications)


async def test_escape_leaves_every_input_and_the_pane_keys_work_again(run_root: Path) -> None:
    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        tabs = app.query_one(TabbedContent)
        # Inspector: the query box, then a pane switch by its number
        await pilot.press("5")
        query = app.query_one("#inspect-text", Input)
        query.focus()
        await pilot.press("escape")
        assert app.focused is not query and not isinstance(app.focused, Input)
        await pilot.press("1")
        assert tabs.active == "corpus"
        # Corpus: the path field, then the pane's own keys (/ focuses the path again)
        await pilot.press("slash")
        assert app.focused is app.query_one("#corpus-path")
        await pilot.press("escape")
        assert isinstance(app.focused, OptionList)
        await pilot.press("slash")
        assert app.focused is app.query_one("#corpus-path")
        await pilot.press("escape")
        # Objective: a text field and a menu
        await pilot.press("2")
        app.query_one("#f-lr", Input).focus()
        await pilot.press("escape")
        assert not isinstance(app.focused, (Input, Select))
        await pilot.press("3")
        assert tabs.active == "train"


# ---------------------------------------------------------------------------- B: help and palette
def screen_words(text: str) -> str:
    return " ".join(text.split())


async def test_help_wraps_at_80_columns_and_lists_each_key_once(run_root: Path) -> None:
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        body = screen.query_one("#help-keys")
        scroller = screen.query_one("#help-scroll")
        assert body.size.width <= 80 and scroller.max_scroll_x == 0
        strips = body.render_lines(Region(0, 0, body.size.width, body.size.height))
        assert all(strip.cell_length <= body.size.width for strip in strips)
        rendered = screen_words(" ".join(strip.text for strip in strips))
        for entry in screen.entries:
            assert screen_words(entry.text) in rendered, f"help line cut: {entry.text!r}"
        pairs = [(b.key, b.action) for entry in screen.entries for b in entry.bindings]
        assert len(pairs) == len(set(pairs)), "a key is listed twice"
        # the corpus pane's u and Enter do one thing: one line
        use = [entry for entry in screen.entries if entry.where == "corpus" and entry.action == "use"]
        assert len(use) == 1 and {b.key for b in use[0].bindings} == {"u", "enter"}
        # End goes down, never sideways
        await pilot.press("end")
        await pilot.pause()
        assert scroller.scroll_x == 0 and scroller.scroll_y == scroller.max_scroll_y > 0


async def test_palette_runs_the_same_table_as_the_help(run_root: Path) -> None:
    from workbench.tui.commands import palette_entries

    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        entries = app.key_table()
        palette = palette_entries(app)
        assert {e.action for e in palette} <= {e.action for e in entries}
        assert "leave_input" not in {e.action for e in palette}
        texts = [e.text for e in palette]
        assert len(texts) == len(set(texts))
        # a pane's key from the palette: the pane is shown and the action runs there
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"smooth the train")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "train" and app.train_pane.chart.smoothing


# ---------------------------------------------------------------------------- C: f fine-tunes
async def test_finetune_key_chooses_a_finetuning_objective_for_the_base(run_root: Path) -> None:
    decoder = finished_run(run_root, "decoder", "clm", created=2.0)  # newest: first row
    encoder = finished_run(run_root, "encoder", "mlm", created=1.0)
    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        objective = app.query_one("#f-objective", Select)
        base = app.query_one("#f-base", Input)
        await pilot.press("4")
        await wait_until(pilot, lambda: app.query_one("#runs-table", DataTable).row_count == 2)
        await pilot.press("f")
        assert app.query_one(TabbedContent).active == "objective"
        assert base.value == str(decoder)
        await wait_until(pilot, lambda: objective.value == "generation")
        await pilot.press("4", "down", "f")
        assert base.value == str(encoder)
        await wait_until(pilot, lambda: objective.value == "sentiment")
        assert any("sentiment" in n.message for n in app._notifications)


def test_a_runs_model_config_decides_when_its_objective_does_not(tmp_path: Path) -> None:
    for model_type, expected in (("gpt2", "generation"), ("bert", "sentiment")):
        run = tmp_path / model_type
        (run / "model").mkdir(parents=True)
        (run / "run.toml").write_text('[spec]\nobjective = "qa"\n[meta]\ncreated = 1.0\n')
        (run / "model" / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert finetune_objective(str(run))[0] == expected
    assert base_is_decoder("some-org/some-hub-model")[0] is None  # not on disk: cannot be told


# ---------------------------------------------------------------------------- D: live lists
async def test_run_lists_follow_the_run_root_without_a_key(run_root: Path, tmp_path: Path) -> None:
    source = finished_run(tmp_path / "elsewhere", "copied")
    app = make_app(run_root, poll=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        inspector = app.query_one(InspectorPane)
        await pilot.pause(0.3)
        assert table.row_count == 0 and inspector.run_choices == []
        copied = run_root / "copied"
        shutil.copytree(source, copied)  # written by "another process": nothing pressed
        await wait_until(pilot, lambda: table.row_count == 1, timeout=10)
        await wait_until(pilot, lambda: inspector.run_choices == [str(copied.resolve())], timeout=10)
        assert table.get_row_at(0)[1] == "finished"
        status = copied / "status.json"
        status.write_text(json.dumps(dict(json.loads(status.read_text()), status="failed")))
        await wait_until(pilot, lambda: table.get_row_at(0)[1] == "failed", timeout=10)
        shutil.rmtree(copied)
        await wait_until(pilot, lambda: table.row_count == 0 and inspector.run_choices == [], timeout=10)


# ---------------------------------------------------------------------------- quitting
async def test_quit_does_not_wait_for_a_resolve_still_importing(run_root: Path, monkeypatch) -> None:
    """The Objective pane's resolve worker waits for torch & co.; quitting cancels it and the
    worker returns at once, while the (slow, here: held) import goes on in its daemon thread."""
    import threading

    from workbench.tui import heavy
    from workbench.tui.panes import objective

    release, returned = threading.Event(), []

    def slow_import() -> None:
        release.wait(60)
        heavy._READY.set()

    def recording(*args, **kwargs) -> bool:
        returned.append(heavy.import_heavy_libraries(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(heavy, "_READY", threading.Event())
    monkeypatch.setattr(heavy, "_thread", None)
    monkeypatch.setattr(heavy, "_import", slow_import)
    monkeypatch.setattr(objective, "import_heavy_libraries", recording)
    try:
        app = make_app(run_root)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: any(w.group == "resolve" and w.is_running for w in app.workers))
            resolve = next(w for w in app.workers if w.group == "resolve")
            await pilot.press("q")
        assert resolve.is_cancelled
        assert not release.is_set() and heavy._thread.is_alive()  # the import is still under way
        for _ in range(200):  # the worker's thread gives up its wait (it polls its cancel flag)
            if returned:
                break
            threading.Event().wait(0.05)
        assert returned and not any(returned)  # every resolve gave up waiting
    finally:
        release.set()
        heavy._thread.join(5)


async def test_quitting_while_training_says_it_saves_a_checkpoint_then_exits(run_root: Path) -> None:
    """q while a run trains: the status line and the header say "saving checkpoint…" for as
    long as the stop's checkpoint takes (held here by a gate), and the app exits after it."""
    import threading

    from workbench.runs.events import CheckpointSaved

    saving, release = threading.Event(), threading.Event()

    def gated(event) -> None:
        if isinstance(event, CheckpointSaved):  # the stop's checkpoint: hold it until the test has looked
            saving.set()
            release.wait(30)

    def engine(spec, listeners, control):
        return SyntheticRun(spec, listeners=[gated, *listeners], control=control, steps=100_000, delay=0.01)

    app = create_app(run_root, engine, corpora=["general"], runs_poll_seconds=0)
    status = lambda: app.query_one("#train-status").text  # noqa: E731
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("s")
            await wait_until(pilot, lambda: "running" in status())
            assert "saving checkpoint" not in status() and "saving checkpoint" not in app.sub_title
            await pilot.press("q")
            await wait_until(pilot, saving.is_set)
            await pilot.pause(0.1)
            assert "saving checkpoint…" in status() and app.sub_title == "quitting: saving checkpoint…"
            assert app.is_running and app.is_training  # still saving: not gone yet
            release.set()
            await app.workers.wait_for_complete([app.live.worker])
            await pilot.pause(0.2)
    finally:
        release.set()
    assert app.return_code == 0 and not app.is_running
    (run_dir,) = run_root.iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"


# ---------------------------------------------------------------------------- responsiveness
async def test_pane_switches_rewrite_the_footer_keys_in_place_and_leave_none_behind(run_root: Path, monkeypatch) -> None:
    """Textual 8.2's footer recomposed on each focus change and kept every old key alive
    through a ``data_bind`` watcher (textual#6666): objects grew, and GC pauses with them. The
    workbench's footer rewrites its key caps in place: after the first visits no key cap is
    made, and every one alive is one of the footer's."""
    import gc
    import weakref

    from workbench.tui.widgets.footer import KeyCap, WorkbenchFooter

    every_cap: weakref.WeakSet[KeyCap] = weakref.WeakSet()
    original_init = KeyCap.__init__

    def counted_init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        every_cap.add(self)

    monkeypatch.setattr(KeyCap, "__init__", counted_init)
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        footer = app.query_one(WorkbenchFooter)
        for key in "3434":
            await pilot.press(key)
            await pilot.pause()
        await pilot.pause(0.2)
        made = set(footer.query_children(KeyCap))
        shown = {cap.spec.description for cap in made if cap.display}
        for key in "343434":
            await pilot.press(key)
            await pilot.pause()
        await pilot.pause(0.2)
        assert set(footer.query_children(KeyCap)) == made, "keys were made again, not rewritten"
        assert {cap.spec.description for cap in made if cap.display} == shown
        assert {"Help", "Quit"} <= {cap.spec.description for cap in made if cap.display}
        gc.collect()
        assert set(every_cap) == made, "footer keys were made and dropped (or are kept alive elsewhere)"


def test_the_tui_imports_no_private_textual_module() -> None:
    """textual.widgets._footer and the like may change in any release: public API only."""
    import re

    tui = Path(__file__).resolve().parents[1] / "workbench" / "tui"
    private = re.compile(r"^\s*(from|import)\s+textual(\.\w+)*\._\w+", re.MULTILINE)
    found = [str(path.relative_to(tui)) for path in tui.rglob("*.py") if private.search(path.read_text(encoding="utf-8"))]
    assert found == []


def test_freezing_long_lived_objects_happens_once_per_batch_of_imports(monkeypatch) -> None:
    import gc
    import sys

    from workbench.tui import heavy

    monkeypatch.setattr(heavy, "_modules_frozen", len(sys.modules) - heavy.NEW_MODULES)
    assert heavy.freeze_long_lived() and gc.get_freeze_count() > 0
    assert not heavy.freeze_long_lived()  # nothing imported since: no new freeze


# ---------------------------------------------------------------------------- the chart
def test_axis_ticks_are_whole_numbers_in_human_units() -> None:
    from workbench.tui.widgets.loss_chart import axis_ticks, fmt_count

    ticks, labels = axis_ticks(0, 15, 5)
    assert all(t == int(t) for t in ticks) and labels == ["0", "5", "10", "15"]
    assert axis_ticks(0, 3, 8)[1] == ["0", "1", "2", "3"]  # never a step below 1
    assert axis_ticks(2, 7.5, 2)[1] == ["5"]
    assert axis_ticks(0, 2_500_000, 5)[1] == ["0", "500k", "1M", "1.5M", "2M", "2.5M"]
    assert axis_ticks(0, 12_800, 4)[1] == ["0", "5k", "10k"]
    assert axis_ticks(4, 4)[1] == ["4"] and axis_ticks(5, 1) == ([], [])
    assert [fmt_count(v) for v in (0, 15, 999, 1500, 256_000, 1_250_000, 3e9)] == [
        "0", "15", "999", "1.5k", "256k", "1.25M", "3G"]


def test_overlays_get_a_short_label_told_apart_from_the_other_runs() -> None:
    from workbench.tui.curves import short_label

    assert short_label("first", ["second"]) == "first"
    assert short_label("clm-general-20260101-000000", ["clm-general-20260102-000000"]) == "…20260101-000000"
    assert short_label("a-very-long-run-name-one", ["another"], width=12) == "a-very-long…"
    both = short_label("clm-x-2026-aaaa-end", ["clm-x-2026-bbbb-end"], width=12)
    assert len(both) <= 12 and both != short_label("clm-x-2026-bbbb-end", ["clm-x-2026-aaaa-end"], width=12)


async def test_overlay_chooser_lists_the_other_runs_only(run_root: Path) -> None:
    from workbench.tui.screens.pick_run import PickRunScreen

    shown = finished_run(run_root, "shown-run", created=1.0)
    other = finished_run(run_root, "other-run", created=2.0)
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.runs_pane.rows) == 2)
        app.open_run(str(shown))
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, PickRunScreen))
        assert [Path(path).name for path, _ in app.screen.runs] == [other.name]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.train_pane.chart.overlay is not None)
        assert app.train_pane.chart.overlay.name == "other-run"
        assert "other-run" in app.query_one("#readouts").text  # the legend, outside the plot


# ---------------------------------------------------------------------------- preparation stages
async def test_status_line_shows_each_preparation_stage_until_the_run_starts(run_root: Path) -> None:
    import threading

    from workbench.runs.events import Message, Preparing

    gates = [threading.Event(), threading.Event()]

    class PreparingRun(SyntheticRun):
        def run(self) -> object:
            for event, gate in ((Message(text="Training a bpe tokenizer (vocab 4096) on general"), gates[0]),
                                (Preparing(stage="tokenizing", fraction=0.427), gates[1])):
                for listener in self.listeners:
                    listener(event)
                gate.wait(30)
            return super().run()

    def engine(spec, listeners, control):
        return PreparingRun(spec, listeners=listeners, control=control, steps=6, delay=0.01)

    app = create_app(run_root, engine, corpora=["general"], runs_poll_seconds=0)
    status = lambda: app.query_one("#train-status").text  # noqa: E731
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        try:
            await wait_until(pilot, lambda: "preparing: Training a bpe tokenizer" in status())
            assert "No run yet" not in status()
            gates[0].set()
            await wait_until(pilot, lambda: "preparing: tokenizing 42%" in status())  # the engine's progress event
        finally:
            for gate in gates:
                gate.set()
        await wait_until(pilot, lambda: "finished" in status())
        assert "preparing" not in status()


async def test_a_log_scale_chart_draws_the_same_points_every_time() -> None:
    """plotext's own log scale rewrote the data on each draw, so a second draw (a resize)
    came out empty; the chart plots log10 values itself and labels the ticks as losses."""
    from textual.app import App, ComposeResult

    from workbench.tui.curves import CurveSnapshot
    from workbench.tui.widgets.loss_chart import LossChart, log_ticks

    class ChartApp(App):
        def compose(self) -> ComposeResult:
            yield LossChart()

    app = ChartApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(LossChart)
        losses = [8.0 * 0.97 ** i for i in range(60)]
        chart.show(CurveSnapshot(train_steps=list(range(60)), train_tokens=list(range(60)), train_loss=losses))
        chart.log_scale = True
        await pilot.pause()
        first = chart.render().plain
        second = chart.render().plain
        assert first == second
        marked = sum(row.count("⠄") + row.count("•") + sum(ch not in " │─┌┐└┘├┤┬┴┼0123456789.-stepk" for ch in row) for row in second.splitlines())
        assert marked > 20, second
        assert "5" in second and "2" in second  # 1-2-5 tick labels between 8 and 1.4
    positions, labels = log_ticks(1.4, 8.0)
    assert labels == ["2", "5"] and positions == pytest.approx([0.30103, 0.69897], abs=1e-5)
