"""The listing cache: a run's files are read again only when they changed, and what must be live stays live."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.runs import rowcache, rundir
from workbench.runs.listing import list_runs

runner = CliRunner()
OLD = time.time() - 3600


def write_run(folder: Path, status: dict, evals: list[float] = (3.5, 3.25)) -> Path:
    """A run as the engine leaves it (run.toml, status.json, metrics.jsonl), written an hour ago."""
    folder.mkdir(parents=True)
    folder.joinpath("run.toml").write_text(f'[spec]\nobjective = "clm"\ncorpus = "general"\n\n[meta]\ncreated = {OLD}\n')
    folder.joinpath("status.json").write_text(json.dumps(status))
    events = [{"event": "started", "time": OLD, "run_dir": ".", "name": folder.name, "objective": "clm", "corpus": "general",
               "total_steps": 100, "parameters": 1000, "device": "cpu", "precision": "fp32"}]
    events += [{"event": "eval", "time": OLD, "step": 10 * (i + 1), "eval_loss": loss, "perplexity": 2.0} for i, loss in enumerate(evals)]
    folder.joinpath("metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    backdate(folder)
    return folder


def backdate(folder: Path) -> None:
    """Files last written an hour ago (a file written this very second is never cached)."""
    for file in folder.iterdir():
        os.utime(file, (OLD, OLD))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the run files opened for reading (every reader goes through ``open_regular``)."""
    names: list[str] = []
    original = rundir.open_regular

    def counting(path):
        names.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(rundir, "open_regular", counting)
    return names


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def row(root: Path, name: str, cache: rowcache.RowCache | None):
    return next(r for r in list_runs(str(root), cache) if r.name == name)


