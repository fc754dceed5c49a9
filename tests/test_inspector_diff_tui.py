"""The Inspector's Diff view and layer view, driven by Pilot, with snapshots: a typed passage
beside a corpus document, scored by the tiny models of ``inspector_models``."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspector_models import built_models
from textual.widgets import Input, Select, Static

from workbench.tui.app import create_app
from workbench.tui.panes.inspector import TYPED, InspectorPane
from workbench.tui.widgets.token_diff import TokenDiffView

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it
PASSAGE = "the cat sat on the mat ."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def models_dir(tmp_path_factory, monkeypatch) -> Path:
    """Work from the models' folder so the pane shows short, stable names (clm_base...)."""
    folder = built_models(tmp_path_factory)["clm_base"].parent
    monkeypatch.chdir(folder)
    return folder


def make_app(run_root: Path):
    return create_app(run_root, corpora=["general"], runs_poll_seconds=0)


def plain(renderable) -> str:
    from rich.console import Console

    console = Console(width=160, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


async def open_diff(pilot, a: str, b: str, left: tuple[str, str], right: tuple[str, str]) -> None:
    """Models a and b, the passages (source, document), the typed text, then ctrl+g."""
    app = pilot.app
    await pilot.press("5")
    app.query_one("#inspect-a", Input).value = a
    app.query_one("#inspect-b", Input).value = b
    app.query_one("#inspect-text", Input).value = PASSAGE
    for side, (source, doc) in (("left", left), ("right", right)):
        app.query_one(f"#diff-{side}-source", Select).value = source
        app.query_one(f"#diff-{side}-doc", Input).value = doc
    app.query_one(InspectorPane).focus_home()
    await pilot.press("ctrl+g")
    await pilot.pause()
    await app.workers.wait_for_complete([w for w in app.workers if w.group == "diff"])
    await pilot.pause()


async def test_diff_view_cursor_shows_both_models_top_k(models_dir, run_root):
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await open_diff(pilot, "clm_base", "clm_tuned", (TYPED, "0"), ("domain", "1"))
        left = app.query_one("#diff-left", TokenDiffView)
        assert left.diff is not None and [t.token.strip("␣") for t in left.diff.tokens] == PASSAGE.split()
        assert app.focused is left
        assert "typed text: mean" in plain(left.query_one(".diff-title", Static).content)
        right = app.query_one("#diff-right", TokenDiffView)
        assert right.diff is not None and "domain #1" in plain(right.query_one(".diff-title", Static).content)
        await pilot.press(*["right"] * 6, "left")  # past "." and back: the cursor on "mat"
        assert left.cursor == 5
        panel = plain(left.query_one(".diff-cursor", Static).content)
        first = next(line for line in panel.splitlines() if line.strip().startswith("1"))
        assert "rug" in first and "mat" in first and first.index("rug") < first.index("mat"), panel  # A: rug, B: mat
        assert "change +" in panel
        assert "green: B more confident" in plain(app.query_one("#inspect-status", Static).content)
        # the layer view (ctrl+l) replaces the Diff view with the lens table
        app.query_one("#inspect-text", Input).value = "the cat sat on the [MASK] ."
        await pilot.press("ctrl+l")
        await pilot.pause()
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "inspect"])
        await pilot.pause()
        output = plain(app.query_one("#inspect-output", Static).content)
        assert "layer view (logit lens)" in output and "layer 1 (output)" in output
        assert not app.query_one(InspectorPane).has_class("diffing")


async def test_diff_view_refuses_mismatched_models_in_the_status(models_dir, run_root):
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await open_diff(pilot, "clm_base", "mlm_tuned", (TYPED, "0"), (TYPED, "0"))
        status = app.query_one("#inspect-status", Static)
        assert status.has_class("error") and "causal model and B a masked" in plain(status.content)


async def test_escape_is_the_apps_when_no_diff_runs(models_dir, run_root):
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("5")
        app.query_one("#inspect-text", Input).focus()
        await pilot.press("escape")
        assert app.focused is app.query_one("#inspect-results")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_diff_view_snapshot(models_dir, run_root, snap_compare, size):
    async def run_before(pilot) -> None:
        await open_diff(pilot, "mlm_base", "mlm_tuned", (TYPED, "0"), ("domain", "0"))
        await pilot.press("right", "right")

    assert snap_compare(make_app(run_root), terminal_size=size, run_before=run_before)
