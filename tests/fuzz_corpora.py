"""Generated hostile corpus files and a harness that runs every loader over them.

``generate(folder, seed)`` writes 1,000+ small files (random bytes, empty, whitespace,
Latin-1, UTF-16, BOMs, NUL bytes, a 10 MB single line, malformed JSON/JSONL/CSV/Parquet,
ragged rows, wrong and mixed column types, huge label sets, bad NER tags, QA spans out of
range) plus valid controls, each tagged with the loader that reads it and the outcome it
must have. ``fuzz(cases)`` runs them with a per-file timeout and sorts every result into
accepted, rejected (a one-line ``WorkbenchError``), tracebacks, hangs, bad messages and
wrong outcomes. Used by ``tests/test_faults_corpora.py`` and ``benchmarks/faults.py``.
"""

from __future__ import annotations

import codecs
import json
import random
import re
import signal
import string
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

OK, ERROR, EITHER = "ok", "error", "either"


@dataclass
class Case:
    path: Path
    loader: str  # corpus | ner | qa | labelled
    expect: str  # ok | error | either
    what: str


@dataclass
class FuzzReport:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)
    wrong_outcomes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    by_loader: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.tracebacks or self.hangs or self.bad_messages or self.wrong_outcomes)


# ---------------------------------------------------------------------------- generation
WORDS = "the cat sat on a mat and then walked to the old red barn near river".split()
TEXT_SUFFIXES = (".txt", ".md")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
ALL_SUFFIXES = TEXT_SUFFIXES + TABLE_SUFFIXES


def _sentence(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, n)))


def _unicode_text(rng: random.Random) -> str:
    pool = "aé漢字😀 \u00a0\u200b\u2028ßΩж" + string.ascii_letters
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))


class _Writer:
    def __init__(self, folder: Path):
        self.folder, self.cases, self.count = folder, [], 0

    def add(self, suffix: str, data: bytes | str, loader: str, expect: str, what: str, stem: str = "") -> Path:
        self.count += 1
        name = f"{self.count:05d}-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}{stem}{suffix}"
        path = self.folder / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        self.cases.append(Case(path, loader, expect, what))
        return path


def _parquet(table: dict[str, list]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(table), sink)
    return sink.getvalue()


