"""Caches heal and messages are right (issue 13, items 8 and 9), driven through the CLI.

A damaged tokenizer or token cache entry is discarded, rebuilt and reported, and the run
succeeds; a label error on the automatic held-out split names that split; a FIFO, a device or
a ``/proc`` file is refused as such, without hanging; a 5000-digit integer or a lone surrogate
is an error naming the file and line; a start that fails leaves no empty run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, one_line_error, tiny_overrides, write_story_corpus
from typer.testing import CliRunner

from workbench.cli import app
from workbench.corpora import load_corpus
from workbench.runs.failed_start import discard_failed_start, only_start_files
from workbench.runs.lock import claim

runner = CliRunner()


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private tokenizer and datasets caches, so damage done here stays here."""
    import datasets

    folders = {"tokenizers": tmp_path / "wb-cache", "datasets": tmp_path / "hf-cache"}
    monkeypatch.setenv("WORKBENCH_CACHE", str(folders["tokenizers"]))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(folders["datasets"]))
    return folders


def run_cli(*args: str, json_events: bool = False) -> tuple[int, str, list[dict]]:
    """``workbench run ARGS``: exit code, output, and the JSON events (with ``json_events``)."""
    result = runner.invoke(app, ["run", "--device", "cpu", *(["--json"] if json_events else []), *args])
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, result.output, events


def tiny_run(corpus: Path, out: Path, name: str) -> tuple[int, str, list[dict]]:
    o = tiny_overrides()
    return run_cli("--corpus", str(corpus), "--out", str(out), "--name", name, "--max-steps", "2", "--batch-size", str(o["batch_size"]),
                   "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]), "--eval-batches", "2", json_events=True)


def notices(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["event"] == "message" and e["text"].startswith("Discarded")]




# ---------------------------------------------------------------------- caches heal
def test_damaged_token_and_tokenizer_caches_are_rebuilt_with_a_notice(caches: dict[str, Path], tmp_path: Path) -> None:
    from workbench.tokenization import load_cached

    corpus = write_story_corpus(tmp_path / "stories.txt")
    out = tmp_path / "runs"

    def arrow_files() -> set[Path]:
        return set(caches["datasets"].rglob("cache-*.arrow"))

    code, output, events = tiny_run(corpus, out, "first")  # trains the tokenizer; caches the corpus's splits
    assert code == 0 and not notices(events), output
    before = arrow_files()
    code, output, events = tiny_run(corpus, out, "second")  # reads the cached tokenizer; caches its tokens
    assert code == 0 and not notices(events), output
    tokens = arrow_files() - before
    assert tokens
    for path in tokens:
        path.write_bytes(path.read_bytes()[:100])  # cut short, as by a full disk or a kill

    code, output, events = tiny_run(corpus, out, "tokens-healed")
    assert code == 0 and events[-1]["event"] == "finished", output
    [said] = notices(events)
    assert said.startswith("Discarded unreadable cached corpus data") and any(p.name in said for p in tokens), said

    [entry] = (caches["tokenizers"] / "tokenizers").iterdir()
    (entry / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "NoSuchModel"}}', encoding="utf-8")
    code, output, events = tiny_run(corpus, out, "tokenizer-healed")
    assert code == 0 and events[-1]["event"] == "finished", output
    [said] = notices(events)
    assert said.startswith("Discarded an unreadable tokenizer cache entry") and entry.name in said and "\n" not in said, said
    assert load_cached(entry, masked=False)  # trained again and stored in its place


def test_damaged_token_cache_entry_rebuilds_the_same_blocks(caches: dict[str, Path], tmp_path: Path) -> None:
    """The blocks after healing are the blocks before: the entry really was rebuilt."""
    from workbench.corpora import cache
    from workbench.tasks import packing
    from workbench.tokenization import train_tokenizer

    corpus = load_corpus(str(write_story_corpus(tmp_path / "stories.txt")))
    tokenizer = train_tokenizer("bpe", corpus.texts(), 300, masked=False)
    before = set(caches["datasets"].rglob("cache-*.arrow"))
    train, _ = packing.packed_blocks(corpus, tokenizer, 32, append_eos=True)
    made = set(caches["datasets"].rglob("cache-*.arrow")) - before
    assert made
    for path in made:
        path.write_bytes(path.read_bytes()[:100])  # cut short, as by a full disk or a kill
    heard: list[str] = []
    with cache.notices_to(heard.append):
        again, _ = packing.packed_blocks(corpus, tokenizer, 32, append_eos=True)
    assert bool((again == train).all())
    [said] = heard  # the train split's failure finds both (train and eval share a folder): one line
    assert said.startswith("Discarded unreadable cached corpus data") and "and 1 more" in said


