"""Fine-tuning input loaders: every format and trap, plus the real files under ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import CorpusError
from workbench.tasks.finetune.conll import read_ner_file, to_iob2
from workbench.tasks.finetune.labels import detect_label_column, label_names
from workbench.tasks.finetune.squad import read_qa_file

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_2003_four_columns_docstart_crlf_bom_iob1(tmp_path: Path):
    path = tmp_path / "train.conll"
    path.write_bytes(b"\xef\xbb\xbf" + CONLL_2003.replace("\n", "\r\n").encode("utf-8"))
    sentences = read_ner_file(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"]]
    # IOB1 (entities start with I-) becomes IOB2.
    assert sentences[0].tags == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert sentences[1].tags == ["B-PER", "I-PER"]
    assert sentences[0].lines[0] == 3


def test_tag_schemes_normalise_to_iob2():
    assert to_iob2(["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]) == ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC", "B-LOC"]
    assert to_iob2(["I-PER", "I-PER", "B-PER", "I-LOC"]) == ["B-PER", "I-PER", "B-PER", "B-LOC"]
    assert to_iob2(["U-ORG", "B-ORG", "L-ORG"]) == ["B-ORG", "B-ORG", "I-ORG"]
    assert to_iob2(["B-X", "I-X", "O"]) == ["B-X", "I-X", "O"]  # IOB2 is left as it is


def test_ner_jsonl_and_bad_lines(tmp_path: Path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": ["Ada", "Lovelace", "wrote"], "tags": ["B-PER", "I-PER", "O"]}) + "\n\n", encoding="utf-8")
    assert read_ner_file(path)[0].tags == ["B-PER", "I-PER", "O"]
    bad = tmp_path / "bad.conll"
    bad.write_text("Ada\tB-PER\nLovelace\tPERSON\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad.conll:2: 'PERSON' is not a tag"):
        read_ner_file(bad)
    lonely = tmp_path / "lonely.conll"
    lonely.write_text("Ada\tB-PER\nLovelace\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"lonely.conll:2: line has one column"):
        read_ner_file(lonely)


def squad_json(path: Path, version: str, qas: list[dict]) -> Path:
    context = "The Eiffel Tower is in Paris. It was finished in 1889."
    path.write_text(json.dumps({"version": version, "data": [{"title": "Tower", "paragraphs": [{"context": context, "qas": qas}]}]}), encoding="utf-8")
    return path


def test_squad_v1_and_v2_unanswerable(tmp_path: Path):
    v1 = squad_json(tmp_path / "v1.json", "1.1", [{"id": "q1", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 23}]}])
    (example,) = read_qa_file(v1)
    assert (example.answers, example.starts, example.title) == (["Paris"], [23], "Tower")
    v2 = squad_json(tmp_path / "v2.json", "v2.0", [
        {"id": "q1", "question": "When?", "answers": [{"text": "1889", "answer_start": 49}], "is_impossible": False},
        {"id": "q2", "question": "Who painted it?", "answers": [], "plausible_answers": [{"text": "It", "answer_start": 30}], "is_impossible": True},
    ])
    answered, unanswerable = read_qa_file(v2)
    assert answered.answers == ["1889"] and unanswerable.answers == []


def test_qa_span_not_in_context_is_one_line(tmp_path: Path):
    path = squad_json(tmp_path / "bad.json", "1.1", [{"id": "q9", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 3}]}])
    with pytest.raises(CorpusError, match=r"question 'q9': answer 'Paris' is not at answer_start 3.*occurs at 23"):
        read_qa_file(path)


def test_qa_jsonl_answer_shapes(tmp_path: Path):
    path = tmp_path / "qa.jsonl"
    context = "Ada Lovelace wrote the first program."
    lines = [
        {"context": context, "question": "Who?", "answers": {"text": ["Ada Lovelace"], "answer_start": [0]}},
        {"context": context, "question": "What?", "answers": ["the first program"]},
        {"context": context, "question": "Who? (text only)", "answer": "Ada"},
    ]
    path.write_text("\ufeff" + "\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    examples = read_qa_file(path)
    assert [e.starts for e in examples] == [[0], [19], [0]]
    lines.append({"context": context, "question": "Where?", "answers": ["London"]})
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"qa.jsonl:4: answer 'London' is not in its context"):
        read_qa_file(path)


def test_label_detection_and_classes():
    assert detect_label_column(["review", "Sentiment"], None, "review", "f.csv") == "Sentiment"
    with pytest.raises(CorpusError, match="no label column"):
        detect_label_column(["text", "stars2"], None, "text", "f.csv")
    assert label_names(["10", "2", "2", "1"], "f.csv", "label") == ["1", "2", "10"]  # ints in numeric order
    with pytest.raises(CorpusError, match="only one class"):
        label_names(["pos", "pos"], "f.csv", "label")


def test_real_wnut17_with_bom(shared_data: Path):
    dev, test = shared_data / "wnut17" / "dev.conll", shared_data / "wnut17" / "test.conll"
    if not dev.is_file():
        pytest.skip("wnut17/dev.conll is absent")
    sentences = read_ner_file(dev)
    assert len(sentences) == 1009  # 1,008 blank lines, and a last sentence closed by a lone BOM line
    assert not any("\ufeff" in t for s in sentences for t in s.tokens)
    types = {t[2:] for s in sentences for t in s.tags if t != "O"}
    assert types == {"corporation", "creative-work", "group", "location", "person", "product"}
    assert len(read_ner_file(test)) == 1287


def test_real_xquad(shared_data: Path):
    path = shared_data / "xquad_en" / "xquad.en.json"
    if not path.is_file():
        pytest.skip("xquad_en is absent")
    examples = read_qa_file(path)
    assert len(examples) == 1190
    assert len({e.title for e in examples}) == 48
