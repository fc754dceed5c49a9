"""eval_predictions.jsonl can be joined back to the input: each sentiment prediction carries
its row's line and text, each QA prediction its question's line, id and question, in file order,
and the lines stay right when blank rows were dropped and a text spans lines."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
from workbench.config import RunSpec
from workbench.engine.runner import run_spec

STEPS = dict(max_steps=2, eval_interval=2, eval_batches=1)
WORDS = ["great", "lovely", "superb", "awful", "dull", "bad"]


def train(tmp: Path, **fields) -> dict:
    spec = RunSpec(**{**tiny_overrides(**STEPS), "out": str(tmp / "runs"), "device": "cpu", **fields})
    return run_spec(spec).summary


@pytest.fixture(scope="module")
def mlm_base(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> str:
    """A tiny encoder pre-trained 2 steps, with room for 64-token inputs when fine-tuned."""
    tmp = tmp_path_factory.mktemp("base")
    return train(tmp, objective="mlm", corpus=str(story_corpus), name="mlm-base", max_position=64)["run_dir"]


def predictions(summary: dict) -> list[dict]:
    path = Path(summary["run_dir"]) / "eval_predictions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def reviews(n: int) -> list[tuple[str, str]]:
    """Distinct texts (``review 7: ...``), alternating labels."""
    rng = random.Random(1)
    return [(f"review {i}: the film was {rng.choice(WORDS)}", "positive" if i % 2 else "negative") for i in range(n)]


TWO_LINES = ("review x: spans\ntwo lines, with a comma", "positive")


def write_csv_with_gaps(path: Path) -> Path:
    """A CSV whose rows are not one a line: a blank line (the reader skips it), a row with an
    empty text (dropped as blank), and a quoted text over two lines, all before most rows."""
    rows = reviews(40)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["review", "sentiment"])
    for i, row in enumerate(rows):
        if i == 2:
            buffer.write("\n")
            writer.writerow(["", "negative"])
            writer.writerow(TWO_LINES)
        writer.writerow(row)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_sentiment_predictions_point_at_their_csv_lines(mlm_base: str, tmp_path: Path) -> None:
    path = write_csv_with_gaps(tmp_path / "reviews.csv")
    summary = train(tmp_path, objective="sentiment", base=mlm_base, corpus=str(path), eval_fraction=0.3)
    rows = predictions(summary)
    assert len(rows) == summary["metrics"]["eval_examples"] == 12
    lines = path.read_text(encoding="utf-8").split("\n")
    labels = dict([*reviews(40), TWO_LINES])
    for row in rows:
        assert set(row) == {"line", "text", "gold", "pred"}, row
        first = lines[row["line"] - 1]
        assert first.lstrip('"').startswith(row["text"].split("\n")[0]), (row, first)
        assert row["gold"] == labels[row["text"]]
    numbers = [row["line"] for row in rows]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert max(numbers) > 7  # some rows lie past the blank line, the dropped row and the two-line text


def test_sentiment_predictions_in_a_separate_jsonl_eval_file(mlm_base: str, tmp_path: Path) -> None:
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_file.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in reviews(30)), encoding="utf-8")
    held = [(f"held {t}", y) for t, y in reviews(8)]
    held.insert(3, ("   ", "positive"))  # blank: dropped
    eval_file.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in held), encoding="utf-8")
    summary = train(tmp_path, objective="sentiment", base=mlm_base, corpus=str(train_file), eval_corpus=str(eval_file))
    rows = predictions(summary)
    lines = eval_file.read_text(encoding="utf-8").splitlines()
    assert [row["line"] for row in rows] == [1, 2, 3, 5, 6, 7, 8, 9]  # file order, line 4 dropped
    for row in rows:
        record = json.loads(lines[row["line"] - 1])
        assert (record["text"], record["label"]) == (row["text"], row["gold"])


def write_qa_with_blank_lines(path: Path, n: int) -> Path:
    rng = random.Random(3)
    lines = []
    for i in range(n):
        person, place = rng.choice(["Ada", "Bob", "Cleo", "Dan"]), rng.choice(["Paris", "Rome", "Oslo", "Lima"])
        context = f"{person} lives in {place}. The sky was blue that day."
        lines.append(json.dumps({"id": f"q{i}", "title": f"doc{i}", "context": context, "question": f"Where does {person} live?",
                                 "answers": {"text": [place], "answer_start": [context.index(place)]}}))
        if i % 5 == 1:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_qa_predictions_point_at_their_jsonl_lines(mlm_base: str, tmp_path: Path) -> None:
    path = write_qa_with_blank_lines(tmp_path / "qa.jsonl", 24)
    summary = train(tmp_path, objective="qa", base=mlm_base, corpus=str(path), eval_fraction=0.25, seq_len=32)
    rows = predictions(summary)
    assert len(rows) == summary["metrics"]["eval_questions"] == 6
    lines = path.read_text(encoding="utf-8").splitlines()
    for row in rows:
        record = json.loads(lines[row["line"] - 1])
        assert (record["id"], record["question"], record["answers"]["text"]) == (row["id"], row["question"], row["gold"])
    numbers = [row["line"] for row in rows]
    assert numbers == sorted(numbers) and max(numbers) > int(rows[-1]["id"][1:]) + 1  # blank lines counted


def test_rows_without_lines_say_their_index_and_a_changed_file_gives_no_wrong_line(tmp_path: Path) -> None:
    from workbench.tasks.finetune.sentiment import SentimentRows, in_file_order

    records = [{"text": t, "gold": "a", "pred": "a"} for t in ("third", "first")]
    shaped = dict(train=None, eval=None, collate=None, eval_rows=[2, 0], eval_texts=["third", "first"])
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps([{"text": t} for t in ("first", "second", "third")]), encoding="utf-8")
    assert in_file_order(records, SentimentRows(**shaped, eval_files=[as_json])) == [
        {"row": 0, "text": "first", "gold": "a", "pred": "a"}, {"row": 2, "text": "third", "gold": "a", "pred": "a"}]
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("text\tlabel\nfirst\ta\n\nsecond\ta\nthird\ta\n", encoding="utf-8")
    assert [r["line"] for r in in_file_order(records, SentimentRows(**shaped, eval_files=[tsv]))] == [2, 5]
    tsv.write_text("text\tlabel\nfirst\ta\nchanged\ta\nsecond\ta\n", encoding="utf-8")  # edited since the run
    assert [r["row"] for r in in_file_order(records, SentimentRows(**shaped, eval_files=[tsv]))] == [0, 2]