# ---------------------------------------------------------------------- messages are right
def test_label_error_on_the_held_out_split_names_it(caches: dict[str, Path], tmp_path: Path) -> None:
    """A class whose only row fell in the automatic held-out 5% is named as such, with fixes
    for that case: there is no eval file to correct."""
    from transformers import BertConfig, BertModel

    path = tmp_path / "reviews.csv"
    rows = [f"review number {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    path.write_text("text,label\n" + "\n".join(rows + ["an odd one,weird"]) + "\n", encoding="utf-8")
    base = tmp_path / "bert"
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=64)).save_pretrained(base)
    seed = next(s for s in range(200) if "weird" in load_corpus(str(path), seed=s).eval["label"])
    code, output, _ = run_cli("--objective", "sentiment", "--base", str(base), "--corpus", str(path),
                              "--seed", str(seed), "--out", str(tmp_path / "runs"))
    text = one_line_error(SimpleNamespace(exit_code=code, output=output), "reviews.csv", "'weird'", f"held-out 5% of reviews.csv (seed {seed})", "--eval-corpus", fix=True)
    assert "in the eval file" not in text  # the old advice: fix an eval file that does not exist
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_empty_label_in_an_eval_file_names_the_eval_file(caches: dict[str, Path], tmp_path: Path) -> None:
    from workbench.errors import CorpusError
    from workbench.tasks.finetune.sentiment import SentimentTask

    train, evaluation = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\ngood,pos\nbad,neg\nfine,pos\n", encoding="utf-8")
    evaluation.write_text("text,label\ngreat,pos\nmeh,\n", encoding="utf-8")
    corpus = load_corpus(str(train), eval_corpus=str(evaluation))
    with pytest.raises(CorpusError, match=r"dev\.csv \(row 2\): empty label in the eval file"):
        SentimentTask().check_data(corpus, SimpleNamespace(data=SimpleNamespace(label_column=None)))  # what it reads of a resolved spec


