"""One damaged run must not break the readers of every run (issue 13, case 6).

A real tiny run is trained once (``workbench run`` in a subprocess); each case copies it and
damages one file. `workbench runs` must list every run, the damaged one as ``damaged: ...``;
`workbench inspect RUN --probes` must answer or give a one-line error; the TUI must list,
open and follow it; and an app that hits an unhandled error must not exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import tiny_overrides, wait_until
from faults_helpers import subprocess_env, workbench_cmd
from typer.testing import CliRunner

from workbench.cli import app as cli_app
from workbench.runs.events import event_from_json, event_problem
from workbench.runs.follow import follow
from workbench.runs.listing import list_runs
from workbench.runs.rundir import RunDir

runner = CliRunner()


def append(name: str, line: bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with (run / name).open("ab") as handle:
            handle.write(line + b"\n")
    return damage


def edit_status(**changes: object) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        data = json.loads((run / "status.json").read_text(encoding="utf-8"))
        (run / "status.json").write_text(json.dumps({**data, **changes}), encoding="utf-8")
    return damage


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text(text, encoding="utf-8")


def created_yesterday(run: Path) -> None:
    text = (run / "run.toml").read_text(encoding="utf-8")
    assert "created = " in text
    (run / "run.toml").write_text(text.replace("created = ", 'created = "yesterday"\n# was ', 1), encoding="utf-8")


def metrics_fifo(run: Path) -> None:
    """A reader that opened this would wait forever for a writer."""
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")


STEP_ABC = {"event": "step", "step": "abc", "total_steps": 2, "loss": 1.0, "lr": 0.1, "tokens": 1, "tokens_per_s": 1.0,
            "elapsed_s": 1.0, "eta_s": 1.0}

CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage-line": (append("metrics.jsonl", b"\x00\xff\xfe garbage"), "metrics.jsonl: 1 unreadable line skipped"),
    "line-42": (append("metrics.jsonl", b"42"), "metrics.jsonl: 1 unreadable line skipped"),
    "step-missing-fields": (append("metrics.jsonl", b'{"event":"step","step":21}'), "metrics.jsonl: 1 unreadable line skipped"),
    "event-step-abc": (append("metrics.jsonl", json.dumps(STEP_ABC).encode()), "metrics.jsonl: 1 unreadable line skipped"),
    "status-list": (write("status.json", "[]"), "status.json is not a JSON object"),
    "status-pid-abc": (edit_status(pid="abc", status="running"), "status.json: pid"),
    "status-step-abc": (edit_status(step="abc"), "status.json: step"),
    "created-yesterday": (created_yesterday, "run.toml: created is not a time"),
    "run-toml-not-toml": (write("run.toml", "[spec\nobjective = "), "run.toml: not valid TOML"),
    "probes-garbage": (append("probes.jsonl", b"\xff{not json"), "probes.jsonl: 1 unreadable line skipped"),
    "metrics-fifo": (metrics_fifo, "metrics.jsonl is unreadable"),
}


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> Path:
    """One real run of two steps, with its probes (trained once for the whole session)."""
    out = tmp_path_factory.mktemp("damaged-base")
    o = tiny_overrides()
    subprocess.run(workbench_cmd("run", "--corpus", str(story_corpus), "--max-steps", "2", "--batch-size", str(o["batch_size"]),
                                 "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]), "--name", "base",
                                 "--out", str(out)),
                   env=subprocess_env(), capture_output=True, text=True, check=True, timeout=300)
    assert (out / "base" / "probes.jsonl").is_file()
    return out / "base"


def copy_run(base: Path, dest: Path) -> Path:
    """The files readers read (the weights are not needed here)."""
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("checkpoints", "model", "tokenizer", ".lock"))
    return dest


def root_with(base: Path, root: Path, *damaged: str) -> Path:
    """Two sound runs and one copy per named case, damaged."""
    for name in ("sound-a", "sound-b"):
        copy_run(base, root / name)
    for case in damaged:
        CASES[case][0](copy_run(base, root / case))
    return root


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output and "Traceback" not in (result.stderr or ""), result.output


# ---------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("case", list(CASES))
def test_runs_lists_every_run_and_the_damaged_one_as_damaged(case: str, base_run: Path, tmp_path: Path) -> None:
    root = root_with(base_run, tmp_path / "runs", case)
    rows = {row.name: row for row in list_runs(str(root))}
    assert set(rows) == {"sound-a", "sound-b", case}
    assert rows["sound-a"].status == rows["sound-b"].status == "finished"
    assert rows[case].status.startswith("damaged: ") and CASES[case][1] in rows[case].status, rows[case].status
    result = runner.invoke(cli_app, ["runs", "--out", str(root)], catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    assert all(name in result.output for name in rows) and "damaged: " in result.output
    assert "1 of 3 runs damaged" in result.output


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_probes_answers_for_a_damaged_run(case: str, base_run: Path, tmp_path: Path) -> None:
    root = root_with(base_run, tmp_path / "runs", case)
    result = runner.invoke(cli_app, ["inspect", case, "--probes", "--out", str(root)], catch_exceptions=False)
    assert_no_traceback(result)
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output
        return
    assert result.exit_code == 0, result.output
    assert "probe: The cat sat on the [MASK]." in result.stdout
    if "unreadable line" in CASES[case][1]:
        assert f"warning: {CASES[case][1]}" in result.stderr


def test_inspect_probes_json_keeps_stdout_one_document(base_run: Path, tmp_path: Path) -> None:
    root = root_with(base_run, tmp_path / "runs", "probes-garbage")
    result = runner.invoke(cli_app, ["inspect", "probes-garbage", "--probes", "--json", "--out", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["probes"]["The cat sat on the [MASK]."]) == 3  # steps 0, 1 and 2: the garbage line is skipped
    assert "probes.jsonl: 1 unreadable line skipped" in result.stderr


@pytest.mark.slow  # a process of its own
def test_inspect_probes_runs_in_a_process_without_a_traceback(base_run: Path, tmp_path: Path) -> None:
    root = root_with(base_run, tmp_path / "runs", "line-42")
    done = subprocess.run(workbench_cmd("inspect", str(root / "line-42"), "--probes"), env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "metrics.jsonl: 1 unreadable line skipped" in done.stderr


# ---------------------------------------------------------------------------- the one check
def test_events_with_missing_or_wrongly_typed_fields_are_not_passed_on() -> None:
    good = {**STEP_ABC, "step": 2}
    assert event_problem(good) is None and event_from_json(good).step == 2
    for bad in (42, [], {"event": "step", "step": 21}, STEP_ABC, {**good, "loss": "x"}, {**good, "tokens": True},
                {**good, "step": -1}, {**good, "loss": 10**400}, {"event": 5},
                {"event": "probes", "step": 1, "probes": [{"probe": "p", "top": [{"token": "a", "prob": float("nan")}]}]}):
        assert event_problem(bad) is not None, bad
        assert event_from_json(bad) is None
    assert event_problem({"event": "from-a-newer-version"}) is None  # ignored, not damage
    assert event_from_json({"event": "from-a-newer-version"}) is None


def test_following_skips_and_counts_unreadable_lines(base_run: Path, tmp_path: Path) -> None:
    run = copy_run(base_run, tmp_path / "run")
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    damaged = lines[:2] + [b"42\n", b"\xff\xfe\n", b'{"event":"step","step":21}\n'] + lines[2:]
    (run / "metrics.jsonl").write_bytes(b"".join(damaged))
    events = list(follow(run, interval=0.01, idle_timeout=10))
    notes = [e.text for e in events if e.kind == "message" and "unreadable" in e.text]
    assert notes == ["metrics.jsonl: 3 unreadable lines skipped"]
    assert events[-1].kind == "finished" and [e.step for e in events if e.kind == "step"] == [2]
    assert len(RunDir(run).read_events().records) == len(lines)


# ---------------------------------------------------------------------------- TUI
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.timeout(180)
@pytest.mark.slow  # the whole TUI over every damaged run
async def test_tui_lists_opens_and_inspects_damaged_runs(base_run: Path, tmp_path: Path) -> None:
    from textual.widgets import DataTable, Static

    from workbench.tui.app import create_app
    from workbench.tui.panes.inspector import InspectorPane

    root = root_with(base_run, tmp_path / "runs", *CASES)
    app = create_app(root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#runs-table", DataTable)
        assert table.row_count == len(CASES) + 2
        statuses = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert statuses["sound-a"] == "finished"
        assert all("damaged: " in statuses[case] for case in CASES), statuses
        assert f"{len(CASES)} damaged" in str(app.query_one("#runs-hint", Static).content)
        for index in range(table.row_count):  # open every run's curves: the damaged ones too
            table.move_cursor(row=index, animate=False)
            await pilot.press("enter")
            await pilot.pause()
            assert app.shown is app.opened and app.is_running
            await pilot.press("4")
        app.open_run(str(root / "step-missing-fields"))
        await pilot.pause()
        snap = app.opened.curves.snapshot()
        assert snap.train_steps == [2] and snap.status == "finished"
        assert "metrics.jsonl: 1 unreadable line skipped" in app.train_pane.query_one("#train-status").text
        # the Inspector pane shows the damaged run's probe timeline and what it skipped
        await pilot.press("5")
        app.query_one(InspectorPane).choose_run(str(root / "probes-garbage"))
        await pilot.pause()
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "inspect"])
        await pilot.pause()
        status = str(app.query_one("#inspect-status", Static).content)
        assert "probes.jsonl: 1 unreadable line skipped" in status, status
        # attaching to a damaged run follows what can be read
        app.attach(str(root / "garbage-line"))
        await wait_until(pilot, lambda: not app.is_following)
        await pilot.pause()
        assert app.followed.curves.snapshot().status == "finished"
        await pilot.press("q")
    assert app.return_code == 0


CRASHING_APP = """
import sys
from workbench.tui.app import WorkbenchApp, run_app

mount, run = WorkbenchApp.on_mount, WorkbenchApp.run

def on_mount(self):
    mount(self)
    raise RuntimeError("a bug in a handler")

WorkbenchApp.on_mount = on_mount
WorkbenchApp.run = lambda self, **kwargs: run(self, headless=True, **kwargs)
run_app(sys.argv[1])
"""


@pytest.mark.slow  # a TUI process
def test_an_unhandled_error_in_the_tui_exits_non_zero(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CRASHING_APP, str(tmp_path / "runs")], env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "a bug in a handler" in done.stdout + done.stderr