def _csv_rows(rows: list[list[Any]], delimiter: str = ",") -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _corpus_cases(w: _Writer, rng: random.Random, big_line: bool) -> None:
    for _ in range(180):  # random bytes, any suffix
        size = rng.choice([1, 2, 7, 64, 513, 4096])
        w.add(rng.choice(ALL_SUFFIXES), bytes(rng.getrandbits(8) for _ in range(size)), "corpus", EITHER, "random bytes")
    for suffix in ALL_SUFFIXES:
        w.add(suffix, b"", "corpus", ERROR, "empty")
        for blank in (" ", "\n\n\n", "\t \r\n \n", "\u00a0\n\u3000", "\r\r\r"):
            w.add(suffix, blank, "corpus", ERROR, "whitespace only")
    for _ in range(30):  # valid controls
        docs = ["\n".join(_sentence(rng) for _ in range(3)) for _ in range(rng.randint(2, 6))]
        w.add(rng.choice(TEXT_SUFFIXES), "\n\n".join(docs), "corpus", OK, "valid text")
        rows = [["text", "label"]] + [[_sentence(rng), rng.choice(["pos", "neg"])] for _ in range(rng.randint(2, 8))]
        w.add(".csv", _csv_rows(rows), "corpus", OK, "valid csv")
        w.add(".tsv", _csv_rows(rows, "\t"), "corpus", OK, "valid tsv")
        records = [{"text": _sentence(rng), "n": i} for i in range(rng.randint(2, 6))]
        w.add(".jsonl", "\n".join(json.dumps(r) for r in records), "corpus", OK, "valid jsonl")
        w.add(".json", json.dumps(records), "corpus", OK, "valid json")
        w.add(".parquet", _parquet({"text": [r["text"] for r in records]}), "corpus", OK, "valid parquet")
    for _ in range(20):  # encodings
        text = "Café déjà vu, naïve façade. " + _sentence(rng) + "\n\nÉté à Noël.\n"
        suffix = rng.choice(ALL_SUFFIXES[:4])
        if suffix in TEXT_SUFFIXES:
            body = text
        elif suffix in (".csv", ".tsv"):
            body = _csv_rows([["text"], [text.replace("\n", " ")]], "," if suffix == ".csv" else "\t")
        else:
            body = json.dumps({"text": text}, ensure_ascii=False)
        w.add(suffix, body.encode("latin-1"), "corpus", ERROR, "latin-1")
        w.add(suffix, codecs.BOM_UTF16_LE + body.encode("utf-16-le"), "corpus", ERROR, "utf-16 le bom")
        w.add(suffix, codecs.BOM_UTF16_BE + body.encode("utf-16-be"), "corpus", ERROR, "utf-16 be bom")
        w.add(suffix, body.encode("utf-16-le"), "corpus", ERROR, "utf-16 no bom")
        w.add(suffix, codecs.BOM_UTF8 + body.encode("utf-8"), "corpus", OK, "utf-8 bom")
        cut = rng.randint(0, len(body))
        w.add(suffix, body[:cut].encode() + b"\x00" + body[cut:].encode(), "corpus", ERROR, "nul byte")
        w.add(suffix, _unicode_text(rng) + "\n" + _sentence(rng), "corpus", EITHER, "odd unicode")
    if big_line:
        w.add(".txt", "word " * (2 << 20), "corpus", OK, "10 MB single line")
        w.add(".jsonl", json.dumps({"text": "word " * (2 << 20)}), "corpus", OK, "10 MB single json line")
    # JSON Lines
    bad_lines = ['{"text": "a"', '{"text": "a",}', "[1, 2]", "42", '"just a string"', "null", "{text: 'a'}",
                 '{"text": "a"} {"text": "b"}', "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, "\x1b[31m"]
    for _ in range(60):
        good = [json.dumps({"text": _sentence(rng)}) for _ in range(rng.randint(0, 4))]
        good.insert(rng.randint(0, len(good)), rng.choice(bad_lines))
        w.add(".jsonl", "\n".join(good), "corpus", ERROR, "malformed jsonl")
    kinds = [1, 2.5, True, None, [1], {"a": 1}, "text"]
    for _ in range(60):
        first, second = rng.sample(kinds, 2)
        rows = [{"text": _sentence(rng)} for _ in range(3)] + [{"text": first}, {"text": second}]
        expect = OK if all(isinstance(v, str) or v is None for v in (first, second)) else ERROR
        w.add(".jsonl", "\n".join(json.dumps(r) for r in rows), "corpus", expect, "mixed text types jsonl")
        w.add(".json", json.dumps(rows), "corpus", expect, "mixed text types json")
    for _ in range(15):
        w.add(".jsonl", "\n".join(json.dumps({"text": i}) for i in range(4)), "corpus", ERROR, "numeric text column jsonl")
        w.add(".jsonl", "\n".join(json.dumps({"body_len": i, "score": i * 0.5}) for i in range(4)), "corpus", ERROR, "no text column jsonl")
        w.add(".jsonl", "\n".join(json.dumps({"text": None}) for _ in range(3)), "corpus", ERROR, "null text column jsonl")
        w.add(".jsonl", '{"text": "a"}\n{"other": "b"}\n{"text": 3}', "corpus", ERROR, "mixed keys and types jsonl")
    # JSON
    for doc in ["{", "[]", "{}", "42", '"s"', "[1, 2, 3]", '[{"text": "a"}, 5]', '{"a": [{"text": "x"}], "b": [{"text": "y"}]}',
                "[" * 5000 + "]" * 5000, '{"data": {"rows": [{"text": "a"}]}}', '[{"text": "a"}] trailing', "null"]:
        for _ in range(4):
            w.add(".json", doc, "corpus", ERROR, "malformed json")
    # CSV / TSV
    for _ in range(20):
        for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
            header = ["text", "label"]
            body = [[_sentence(rng), "x"] for _ in range(4)]
            ragged = [r[:] for r in body]
            ragged[rng.randrange(len(ragged))].append("extra")
            w.add(suffix, _csv_rows([header] + ragged, delimiter), "corpus", ERROR, "ragged row")
            short = [r[:] for r in body]
            short[rng.randrange(len(short))] = short[0][:1]
            w.add(suffix, _csv_rows([header] + short, delimiter), "corpus", ERROR, "short row")
            w.add(suffix, f'text{delimiter}label\n"unclosed quote{delimiter}x\nmore{delimiter}y\n', "corpus", ERROR, "unclosed quote")
            w.add(suffix, _csv_rows([["", ""]] + body, delimiter), "corpus", ERROR, "empty header")
            w.add(suffix, _csv_rows([["text", "text"]] + body, delimiter), "corpus", ERROR, "duplicate header")
            w.add(suffix, _csv_rows([header], delimiter), "corpus", ERROR, "header only")
            w.add(suffix, _csv_rows([header] + [[str(i), "x"] for i in range(4)], delimiter), "corpus", ERROR, "numeric text column csv")
            w.add(suffix, _csv_rows([["id", "score"]] + [[str(i), str(i / 2)] for i in range(4)], delimiter), "corpus", ERROR, "no text column csv")
            w.add(suffix, _csv_rows([["title", "summary"]] + [[_sentence(rng), _sentence(rng)] for _ in range(3)], delimiter), "corpus", ERROR, "two text columns no text")
            mixed = [header] + [[_sentence(rng), "x"] for _ in range(3)] + [["12", "3"], ["4.5", "y"]]
            w.add(suffix, _csv_rows(mixed, delimiter), "corpus", OK, "mixed looking text column")
            w.add(suffix, _csv_rows([header] + body, delimiter).replace("\n", "\r\n"), "corpus", OK, "crlf csv")
            w.add(suffix, _csv_rows([header] + body, delimiter).replace("\n", "\r"), "corpus", EITHER, "cr only csv")
            w.add(suffix, _csv_rows([header, ["line one\nline two", "x"], ["b", "y"]], delimiter), "corpus", OK, "embedded newline")
            w.add(suffix, _csv_rows([header, ["", "x"], ["  ", "y"]], delimiter), "corpus", ERROR, "blank text values")
    # Parquet
    import pyarrow as pa

    for _ in range(8):
        w.add(".parquet", _parquet({"text": [1, 2, 3]}), "corpus", ERROR, "numeric text parquet")
        w.add(".parquet", _parquet({"a": [1.0, 2.0]}), "corpus", ERROR, "no text column parquet")
        w.add(".parquet", _parquet({"text": pa.array([], pa.string())}), "corpus", ERROR, "empty parquet")
        w.add(".parquet", _parquet({"text": [None, None]}), "corpus", ERROR, "null text parquet")
        w.add(".parquet", _parquet({"text": [{"a": "x"}, {"a": "y"}]}), "corpus", ERROR, "struct text parquet")
        good = _parquet({"text": [_sentence(rng) for _ in range(5)]})
        w.add(".parquet", good[: rng.randint(1, len(good) - 1)], "corpus", ERROR, "truncated parquet")


def _ner_cases(w: _Writer, rng: random.Random) -> None:
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(25):
        lines = []
        for _ in range(3):
            lines += [f"{rng.choice(WORDS)}\t{rng.choice(tags)}" for _ in range(4)] + [""]
        w.add(".conll", "\n".join(lines), "ner", OK, "valid conll")
        bad = lines[:]
        bad[rng.randrange(len(bad) - 1) or 0] = f"word\t{rng.choice(['X-FOO', 'B-', 'PER', 'b-per', 'B_PER', '0'])}"
        w.add(".conll", "\n".join(bad), "ner", ERROR, "unknown ner tag")
        w.add(".conll", "\n".join(lines[:2] + ["lonelytoken"] + lines[2:]), "ner", ERROR, "one column conll")
        w.add(".conll", bytes(rng.getrandbits(8) for _ in range(300)), "ner", EITHER, "random bytes conll")
        w.add(".conll", "", "ner", ERROR, "empty conll")
        w.add(".conll", "\n \n\t\n", "ner", ERROR, "whitespace conll")
        w.add(".conll", "Zoë\tB-PER\n".encode("latin-1"), "ner", ERROR, "latin-1 conll")
        many = "\n".join(f"w{i}\tB-T{i}" for i in range(3000))
        w.add(".conll", many, "ner", EITHER, "huge tag set conll")
        w.add(".jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}), "ner", ERROR, "length mismatch ner jsonl")
        w.add(".jsonl", json.dumps({"tokens": ["a"], "tags": [3]}), "ner", ERROR, "numeric tag ner jsonl")
        w.add(".jsonl", json.dumps({"tokens": "a b", "tags": "O O"}), "ner", ERROR, "string tokens ner jsonl")
        w.add(".jsonl", "[1,2]\n", "ner", ERROR, "array line ner jsonl")
        w.add(".jsonl", "[" * 5000 + "]" * 5000, "ner", ERROR, "deep json ner jsonl")
        w.add(".jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["B-PER", "I-PER"]}), "ner", OK, "valid ner jsonl")


def _qa_cases(w: _Writer, rng: random.Random) -> None:
    def squad(context: str, answers: list, question: Any = "Where?") -> str:
        return json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
            {"id": "q1", "question": question, "answers": answers}]}]}]})

    for _ in range(20):
        context = _sentence(rng, 12) + " the barn"
        start = context.index("the barn")
        w.add(".json", squad(context, [{"text": "the barn", "answer_start": start}]), "qa", OK, "valid squad")
        for bad_start in (len(context) + 5, -3, start + 1, 10**12):
            w.add(".json", squad(context, [{"text": "the barn", "answer_start": bad_start}]), "qa", ERROR, "span out of range squad")
        w.add(".json", squad(context, [{"text": "the barn", "answer_start": "abc"}]), "qa", ERROR, "string start squad")
        w.add(".json", squad(context, [{"text": "the barn"}]), "qa", ERROR, "missing start squad")
        w.add(".json", squad(context, [{"text": 5, "answer_start": 0}]), "qa", ERROR, "numeric answer squad")
        w.add(".json", squad(context, [{"text": "the barn", "answer_start": start}], question=None), "qa", ERROR, "null question squad")
        w.add(".json", json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "qa", ERROR, "missing context squad")
        w.add(".json", json.dumps({"data": [1, 2]}), "qa", ERROR, "non-object articles squad")
        w.add(".json", json.dumps({"data": [{"paragraphs": "x"}]}), "qa", ERROR, "string paragraphs squad")
        w.add(".json", json.dumps({"data": []}), "qa", ERROR, "no questions squad")
        w.add(".json", "[" * 5000 + "]" * 5000, "qa", ERROR, "deep json squad")
        w.add(".json", bytes(rng.getrandbits(8) for _ in range(200)), "qa", ERROR, "random bytes squad")
        record = {"context": context, "question": "Where?", "answers": {"text": ["the barn"], "answer_start": [start]}}
        w.add(".jsonl", json.dumps(record), "qa", OK, "valid qa jsonl")
        for answers in ({"text": ["the barn"], "answer_start": [len(context) + 9]}, {"text": ["zebra"]}, 42,
                        {"text": ["the barn"], "answer_start": ["x"]}, [{"answer_start": 0}]):
            w.add(".jsonl", json.dumps(dict(record, answers=answers)), "qa", ERROR, "bad answers qa jsonl")
        w.add(".jsonl", json.dumps({"context": 5, "question": "q"}), "qa", ERROR, "numeric context qa jsonl")


