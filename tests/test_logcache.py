"""The polling readers' events cache gives what a full read gives, after every kind of change
a metrics file can see, and parses only the lines appended since its last read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workbench.runs import rundir
from workbench.runs.logcache import LogCache
from workbench.runs.rundir import RunDir


def step(n: int, loss: float = 3.0) -> bytes:
    return (json.dumps({"event": "step", "time": 1.0 + n, "step": n, "total_steps": 100, "loss": loss, "lr": 1e-3, "tokens": n * 64,
                        "tokens_per_s": 1.0, "elapsed_s": 0.1, "eta_s": 1.0}) + "\n").encode()


def started() -> bytes:
    return (json.dumps({"event": "started", "time": 1.0, "run_dir": ".", "name": "r", "objective": "clm", "corpus": "general",
                        "total_steps": 100, "parameters": 10, "device": "cpu", "precision": "fp32"}) + "\n").encode()


def same(cache: LogCache, run: RunDir) -> None:
    got, want = cache.read_events(run), run.read_events()
    assert (got.records, got.skipped, got.first_skipped, got.unreadable) == (want.records, want.skipped, want.first_skipped, want.unreadable)


def test_every_change_reads_as_a_full_read_does(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    cache = LogCache()
    same(cache, run)  # no file yet
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(started() + step(1) + step(2))
    same(cache, run)
    with metrics.open("ab") as handle:  # appends: a blank line, a bad line, a wrong event, a torn line
        handle.write(b"\n   \n" + b"{not json\n" + b'{"event": "step", "step": 3}\n' + step(4) + step(5)[:20])
    same(cache, run)
    with metrics.open("ab") as handle:  # the torn line completed, a carriage return inside a value
        handle.write(step(5)[20:] + step(6).replace(b'"step"', b'"st\\rep"', 0) + b'{"a": 1}\r\n')
    same(cache, run)
    with metrics.open("ab") as handle:  # a last line that parses but has no newline yet
        handle.write(step(7).rstrip(b"\n"))
    same(cache, run)
    metrics.write_bytes(started() + step(1, loss=9.0))  # truncated and rewritten in place (same inode)
    same(cache, run)
    data = metrics.read_bytes()
    metrics.write_bytes(data.replace(b'"eta_s": 1.0', b'"eta_s": 2.0') + step(2))  # changed just before the point read, and longer
    same(cache, run)
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(started() + step(1) + step(2) + step(3))
    os.replace(replacement, metrics)  # replaced atomically: another inode
    same(cache, run)
    metrics.unlink()
    same(cache, run)


def test_an_append_parses_only_the_new_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(started() + b"".join(step(n) for n in range(1, 1001)))
    run, cache = RunDir(tmp_path), LogCache()
    assert len(cache.read_events(run).records) == 1001
    parsed = []
    original = rundir.parse_json_line  # every reader judges its lines with JsonLines.take, which parses through it
    monkeypatch.setattr(rundir, "parse_json_line", lambda raw: parsed.append(raw) or original(raw))
    with metrics.open("ab") as handle:
        handle.write(step(1001, loss=2.5))
    events = cache.read_events(run)
    assert len(parsed) == 1 and events.records[-1]["loss"] == 2.5 and len(events.records) == 1002
    assert cache.read_events(run).records == events.records and len(parsed) == 1  # unchanged: nothing parsed


def test_the_cache_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    cache = LogCache(files=2)
    runs = []
    for name in "abc":
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.jsonl").write_bytes(started() + step(1))
        runs.append(RunDir(folder))
        cache.read_events(runs[-1])
    assert len(cache._reads) == 2 and str(runs[0].metrics) not in cache._reads


def test_the_cache_keeps_a_bounded_number_of_records(tmp_path: Path) -> None:
    cache = LogCache(records=5)
    for name in "ab":
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.jsonl").write_bytes(started() + b"".join(step(n) for n in range(1, 4)))
        cache.read_events(RunDir(folder))
    assert list(cache._reads) == [str(tmp_path / "b" / "metrics.jsonl")]  # 8 records were too many: the older file went