def test_a_second_listing_reads_no_run_file_and_an_append_is_read(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "runs"
    folder = write_run(root / "a", {"status": "finished", "pid": 1})
    cache = rowcache.RowCache()
    assert row(root, "a", cache).best_eval_loss == 3.25
    assert "metrics.jsonl" in opened
    opened.clear()
    assert row(root, "a", cache).best_eval_loss == 3.25
    assert opened == []  # nothing read: not metrics.jsonl, not status.json, not run.toml
    with folder.joinpath("metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"event": "eval", "time": OLD, "step": 90, "eval_loss": 2.5, "perplexity": 2.0}) + "\n")
    backdate(folder)  # even with its old modification time: the size changed
    assert row(root, "a", cache).best_eval_loss == 2.5
    assert opened.count("metrics.jsonl") == 1


def test_a_same_size_rewrite_at_the_same_time_under_a_new_inode_is_read(tmp_path: Path) -> None:
    """A copy put in a run's place (``cp -a``, ``rsync``) keeps sizes and times: its inodes tell it apart."""
    root = tmp_path / "runs"
    folder = write_run(root / "a", {"status": "finished", "pid": 1}, evals=[3.25])
    cache = rowcache.RowCache()
    assert row(root, "a", cache).best_eval_loss == 3.25
    other = write_run(tmp_path / "elsewhere" / "a", {"status": "finished", "pid": 1}, evals=[1.25])
    stats = {f.name: f.stat() for f in folder.iterdir()}
    for file in other.iterdir():
        assert file.stat().st_size == stats[file.name].st_size
        os.utime(file, ns=(stats[file.name].st_atime_ns, stats[file.name].st_mtime_ns))
    shutil.rmtree(folder)
    shutil.copytree(other, folder, copy_function=shutil.copy2)
    assert row(root, "a", cache).best_eval_loss == 1.25


def test_a_file_written_this_second_is_not_cached(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "runs"
    folder = write_run(root / "a", {"status": "finished", "pid": 1})
    folder.joinpath("status.json").write_text(json.dumps({"status": "stopped", "pid": 1}))  # now: racy
    cache = rowcache.RowCache()
    assert row(root, "a", cache).state == "stopped"
    opened.clear()
    row(root, "a", cache)
    assert "status.json" in opened and "metrics.jsonl" in opened


def test_pid_liveness_is_checked_on_every_listing(tmp_path: Path, opened: list[str]) -> None:
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        root = tmp_path / "runs"
        write_run(root / "a", {"status": "running", "pid": writer.pid})
        cache = rowcache.RowCache()
        assert row(root, "a", cache).state == "running"
    finally:
        writer.kill()
        writer.wait()
    opened.clear()
    listed = row(root, "a", cache)
    assert opened == []  # the row came from the cache, its pid was looked at anyway
    assert (listed.state, listed.status) == ("interrupted", "interrupted")


def test_a_damaged_file_is_still_reported_from_the_cache(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "runs"
    folder = write_run(root / "a", {"status": "finished", "pid": 1})
    with folder.joinpath("metrics.jsonl").open("a") as handle:
        handle.write("{not json\n")
    folder.joinpath("status.json").write_text("[1, 2]")
    backdate(folder)
    cache = rowcache.RowCache()
    first = row(root, "a", cache)
    opened.clear()
    second = row(root, "a", cache)
    assert opened == []
    assert first == second
    assert second.problems == ["status.json is not a JSON object but list", "metrics.jsonl: 1 unreadable line skipped"]
    assert second.status.startswith("damaged: ")


def test_the_cli_keeps_its_cache_outside_the_run_root(tmp_path: Path, cache_dir: Path, opened: list[str]) -> None:
    root = tmp_path / "runs"
    write_run(root / "a", {"status": "finished", "pid": 1})
    write_run(root / "sweep" / "t000", {"status": "finished", "pid": 1}, evals=[2.75])
    root.joinpath("sweep", "sweep.toml").write_text("[grid]\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    first = runner.invoke(app, ["runs", "--json", "--out", str(root)], catch_exceptions=False)
    assert first.exit_code == 0 and opened.count("metrics.jsonl") == 2
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert [p.name for p in cache_dir.joinpath("runs").iterdir()] == [rowcache.cache_file(root).name]
    rowcache.MEMORY.entries.clear()  # only the disk cache can serve the second call
    opened.clear()
    second = runner.invoke(app, ["runs", "--json", "--out", str(root)], catch_exceptions=False)
    assert "metrics.jsonl" not in opened
    assert json.loads(second.output) == json.loads(first.output)


@pytest.mark.parametrize("damage", ["", "{not json", '{"version": 1, "root": "/elsewhere", "runs": {}}', "BAD-ENTRY"])
def test_a_damaged_disk_cache_is_ignored_and_rebuilt(tmp_path: Path, cache_dir: Path, damage: str) -> None:
    root = tmp_path / "runs"
    write_run(root / "a", {"status": "finished", "pid": 1})
    file = rowcache.cache_file(root)
    if damage == "BAD-ENTRY":  # an entry with the right stamp but facts of the wrong type
        cache = rowcache.RowCache()
        list_runs(str(root), cache)
        rowcache.save(cache, root)
        data = json.loads(file.read_text())
        next(iter(data["runs"].values()))[1]["best"] = "low"
        damage = json.dumps(data)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(damage)
    result = runner.invoke(app, ["runs", "--json", "--out", str(root)], catch_exceptions=False)
    assert json.loads(result.output)[0]["best_eval_loss"] == 3.25
    assert rowcache.load(root).entries  # rebuilt


@pytest.mark.anyio
async def test_runs_pane_shows_a_changed_run_and_keeps_its_cursor(tmp_path: Path) -> None:
    """A poll that lists the same runs updates their cells in place; a new run refills the table."""
    from textual.widgets import DataTable

    from workbench.tui.app import create_app
    from workbench.tui.panes.runs import RunsPane

    root = tmp_path / "runs"
    for name in ("a", "b", "c"):
        write_run(root / name, {"status": "finished", "pid": 1})
    app = create_app(root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(RunsPane)
        table = app.query_one("#runs-table", DataTable)
        table.move_cursor(row=2)
        chosen = pane.selected_path()
        with (root / "b" / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps({"event": "eval", "time": OLD, "step": 90, "eval_loss": 1.5, "perplexity": 2.0}) + "\n")
        pane.action_refresh()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert str(table.get_row(str((root / "b").resolve()))[3]) == "1.5000"
        assert pane.selected_path() == chosen and table.row_count == 3
        write_run(root / "d", {"status": "finished", "pid": 1})
        pane.action_refresh()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert table.row_count == 4 and pane.selected_path() == chosen


def test_a_poll_while_runs_run_reads_only_the_running_ones(tmp_path: Path, opened: list[str]) -> None:
    """``refresh_running``: the running run's new step shows; a finished run's files are not opened."""
    from workbench.runs.listing import refresh_running

    live = write_run(tmp_path / "live", {"status": "running", "pid": os.getpid(), "updated": OLD})
    write_run(tmp_path / "done", {"status": "finished", "pid": 1, "updated": OLD})
    cache = rowcache.RowCache()
    rows = list_runs(str(tmp_path), cache)
    with live.joinpath("metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"event": "step", "time": OLD, "step": 7, "total_steps": 100, "loss": 2.0, "lr": 1e-3, "tokens": 7,
                                 "tokens_per_s": 1.0, "elapsed_s": 1.0, "eta_s": 1.0}) + "\n")
    opened.clear()
    fresh = refresh_running(rows, cache)
    assert [row.name for row in fresh] == [row.name for row in rows]
    assert next(row for row in fresh if row.name == "live").steps == 7
    assert next(row for row in fresh if row.name == "done") is next(row for row in rows if row.name == "done")
    assert opened.count("metrics.jsonl") == 1  # the live run's, read again for its new step


def test_a_linked_run_folder_is_listed_at_its_real_path(tmp_path: Path) -> None:
    """Runs are keyed by their real path: a run folder that is a link resolves to its target
    (the others are the run root's real path joined with their names)."""
    elsewhere = write_run(tmp_path / "elsewhere" / "real", {"status": "finished", "pid": 1, "updated": OLD})
    root = tmp_path / "root"
    write_run(root / "plain", {"status": "finished", "pid": 1, "updated": OLD})
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "via").symlink_to(root, target_is_directory=True)
    rows = {row.name: row.path for row in list_runs(str(tmp_path / "via"), rowcache.RowCache())}
    assert rows == {"plain": str((root / "plain").resolve()), "real": str(elsewhere.resolve())}  # named as it is where it lies
