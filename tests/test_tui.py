"""Functional tests of the Textual workbench, driven with run_test/Pilot.

A synthetic engine (``workbench.tui.synthetic.SyntheticRun``: the engine's shape, a real run
directory, no model) keeps these fast; ``test_tui_real.py`` goes through real training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from textual.widgets import DataTable, Input, Select, TabbedContent

from workbench.errors import TrainingError
from workbench.runs.events import RunFailed
from workbench.tui.app import WorkbenchApp, create_app
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.synthetic import SyntheticRun

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for_workers(app: WorkbenchApp, pilot, groups: tuple[str, ...] | None = None) -> None:
    """Wait until the app's workers (optionally only some groups) are done, then for a repaint."""
    await pilot.pause()  # let pending messages start their workers first
    workers = [w for w in app.workers if groups is None or w.group in groups]
    await app.workers.wait_for_complete(workers)
    await pilot.pause()


def synthetic(steps: int = 20, delay: float = 0.005, **kw):
    def factory(spec, listeners, control):
        return SyntheticRun(spec, listeners=listeners, control=control, steps=steps, delay=delay, **kw)

    return factory


def make_app(run_root: Path, factory=None) -> WorkbenchApp:
    return create_app(run_root, factory or synthetic(), corpora=["general", "domain"], runs_poll_seconds=0)


async def test_choose_corpus_objective_start_see_points_stop_and_list(run_root: Path) -> None:
    app = make_app(run_root, synthetic(steps=100_000, delay=0.01))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_workers(app, pilot)
        # corpus pane: highlight "domain" and use it
        await pilot.press("down", "u")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "objective"
        assert app.query_one("#f-corpus", Input).value == "domain"
        # objective: choose mlm from the select, keyboard only
        app.query_one("#f-objective", Select).value = "mlm"
        await wait_for_workers(app, pilot)
        assert "wordpiece" in str(app.query_one("#resolved").render())
        await pilot.press("escape", "s")
        assert app.query_one(TabbedContent).active == "train"
        await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 5)
        assert app.is_training
        await pilot.press("x")
        await wait_for_workers(app, pilot, ("train",))
        assert not app.is_training
        snap = app.live.curves.snapshot()
        assert snap.status == "stopped"
        await pilot.press("4")
        await wait_for_workers(app, pilot)
        table = app.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert (row[1], row[4], row[5], row[6]) == ("stopped", "mlm", "full", "domain")


async def test_pause_resume_and_chart_toggles(run_root: Path) -> None:
    app = make_app(run_root, synthetic(steps=100_000, delay=0.01))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 2)
        await pilot.press("p")
        assert app.live.control.paused
        await pilot.pause(0.3)
        before = app.live.curves.snapshot().step
        await pilot.pause(0.3)
        assert app.live.curves.snapshot().step == before, "paused training moved on"
        assert "paused" in str(app.query_one("#train-status").render())
        await pilot.press("p")
        await wait_until(pilot, lambda: app.live.curves.snapshot().step > before)
        chart = app.train_pane.chart
        await pilot.press("m", "l", "t")
        assert chart.smoothing and chart.log_scale and chart.x_axis == "tokens"
        assert "smooth on" in str(app.query_one("#readouts").render())
        await pilot.press("x")
        await wait_for_workers(app, pilot, ("train",))


async def test_sigterm_during_training_checkpoints_and_exits_143(run_root: Path) -> None:
    """A SIGTERM (or an SSH hang-up) while training here stops the run with a checkpoint, then exits."""
    import os
    import signal

    app = make_app(run_root, synthetic(steps=100_000, delay=0.01))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 2)
        previous = signal.getsignal(signal.SIGTERM)
        assert previous not in (signal.SIG_DFL, None)  # the app's handler is installed while training
        os.kill(os.getpid(), signal.SIGTERM)
        await app.workers.wait_for_complete([app.live.worker])
        await pilot.pause(0.2)
    assert app.return_code == 143
    (run_dir,) = run_root.iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"