def _cli_subprocess(corpus: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "workbench", "run", "--corpus", corpus, "--out", str(out), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=out.parent)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "proc"])
@pytest.mark.slow  # one process per special file
def test_special_files_are_refused_as_such_without_hanging(tmp_path: Path, kind: str) -> None:
    """In a subprocess with a timeout: opening a FIFO to read it would block forever."""
    if kind == "fifo":
        corpus, named = str(tmp_path / "corpus.txt"), "named pipe (FIFO)"
        os.mkfifo(corpus)
    elif kind == "dev-zero":
        corpus, named = "/dev/zero", "character device"
    else:
        corpus, named = "/proc/self/status", "/proc"
        if not Path(corpus).exists():
            pytest.skip("no /proc here")
    done = _cli_subprocess(corpus, tmp_path / "runs")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr, lines
    assert named in lines[0] and "not a regular file" in lines[0] and "empty" not in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def _jsonl(path: Path, bad_line: str, at: int = 6) -> Path:
    lines = [json.dumps({"text": f"document {i} has a few words in it"}) for i in range(20)]
    lines.insert(at - 1, bad_line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("bad_line, needle", [
    ('{"text": "a number", "n": ' + "7" * 5000 + "}", "an integer with 5000 digits"),
    ('{"text": "half a pair \\ud800 here"}', "lone UTF-16 surrogate"),
    ('{"te\\udc00xt": "in a key"}', "lone UTF-16 surrogate"),
    ('{"text": "too big", "x": 1e999}', "too large for a 64-bit float"),
])
def test_unholdable_json_values_name_the_file_and_line(caches: dict[str, Path], tmp_path: Path, bad_line: str, needle: str) -> None:
    path = _jsonl(tmp_path / "corpus.jsonl", bad_line)
    code, output, _ = run_cli("--corpus", str(path), "--out", str(tmp_path / "runs"))
    one_line_error(SimpleNamespace(exit_code=code, output=output), "corpus.jsonl", "line 6, column", needle, fix=True)


@pytest.mark.parametrize("text, at", [
    (r'{"a": "ok \ud83d\ude00 then \udc00"}', 28),  # a whole pair first: the lone half is the one named
    (r'{"a": "\ud800\ud800"}', 7),  # two leading halves
    (r'{"a": "\ude00\ud83d"}', 7),  # a pair in the wrong order
    (r'{"a": "\\\ud800"}', 9),  # an escaped backslash, then a lone half
])
def test_a_lone_surrogate_is_located(text: str, at: int) -> None:
    from workbench.corpora.validate import JsonValueError, loads

    with pytest.raises(JsonValueError) as caught:
        loads(text)
    assert caught.value.offset == at and text[at:at + 2] == "\\u"


def test_escaped_text_and_whole_pairs_are_fine() -> None:
    from workbench.corpora.validate import loads

    assert loads(r'{"a": "\\ud800 \ud83d\ude00"}') == {"a": "\\ud800 \U0001f600"}


def test_unholdable_json_values_in_a_json_file_and_in_fine_tuning_files(tmp_path: Path) -> None:
    from workbench.errors import CorpusError
    from workbench.tasks.finetune.conll import read_ner_file
    from workbench.tasks.finetune.squad import read_qa_file

    records = [{"text": f"document {i}"} for i in range(5)]
    body = ",\n".join(json.dumps(r) for r in records[:3]) + ',\n{"text": "x", "id": 99999999999999999999},\n' + json.dumps(records[3])
    (tmp_path / "corpus.json").write_text("[\n" + body + "\n]\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"corpus\.json: line 5, column \d+: integer 99999999999999999999 does not fit in 64 bits"):
        load_corpus(str(tmp_path / "corpus.json"))
    ner = tmp_path / "ner.jsonl"
    ner.write_text('{"tokens": ["Ada"], "tags": ["B-PER"]}\n{"tokens": ["Ada\\udfff"], "tags": ["B-PER"]}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"ner\.jsonl: line 2, column \d+: a lone UTF-16 surrogate"):
        read_ner_file(ner)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"context": "c", "question": "q", "id": ' + "1" * 5000 + "}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"qa\.jsonl: line 1, column \d+: an integer with 5000 digits"):
        read_qa_file(qa)


# ---------------------------------------------------------------------- a failed start
def test_a_failed_start_leaves_no_run_directory(caches: dict[str, Path], tmp_path: Path) -> None:
    """The corpus is too short for one sequence: found after the run directory was made
    (the tokenizer must exist first). The directory goes; the error says why."""
    corpus = tmp_path / "short.txt"
    corpus.write_text("one two three.\n\nfour five six.\n", encoding="utf-8")
    out = tmp_path / "runs"
    code, output, _ = run_cli("--corpus", str(corpus), "--out", str(out), "--seq-len", "64", "--vocab-size", "300")
    assert code == 2 and "fewer tokens than one sequence" in output, output
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_start_whose_tokenizer_fails_leaves_no_run_directory(story_corpus: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Not bad input but a failure all the same (here a bug): the folder made for the run goes too."""
    import workbench.tokenization
    from workbench.config import RunSpec
    from workbench.engine import TrainingRun

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the tokenizer trainer broke")

    monkeypatch.setattr(workbench.tokenization, "train_tokenizer", broken)
    out = tmp_path / "runs"
    spec = RunSpec(corpus=str(story_corpus), objective="clm", out=str(out), name="broken", **tiny_overrides(max_steps=2))
    failed: list = []
    with pytest.raises(RuntimeError, match="the tokenizer trainer broke"):
        TrainingRun(spec, listeners=[lambda e: failed.append(e) if e.kind == "failed" else None]).run()
    assert out.is_dir() and list(out.iterdir()) == []
    assert failed and failed[0].run_dir == "" and "the tokenizer trainer broke" in failed[0].message


def _start_files(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in (".lock", "status.json", "run.toml", "metrics.jsonl"):
        (path / name).write_text("", encoding="utf-8")
    (path / "tokenizer").mkdir()
    (path / "tokenizer" / "tokenizer.json").write_text("{}", encoding="utf-8")
    return path


@pytest.mark.parametrize("extra", ["checkpoints/step-0000005/model.safetensors", "model/config.json", "metrics.jsonl", "notes.txt",
                                   "tokenizer/nested/file", "link"])
def test_a_run_directory_holding_anything_else_is_kept(tmp_path: Path, extra: str) -> None:
    run = _start_files(tmp_path / "run")
    target = run / extra
    if extra == "link":
        target.symlink_to(tmp_path)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text('{"event": "started"}\n', encoding="utf-8")
    assert not only_start_files(run)
    assert not discard_failed_start(run) and (run / ("link" if extra == "link" else extra)).exists()


def test_only_start_files_go_and_never_under_another_writers_lock(tmp_path: Path) -> None:
    held = _start_files(tmp_path / "held")
    lock = claim(held)  # as another process would: the folder is in use
    try:
        assert only_start_files(held) and not discard_failed_start(held) and held.is_dir()
    finally:
        lock.release()
    assert discard_failed_start(held) and not held.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing left aside either