def _labelled_cases(w: _Writer, rng: random.Random) -> None:
    for _ in range(15):
        rows = [["text", "label"]] + [[_sentence(rng), rng.choice(["pos", "neg"])] for _ in range(12)]
        w.add(".csv", _csv_rows(rows), "labelled", OK, "valid labelled csv")
        huge = [["text", "label"]] + [[_sentence(rng), f"class{i}"] for i in range(2000)]
        w.add(".csv", _csv_rows(huge), "labelled", EITHER, "huge label set csv")
        one = [["text", "label"]] + [[_sentence(rng), "pos"] for _ in range(6)]
        w.add(".csv", _csv_rows(one), "labelled", ERROR, "single class csv")
        empty = [r[:] for r in rows]
        empty[3][1] = ""
        w.add(".csv", _csv_rows(empty), "labelled", ERROR, "empty label csv")
        w.add(".csv", _csv_rows([["text", "stars"]] + [[_sentence(rng), "1"] for _ in range(4)]), "labelled", ERROR, "no label column csv")
        mixed = [{"text": _sentence(rng), "label": v} for v in ("pos", 1, "neg", 2.5, None)]
        w.add(".jsonl", "\n".join(json.dumps(r) for r in mixed), "labelled", ERROR, "mixed label types jsonl")