async def test_quit_during_training_checkpoints_and_exits(run_root: Path) -> None:
    app = make_app(run_root, synthetic(steps=100_000, delay=0.01))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 2)
        worker = app.live.worker
        await pilot.press("q")
        await app.workers.wait_for_complete([worker])
        await pilot.pause(0.2)
    assert app.return_code == 0
    assert worker.is_finished
    (run_dir,) = run_root.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "stopped"
    kinds = [json.loads(line)["event"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds[-2:] == ["checkpoint", "finished"]


async def test_engine_error_shows_a_modal_and_the_app_keeps_running(run_root: Path) -> None:
    class Exploding:
        def __init__(self, spec, listeners, control):
            self.listeners = listeners

        def run(self):
            message = TrainingError("the loss became nan at step 3", fix="lower the learning rate")
            for listener in self.listeners:
                listener(RunFailed(message=str(message), step=3))
            raise message

    app = make_app(run_root, Exploding)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_for_workers(app, pilot, ("train",))
        await pilot.pause(0.1)
        assert isinstance(app.screen, ErrorScreen)
        assert "loss became nan" in app.screen.message and "Fix: lower the learning rate" in app.screen.message
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorScreen)
        assert app.is_running and not app.is_training
        # a bad setting in the form is an error modal too, not a crash
        app.action_show_tab("objective")
        app.query_one("#f-lr", Input).value = "1e9"
        await pilot.press("escape", "s")
        assert isinstance(app.screen, ErrorScreen) and "learning rate" in app.screen.message


async def test_bad_corpus_is_shown_in_the_corpus_pane(run_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait\n")
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#corpus-path", Input).focus()
        await pilot.press(*str(bad), "enter")
        await wait_until(pilot, lambda: "Loading" not in str(app.query_one("#corpus-stats").render()))
        text = str(app.query_one("#corpus-stats").render())
        assert "Cannot load" in text and "UTF-8" in text
        assert app.is_running


async def test_help_palette_open_finetune_and_overlay(run_root: Path) -> None:
    # two finished runs in the run root, written by the synthetic engine headless
    from workbench.config import RunSpec

    for name in ("first", "second"):
        SyntheticRun(RunSpec(corpus="general", name=name, out=str(run_root)), steps=12, delay=0).run()
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = {binding.key for entry in app.screen.entries for binding in entry.bindings}
        assert {"s", "x", "p", "q", "m", "l", "a", "f", "question_mark"} <= listed
        await pilot.press("escape")
        # the Runs pane: open a run -> its curves in the Train pane
        await pilot.press("4")
        await wait_for_workers(app, pilot)
        assert app.query_one("#runs-table", DataTable).row_count == 2
        await pilot.press("enter")
        assert app.query_one(TabbedContent).active == "train"
        assert app.shown is app.opened and len(app.train_pane.chart.data.train_loss) == 12
        # overlay the other run through the picker
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("down", "enter")
        assert app.train_pane.chart.overlay is not None
        # fine-tune from the selected run pre-fills the base
        await pilot.press("4", "f")
        assert app.query_one(TabbedContent).active == "objective"
        assert app.query_one("#f-base", Input).value.endswith(("first", "second"))
        # the command palette lists the workbench's actions
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"logarithmic")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.train_pane.chart.log_scale


WRITER = r"""
import json, os, signal, sys, time
run, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(run)
name = os.path.basename(run)
with open(os.path.join(run, "run.toml"), "w") as f:
    f.write(f'[spec]\nobjective = "clm"\ncorpus = "general"\nname = "{name}"\n[meta]\ncreated = 1.0\n')
def status(state, step):
    with open(os.path.join(run, ".status.tmp"), "w") as f:
        json.dump({"status": state, "pid": os.getpid(), "step": step}, f)
    os.replace(os.path.join(run, ".status.tmp"), os.path.join(run, "status.json"))
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
out = open(os.path.join(run, "metrics.jsonl"), "a")
def emit(**event):
    out.write(json.dumps({"time": 0, **event}) + "\n"); out.flush()
status("running", 0)
emit(event="started", run_dir=run, name=name, objective="clm", corpus="general", total_steps=steps,
     parameters=1, device="cpu", precision="fp32")
step = 0
while step < steps and not stop:
    time.sleep(delay)
    step += 1
    emit(event="step", step=step, total_steps=steps, loss=5.0 / step, lr=1e-3, tokens=step * 64,
         tokens_per_s=100.0, elapsed_s=step * delay, eta_s=(steps - step) * delay)
state = "stopped" if stop else "finished"
emit(event="checkpoint", step=step, path=os.path.join(run, "checkpoints", "step"))
status(state, step)
emit(event="finished", status=state, step=step, run_dir=run, model_dir="")
"""
"""A stand-in for a `workbench run` process: plain Python appending metrics.jsonl lines
(no workbench import, so it starts in milliseconds), SIGINT -> stop with a checkpoint event."""


async def test_attach_follows_a_run_written_by_another_process(run_root: Path) -> None:
    """Another process appends a run's metrics.jsonl line by line; the app follows it live."""
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(run_root / "elsewhere"), "40", "0.05"])
        try:
            await wait_until(pilot, lambda: (run_root / "elsewhere" / "metrics.jsonl").exists())
            await pilot.press("4", "r")
            await wait_for_workers(app, pilot, ("runs",))
            assert app.query_one("#runs-table", DataTable).get_row_at(0)[1] == "running"
            await pilot.press("a")
            assert app.shown is app.followed
            await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 3)
            await app.workers.wait_for_complete([w for w in app.workers if w.group == "follow"])
            await pilot.pause(0.1)
            snap = app.followed.curves.snapshot()
            assert snap.status == "finished" and snap.train_steps[-1] == 40
            assert app.train_pane.chart.data.train_steps[-1] == 40
        finally:
            process.wait(timeout=60)


