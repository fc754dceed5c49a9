"""Every corpus format loads; bad files give one-line errors naming file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from workbench.corpora import load_corpus
from workbench.corpora.stats import list_corpora, preview, stats_of
from workbench.errors import CorpusError

DOCS = [f"Document {i} talks about the cat number {i}. It sat on the mat." for i in range(40)]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def formats(tmp_path: Path) -> dict[str, Path]:
    out = {
        "txt": write(tmp_path / "c.txt", "\n\n".join(DOCS)),
        "md": write(tmp_path / "c.md", "# Title\n\n" + "\n\n".join(DOCS)),
        "rst": write(tmp_path / "c.rst", "Title\n=====\n\n" + "\n\n".join(DOCS)),
        "csv": write(tmp_path / "c.csv", "id,text\n" + "".join(f'{i},"{d}"\n' for i, d in enumerate(DOCS))),
        "tsv": write(tmp_path / "c.tsv", "text\tlabel\n" + "".join(f"{d}\tpos\n" for d in DOCS)),
        "jsonl": write(tmp_path / "c.jsonl", "".join(json.dumps({"content": d, "n": i}) + "\n" for i, d in enumerate(DOCS))),
        "json": write(tmp_path / "c.json", json.dumps([{"text": d} for d in DOCS])),
    }
    parquet = tmp_path / "c.parquet"
    datasets.Dataset.from_dict({"text": DOCS}).to_parquet(str(parquet))
    out["parquet"] = parquet
    return out


@pytest.mark.parametrize("kind", ["txt", "md", "rst", "csv", "tsv", "jsonl", "json", "parquet"])
def test_every_format_loads(formats: dict[str, Path], kind: str) -> None:
    corpus = load_corpus(str(formats[kind]))
    texts = corpus.texts("train") + corpus.texts("eval")
    assert any("cat number 7" in t for t in texts)
    assert len(corpus.eval) >= 1
    assert "held-out" in corpus.eval_source


def test_directory_uses_its_validation_file(tmp_path: Path) -> None:
    folder = tmp_path / "corp"
    folder.mkdir()
    write(folder / "train.txt", "\n\n".join(DOCS))
    write(folder / "valid.txt", "A held out document.\n\nAnother one.")
    corpus = load_corpus(str(folder))
    assert len(corpus.train) == len(DOCS)
    assert corpus.texts("eval") == ["A held out document.", "Another one."]
    assert "valid.txt" in corpus.eval_source


def test_held_out_split_is_deterministic(formats: dict[str, Path]) -> None:
    a = load_corpus(str(formats["txt"]), seed=3).texts("eval")
    b = load_corpus(str(formats["txt"]), seed=3).texts("eval")
    assert a == b


def test_text_column_flag(tmp_path: Path) -> None:
    path = write(tmp_path / "two.csv", "title,body\n" + "".join(f"t{i},{d}\n" for i, d in enumerate(DOCS)))
    corpus = load_corpus(str(path), text_column="body")
    assert corpus.text_column == "body"


def test_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", "\ufeff" + "\n\n".join(DOCS))
    corpus = load_corpus(str(path))
    assert not any(t.startswith("\ufeff") for t in corpus.texts("train") + corpus.texts("eval"))


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("latin.txt", "caf\xe9 au lait\n".encode("latin-1"), "not valid UTF-8 at byte 3 (line 1)"),
        ("utf16.txt", "hello".encode("utf-16"), "UTF-16"),
        ("nul.txt", b"abc\x00def", "NUL byte"),
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"   \n\n  \n", "no text"),
        ("ragged.csv", b"text,label\nhello,pos\nworld,neg,extra\n", "line 3: 3 fields"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": \n', "line 2: invalid JSON"),
        ("list.jsonl", b'{"text": "a"}\n[1, 2]\n', "line 2: expected a JSON object"),
        ("numeric.csv", b"text\n1\n2\n", "not text"),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    message = str(info.value)
    assert expected in message
    assert name in message and "Fix:" in message and "\n" not in message


def test_unknown_column_lists_the_columns(formats: dict[str, Path]) -> None:
    with pytest.raises(CorpusError, match="unknown column 'body'; the columns are id, text"):
        load_corpus(str(formats["csv"]), text_column="body")


def test_missing_and_unknown_names() -> None:
    with pytest.raises(CorpusError, match="file not found"):
        load_corpus("no/such/file.txt")
    with pytest.raises(CorpusError, match="unknown corpus 'nonesuch'"):
        load_corpus("nonesuch")


def test_hub_dataset_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorpusError) as info:
        load_corpus("hf:someone/not-cached-anywhere")
    assert "hf:someone/not-cached-anywhere" in str(info.value)


def test_builtin_corpora_are_listed_with_stats() -> None:
    rows = {row.name: row for row in list_corpora()}
    assert {"general", "domain"} <= set(rows)
    general = rows["general"]
    assert general.kind == "builtin" and general.documents > 1000 and general.estimated_tokens > 100_000
    assert "valid.txt" in general.eval_source


def test_stats_and_preview(formats: dict[str, Path]) -> None:
    corpus = load_corpus(str(formats["tsv"]))
    stats = stats_of(corpus)
    assert stats.label_counts == {"pos": stats.documents}
    assert stats.characters > 0 and stats.words > 0
    assert len(preview(corpus, 3)) == 3


# --------------------------------------------------------------- real data (skipped if absent)
def test_shared_plain_text(shared_data: Path) -> None:
    shakespeare = load_corpus(str(shared_data / "tinyshakespeare" / "input.txt"))
    assert any(t.startswith("First Citizen:") for t in shakespeare.texts("train") + shakespeare.texts("eval"))
    peps = load_corpus(str(shared_data / "peps"))
    assert "valid.txt" in peps.eval_source and len(peps.train) > 1000


def test_shared_movie_reviews_csv(shared_data: Path) -> None:
    folder = shared_data / "movie_reviews"
    corpus = load_corpus(str(folder / "train.csv"), eval_corpus=str(folder / "test.csv"))
    assert corpus.text_column == "text"
    assert "test.csv" in corpus.eval_source and len(corpus.eval) == 1067
    assert set(stats_of(corpus).label_counts) == {"positive", "negative"}


def test_shared_latin1_file_is_rejected_with_offset(shared_data: Path) -> None:
    with pytest.raises(CorpusError, match=r"rt-polarity.latin1.txt: not valid UTF-8 at byte \d+ \(line \d+\)"):
        load_corpus(str(shared_data / "movie_reviews" / "rt-polarity.latin1.txt"))


def test_stats_of_a_huge_corpus_are_scaled_up_from_a_sample(tmp_path: Path) -> None:
    """Past the sample size the counts come from the first documents only (never the whole
    corpus in memory), scaled up, and say so."""
    lines = ["text,label"] + [f"{'good film' if i % 4 else 'bad film'} number {i:05d} here,{'pos' if i % 4 else 'neg'}"
                              for i in range(30_000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_corpus(str(path))
    exact = stats_of(corpus)
    sampled = stats_of(corpus, sample_chars=50_000)
    assert not exact.estimated and exact.sampled_documents == exact.documents
    assert sampled.estimated and sampled.sampled_documents < sampled.documents == exact.documents
    assert sampled.characters == pytest.approx(exact.characters, rel=0.02)
    assert sampled.words == pytest.approx(exact.words, rel=0.02)
    assert sampled.label_counts["pos"] == pytest.approx(exact.label_counts["pos"], rel=0.02)
