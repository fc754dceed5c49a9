"""The set-up says how far its long steps are: ``Preparing`` events with rising fractions,
from the corpora/tasks side (``workbench.corpora.progress``), before the run starts."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_overrides, write_story_corpus

from workbench.config import RunSpec
from workbench.corpora import progress
from workbench.runs.events import Preparing, RunStarted


def test_tokenizing_reports_rising_fractions_before_the_run_starts(tmp_path: Path, monkeypatch) -> None:
    from workbench.engine import TrainingRun
    from workbench.runs import RunControl

    monkeypatch.setattr(progress, "INTERVAL", 0.0)  # every map batch (1,000 rows) reports
    corpus = write_story_corpus(tmp_path / "many.txt", documents=3200)
    seen: list = []
    control = RunControl()

    def listener(event) -> None:
        seen.append(event)
        if isinstance(event, RunStarted):  # the set-up is what this test is about: stop before the first step
            control.request_stop()

    spec = RunSpec(corpus=str(corpus), objective="clm", tokenizer="char", max_steps=1, out=str(tmp_path / "runs"),
                   **tiny_overrides(eval_batches=1))
    TrainingRun(spec, listeners=[listener], control=control).run()
    started = next(i for i, event in enumerate(seen) if isinstance(event, RunStarted))
    fractions = [e.fraction for e in seen[:started] if isinstance(e, Preparing) and e.stage == "tokenizing"]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(set(fractions)) >= 4, fractions  # several in between, rising
    assert not any(isinstance(e, Preparing) for e in seen[started:])


def test_reports_are_throttled_and_absent_without_a_listener() -> None:
    reports: list = []
    with progress.stage("nobody listens", 10):
        progress.advance(5)  # no listener: nothing happens, nothing fails
    with progress.reported_to(lambda stage, fraction: reports.append((stage, fraction))):
        with progress.stage("tokenizing", 1000):
            for _ in range(1000):
                progress.advance(1)  # far faster than INTERVAL: no report in between
        with progress.stage("unknown length"):
            progress.advance(3)
    assert reports == [("tokenizing", 0.0), ("tokenizing", 1.0), ("unknown length", None)]


def test_tokenizing_stays_cached_by_datasets(tmp_path: Path) -> None:
    """``advance`` inside the function given to ``datasets.map`` must leave it hashable, or
    every map gets a random fingerprint and is a cache miss; and a listener changes nothing."""
    import datasets

    from workbench.tasks.packing import tokenize_split
    from workbench.tokenization import train_char

    datasets.Dataset.from_dict({"text": ["the cat sat", "on the mat"] * 50}).save_to_disk(str(tmp_path / "ds"))
    ds = datasets.load_from_disk(str(tmp_path / "ds"))  # file-backed: map caches beside it
    tokenizer = train_char(ds["text"], masked=False)
    first = tokenize_split(ds, "text", tokenizer, append_eos=True)
    reports: list = []
    with progress.reported_to(lambda stage, fraction: reports.append(fraction)), progress.stage("tokenizing", len(ds)):
        again = tokenize_split(ds, "text", tokenizer, append_eos=True)
    assert again._fingerprint == first._fingerprint and again.cache_files == first.cache_files
    assert reports == [0.0, 1.0]  # a cache hit: the stage's start and end only