async def test_stop_key_signals_the_attached_process_which_checkpoints(run_root: Path) -> None:
    """x on an attached run sends SIGINT to the process writing it, which stops with a checkpoint."""
    app = make_app(run_root)
    async with app.run_test(size=(80, 24)) as pilot:
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(run_root / "slow"), "100000", "0.02"])
        try:
            await wait_until(pilot, lambda: (run_root / "slow" / "status.json").exists())
            app.attach(str(run_root / "slow"))
            await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 3)
            await pilot.press("x")
            assert process.wait(timeout=30) == 0
            await wait_until(pilot, lambda: not app.is_following)
            await pilot.pause(0.1)
            assert app.followed.curves.snapshot().status == "stopped"
        finally:
            if process.poll() is None:
                process.kill()
        await pilot.press("q")
    assert app.return_code == 0


def test_recently_used_hub_corpora_are_listed(run_root: Path) -> None:
    from workbench.config import RunSpec
    from workbench.runs.rundir import RunDir
    from workbench.tui.panes.corpus import corpus_names

    for i, corpus in enumerate(["hf:imdb", "hf:ag_news:default", "general", "hf:imdb"]):
        run = RunDir(run_root / f"run{i}")
        run.path.mkdir(parents=True)
        run.write_run_toml(RunSpec(corpus=corpus, name=f"run{i}"), {"created": float(i)})
    names = corpus_names(run_root)
    assert names[-2:] == ["hf:imdb", "hf:ag_news:default"]  # newest first, once each
    assert "general" in names


def test_tui_command_takes_a_run_root(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app as cli_app

    opened = []
    monkeypatch.setattr("workbench.tui.app.run_app", lambda out="checkpoints": opened.append(out))
    result = CliRunner().invoke(cli_app, ["tui", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert opened == [str(tmp_path)]


async def test_tabs_keys_palette_and_help_come_from_the_pane_table(run_root: Path) -> None:
    from workbench.tui.commands import palette_entries
    from workbench.tui.panes import PANES

    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        tabs = app.query_one(TabbedContent)
        palette = {entry.action: entry.text for entry in palette_entries(app)}
        for number, entry in enumerate(PANES, 1):
            assert str(tabs.get_tab(entry.id).label) == f"{number} {entry.title}"
            assert app.query_one(f"#{entry.pane_id}") is not None
            assert entry.about in palette[f"show_tab('{entry.id}')"]
            await pilot.press(str(number))
            assert tabs.active == entry.id
        await pilot.press("question_mark")
        sections = {entry.where for entry in app.screen.entries}
        assert sections == {"anywhere", *(entry.id for entry in PANES)}


async def test_objective_form_is_generated_from_the_run_spec(run_root: Path) -> None:
    from dataclasses import fields

    from workbench.config import RunSpec, field_help
    from workbench.objectives import objective_names

    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        assert app.objective_pane.fields["objective"].choices == objective_names()
        select = app.query_one("#f-objective", Select)
        for name in objective_names():  # a value that is not one of its options would raise
            select.value = name
        select.value = "clm"
        help_of = {f.name: field_help(f) for f in fields(RunSpec)}
        for key in ("corpus", "objective", "lr", "warmup_ratio", "schedule", "time_budget", "seed"):
            assert app.query_one(f"#f-{key}").tooltip == help_of[key]
        # settings beyond the main form, read with the field's own type (and parser)
        app.query_one("#f-warmup_ratio", Input).value = "0.1"
        app.query_one("#f-time_budget", Input).value = "5m"
        app.query_one("#f-schedule", Select).value = "cosine"
        app.query_one("#f-seed", Input).value = "7"
        spec = app.objective_pane.build_spec()
        assert (spec.warmup_ratio, spec.time_budget, spec.schedule, spec.seed) == (0.1, 300.0, "cosine", 7)
        assert spec.out == str(run_root)
        app.query_one("#f-seed", Input).value = "x"
        await pilot.press("escape", "s")
        assert isinstance(app.screen, ErrorScreen) and "seed 'x' is not a number" in app.screen.message


async def test_inspector_preselects_the_run_highlighted_in_the_runs_pane(run_root: Path) -> None:
    from workbench.config import RunSpec

    for name, created in (("older", 1.0), ("newer", 2.0)):
        SyntheticRun(RunSpec(corpus="general", name=name, out=str(run_root)), steps=4, delay=0, created=created).run()
    app = make_app(run_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        await wait_for_workers(app, pilot, ("runs",))
        await pilot.press("down")  # the older run
        await pilot.press("5")
        await pilot.pause()
        assert app.query_one("#inspect-a", Input).value == str((run_root / "older").resolve())
