"""1,000+ generated hostile files through every loader: no tracebacks, no hangs, one-line errors."""

from __future__ import annotations

import logging

import fuzz_corpora
import pytest
from fuzz_corpora import FuzzReport, fuzz, generate


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[fuzz_corpora.Case]:
    return generate(tmp_path_factory.mktemp("fuzz"), seed=1234)


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file gets an Arrow cache entry: keep them in tmp, not the user's cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
    datasets.disable_progress_bars()
    logging.getLogger("datasets").setLevel(logging.ERROR)


def _summary(report: FuzzReport) -> str:
    lines = [f"{report.files} files, {report.accepted} accepted, {report.rejected} rejected in {report.seconds:.1f}s"]
    for name in ("tracebacks", "hangs", "bad_messages", "wrong_outcomes"):
        items = getattr(report, name)
        lines += [f"{name}: {len(items)}"] + [f"  {item[:300]}" for item in items[:8]]
    return "\n".join(lines)


def test_generated_suite_is_big_and_covers_every_format(cases: list[fuzz_corpora.Case]) -> None:
    assert len([c for c in cases if c.loader == "corpus"]) >= 1000
    suffixes = {c.path.suffix for c in cases if c.loader == "corpus"}
    assert suffixes >= {".txt", ".md", ".csv", ".tsv", ".jsonl", ".json", ".parquet"}
    assert any(c.path.stat().st_size >= 10_000_000 for c in cases)


@pytest.mark.slow  # the whole fuzz suite
def test_corpus_loader_survives_the_suite(cases: list[fuzz_corpora.Case]) -> None:
    report = fuzz(cases, only="corpus")
    assert report.files >= 1000
    assert report.clean, _summary(report)
    assert report.accepted and report.rejected


@pytest.mark.parametrize("loader", ["labelled", "ner", "qa"])
def test_finetune_loaders_survive_the_suite(cases: list[fuzz_corpora.Case], loader: str) -> None:
    if loader not in fuzz_corpora.loaders():
        pytest.skip("the fine-tuning loaders are not there yet")
    report = fuzz(cases, only=loader)
    assert report.files >= 50
    assert report.clean, _summary(report)
