"""The TUI's Inspector pane, driven by Pilot, with snapshots: two models, and three (a base,
a LoRA run and a full run, trained here with the engine)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import tiny_overrides
from inspector_models import built_models
from textual.widgets import Input, Select, Static, TabbedContent

from workbench.config import RunSpec
from workbench.engine.runner import TrainingRun
from workbench.runs.rundir import RunDir
from workbench.tui.app import create_app
from workbench.tui.panes.inspector import InspectorPane

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def models_dir(tmp_path_factory, monkeypatch) -> Path:
    """Work from the models' folder so the pane shows short, stable names (mlm_base...)."""
    folder = built_models(tmp_path_factory)["mlm_base"].parent
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture(scope="session")
def method_runs(tmp_path_factory, story_corpus: Path) -> Path:
    """A run root with a base (the tiny GPT-2 of ``inspector_models`` as a workbench run, so the
    forgetting monitor has its eval split) and two runs from it, ``lora`` and ``full``, 6 steps
    each (about 3 s apiece)."""
    root = tmp_path_factory.mktemp("inspector-methods") / "checkpoints"
    base = RunDir(root / "base")
    base.path.mkdir(parents=True)
    base.write_run_toml(RunSpec(objective="clm", corpus=str(story_corpus), seq_len=32, name="base"), {"created": 0.0})
    shutil.copytree(built_models(tmp_path_factory)["clm_base"], base.path / "model")
    for method in ("lora", "full"):
        spec = RunSpec(**tiny_overrides(max_steps=6, eval_interval=3, save_interval=6, eval_batches=1), objective="clm",
                       base=str(base.path), corpus=str(story_corpus), out=str(root), name=method, method=method, lr=1e-2,
                       device="cpu", probes=[])
        assert TrainingRun(spec).run().status == "finished"
    return root


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


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
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
        pilot.app.set_focus(None)  # no blinking cursor in the text field: it was drawn or not by timing alone
        await pilot.pause()

    assert snap_compare(make_app(run_root), terminal_size=(120, 40), run_before=run_before)


def first_row(output: str, columns: int) -> list[str]:
    """The cells of the first prediction row of a fill-in/next-token table with ``columns`` cells."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│") if cell.strip()]
        if len(cells) == columns and cells[0] == "1":
            return cells
    raise AssertionError(f"no row of {columns} cells in:\n{output}")


async def test_pane_puts_a_second_run_beside_a_run_and_its_base(method_runs: Path):
    """Pick the LoRA run, then the full run in the second run menu (keys only): base | lora |
    full, each model's own predictions with Δp against the base, each run's forgetting table;
    the menu's blank entry goes back to two models."""
    from workbench.inspector import QueryOptions, inspect_models

    text = "the cat sat on the"
    app = make_app(method_runs)
    async with app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        pane = app.query_one(InspectorPane)
        pane.choose_run(str((method_runs / "lora").resolve()))
        app.query_one("#inspect-text", Input).value = text
        await settle(pilot)
        beside = app.query_one("#inspect-beside", Select)
        beside.focus()
        await pilot.press("enter", "f", "u", "l", "l", "enter")  # type to search, then choose
        await settle(pilot)
        assert pane.beside == str((method_runs / "full").resolve())
        output = plain(app.query_one("#inspect-output", Static))
        header = next(line for line in output.splitlines() if "┃" in line and "Δp" in line)
        assert header.index("base") < header.index("lora") < header.index("full"), header
        report = inspect_models([str(method_runs / name) for name in ("base", "lora", "full")], [text],
                                QueryOptions(max_new_tokens=8), out=str(method_runs))
        slot, third = report.queries[0].slots[0], report.more[0].queries[0].slots[0]
        expected = [(row.token, f"{100 * row.prob:.1f}%") for row in (slot.a.rows[0], slot.b.rows[0], third.b.rows[0])]
        cells = first_row(output, 9)  # #, base token p, lora token p Δp, full token p Δp
        assert [(cells[1], cells[2]), (cells[3], cells[4]), (cells[6], cells[7])] == expected
        assert expected[1] != expected[2]  # the runs differ: each column is its own model's
        assert "forgetting of lora" in output and "forgetting of full" in output
        assert "base (base) vs lora (lora) vs full (full)" in plain(app.query_one("#inspect-status", Static))
        pane.choose_beside(None)  # blank: the run's base vs its result, as before
        await settle(pilot)
        output = plain(app.query_one("#inspect-output", Static))
        assert "rank vs base" in output and "full" not in output and "forgetting of" not in output
        assert app.query_one("#inspect-a", Input).value == str((method_runs / "lora").resolve())


def test_beside_a_from_scratch_run_is_its_initial_weights(tmp_path: Path):
    """The second run menu beside a from-scratch run: its initial weights, labelled so."""
    from workbench.inspector.pairing import model_labels, with_beside

    toml = '[spec]\nobjective = "clm"\n[meta]\ncreated = 1.0\n'
    run, other = tmp_path / "scratch", tmp_path / "other"
    for folder in (run / "model", run / "checkpoints" / "initial", other):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    for folder in (run, other):
        (folder / "run.toml").write_text(toml)
    models = with_beside([str(run)], str(other), str(tmp_path))
    assert models == [str((run / "checkpoints" / "initial").resolve()), str(run), str(other)]
    assert model_labels(models, str(tmp_path)) == ["initial (step 0)", "scratch", "other"]
    assert model_labels([str(run / "checkpoints" / "step-0000020")] + models[1:], str(tmp_path))[0] == "step 20"
    assert with_beside(["a", "b"], "c", str(tmp_path)) == ["a", "b", "c"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_inspector_three_models_snapshot(method_runs, snap_compare, monkeypatch, size):
    """A run picked, model A shown by its relative name (stable paths), the full run beside it."""
    monkeypatch.setattr(InspectorPane, "SHOW_TIMING", False)
    monkeypatch.chdir(method_runs)

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("5")
        pane = pilot.app.query_one(InspectorPane)
        pane.choose_run(str((method_runs / "lora").resolve()))
        pilot.app.query_one("#inspect-a", Input).value = "lora"
        pilot.app.query_one("#inspect-text", Input).value = "the cat sat on the"
        pane.choose_beside(str((method_runs / "full").resolve()))
        await settle(pilot)
        pane.focus_home()
        await pilot.pause()

    assert snap_compare(make_app(method_runs), terminal_size=size, run_before=run_before)