def generate(folder: Path, seed: int = 0, big_line: bool = True) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    writer = _Writer(folder)
    _corpus_cases(writer, rng, big_line)
    _ner_cases(writer, rng)
    _qa_cases(writer, rng)
    _labelled_cases(writer, rng)
    return writer.cases


# ---------------------------------------------------------------------------- running
class _Timeout(BaseException):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def loaders() -> dict[str, Callable[[Path], Any]]:
    """Loader name -> function; the fine-tuning ones only where their modules exist."""
    from workbench.corpora import load_corpus

    found: dict[str, Callable[[Path], Any]] = {"corpus": lambda p: load_corpus(str(p))}
    try:
        from workbench.tasks.finetune.conll import read_ner_file
        from workbench.tasks.finetune.sentiment import SentimentTask
        from workbench.tasks.finetune.squad import read_qa_file
    except ImportError:
        return found

    def labelled(path: Path) -> Any:
        corpus = load_corpus(str(path))
        SentimentTask().check_data(corpus, SimpleNamespace(data=SimpleNamespace(label_column=None)))  # what it reads of a resolved spec
        return corpus

    found.update(ner=read_ner_file, qa=read_qa_file, labelled=labelled)
    return found


LOCATION = re.compile(r"(line \d+|byte \d+|row \d+|column|:\d+\b|question |answer|record)", re.I)
WHOLE_FILE = re.compile(r"(empty|no text|no records|no data rows|not found|no sentences|no questions|whitespace|"
                        r"no .*column|several text columns|only one class|expected a list|not SQuAD|unsupported|"
                        r"holds|UTF-16|could not parse|not a readable|has no|rows have an empty|empty|unknown (label|tag) '[^']*', not in)", re.I)


