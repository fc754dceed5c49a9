"""The TUI's Inspector pane, driven by Pilot, with one snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspector_models import built_models
from textual.widgets import Input, Static, TabbedContent

from workbench.tui.app import create_app
from workbench.tui.panes.inspector import InspectorPane

pytestmark = [pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def models_dir(tmp_path_factory, monkeypatch) -> Path:
    """Work from the models' folder so the pane shows short, stable names (mlm_base...)."""
    folder = built_models(tmp_path_factory)["mlm_base"].parent
    monkeypatch.chdir(folder)
    return folder


def make_app(run_root: Path):
    return create_app(run_root, corpora=["general"], runs_poll_seconds=0)


async def fill_and_inspect(pilot, a: str, b: str, text: str) -> None:
    app = pilot.app
    await pilot.press("5")
    app.query_one("#inspect-a", Input).value = a
    app.query_one("#inspect-b", Input).value = b
    app.query_one("#inspect-text", Input).value = text
    app.query_one("#inspect-text", Input).focus()
    await pilot.press("enter")
    await pilot.pause()
    await app.workers.wait_for_complete([w for w in app.workers if w.group == "inspect"])
    await pilot.pause()


def plain(widget: Static) -> str:
    from rich.console import Console

    console = Console(width=160, record=True, file=open("/dev/null", "w"))
    console.print(widget.content)
    return console.export_text()


async def test_pane_compares_two_models_in_a_worker(models_dir, run_root):
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await fill_and_inspect(pilot, "mlm_base", "mlm_tuned", "the cat sat on the [MASK] .")
        assert app.query_one(TabbedContent).active == "inspector"
        output = plain(app.query_one("#inspect-output", Static))
        assert "rug" in output and "mat" in output and "rank vs A" in output
        assert "mlm_base vs mlm_tuned" in plain(app.query_one("#inspect-status", Static))
        # a bad model: one line in the status, the app keeps running
        await fill_and_inspect(pilot, "mlm_base", "no_such_model/at/all", "the [MASK] .")
        status = app.query_one("#inspect-status", Static)
        assert status.has_class("error") and "not found" in plain(status)


async def test_pane_leaves_out_what_a_gpt2_cannot_answer(models_dir, run_root):
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await fill_and_inspect(pilot, "clm_base", "clm_tuned", "I have a cat. ||| It loves to purr.")
        output = plain(app.query_one("#inspect-output", Static))
        assert "P(B follows A) column left out: GPT2LMHeadModel has no next-sentence head" in output
        assert not any("P(B follows A)" in line for line in output.splitlines() if "┃" in line)
        assert "no next-sentence head (" not in output


async def test_pane_shows_a_runs_probe_timeline(run_root, tmp_path_factory):
    import json

    run = run_root / "probed"
    run.mkdir(parents=True)
    (run / "run.toml").write_text('[spec]\nobjective = "mlm"\n[meta]\ncreated = 1.0\n')
    lines = [{"step": s, "time": 0.0, "probes": [{"probe": "the [MASK] .", "kind": "mask", "method": "masked LM",
                                                 "approximate": False, "top": [{"token": tok, "prob": p}], "skipped": None}]}
             for s, tok, p in ((0, "the", 0.1), (10, "mat", 0.4), (20, "mat", 0.8))]
    (run / "probes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    app = make_app(run_root)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("5")
        pane = app.query_one(InspectorPane)
        pane.choose_run(str(run.resolve()))
        await pilot.pause()
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "inspect"])
        await pilot.pause()
        output = plain(app.query_one("#inspect-output", Static))
        assert "probe: the [MASK] ." in output and "80.0%" in output and "mat" in output
        assert app.query_one("#inspect-a", Input).value == str(run.resolve())


def test_inspector_pane_snapshot(models_dir, run_root, snap_compare, monkeypatch):
    monkeypatch.setattr(InspectorPane, "SHOW_TIMING", False)

    async def run_before(pilot) -> None:
        await fill_and_inspect(pilot, "mlm_base", "mlm_tuned", "the dog sat on the [MASK] .")

    assert snap_compare(make_app(run_root), terminal_size=(120, 40), run_before=run_before)
