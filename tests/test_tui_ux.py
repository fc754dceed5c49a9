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

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


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
        assert any("learning rate takes a number: 1e-3, 0.001" in n.message for n in app._notifications)


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