def _check_message(message: str, case: Case) -> str | None:
    if "\n" in message:
        return "message is not one line"
    if case.path.name not in message:
        return "message does not name the file"
    if not (LOCATION.search(message) or WHOLE_FILE.search(message)):
        return "message gives neither a location nor a whole-file reason"
    return None


def fuzz(cases: list[Case], timeout_s: float = 10.0, only: str | None = None) -> FuzzReport:
    from workbench.errors import WorkbenchError

    table = loaders()
    report = FuzzReport()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    started = time.perf_counter()
    try:
        for case in cases:
            if case.loader not in table or (only and case.loader != only):
                continue
            report.files += 1
            report.by_loader[case.loader] = report.by_loader.get(case.loader, 0) + 1
            label = f"{case.loader} {case.path.name} ({case.what})"
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                table[case.loader](case.path)
            except _Timeout:
                report.hangs.append(label)
                continue
            except WorkbenchError as exc:
                signal.setitimer(signal.ITIMER_REAL, 0)
                report.rejected += 1
                problem = _check_message(str(exc), case)
                if problem:
                    report.bad_messages.append(f"{label}: {problem}: {exc}")
                if case.expect == OK:
                    report.wrong_outcomes.append(f"{label}: rejected a valid file: {exc}")
                continue
            except BaseException as exc:  # noqa: BLE001 - the point is to catch everything
                signal.setitimer(signal.ITIMER_REAL, 0)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                last = traceback.extract_tb(exc.__traceback__)[-1]
                report.tracebacks.append(f"{label}: {type(exc).__name__}: {str(exc)[:160]} at {Path(last.filename).name}:{last.lineno}")
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            report.accepted += 1
            if case.expect == ERROR:
                report.wrong_outcomes.append(f"{label}: accepted a file that must be rejected")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    report.seconds = time.perf_counter() - started
    return report
