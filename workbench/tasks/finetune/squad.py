"""QA input: SQuAD v1.1/v2.0 JSON, and JSON Lines with context, question and answers.

Every answer span is checked against its context, so a wrong ``answer_start`` is one
line naming the question, not a silently mislabelled example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.corpora import validate
from workbench.errors import CorpusError


@dataclass
class QAExample:
    id: str
    context: str
    question: str
    answers: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    title: str = ""

    @property
    def group(self) -> str:
        """What a held-out split keeps together: the article, else the paragraph."""
        return self.title or self.context


def _checked(example: QAExample, where: str) -> QAExample:
    for text, start in zip(example.answers, example.starts):
        if example.context[start : start + len(text)] != text:
            found = example.context.find(text)
            detail = f"; the text occurs at {found}" if found >= 0 else "; the text is not in the context at all"
            raise CorpusError(
                f"question {example.id!r}: answer {text[:40]!r} is not at answer_start {start} of its context{detail}",
                where=where,
                fix="correct answer_start (a character offset into the context) or the answer text",
            )
    return example


def _shape_error(problem: str, where: str) -> CorpusError:
    return CorpusError(problem, where=where, fix="follow the SQuAD layout: data[].paragraphs[].{context, qas[].{id, question, answers[].{text, answer_start}}}")


def _answer_list(qa: dict, label: str, where: str) -> tuple[list[str], list[int]]:
    answers = [] if qa.get("is_impossible") is True else qa.get("answers", [])
    if not isinstance(answers, list):
        raise _shape_error(f"{label}: 'answers' is not a list", where)
    texts, starts = [], []
    for answer in answers:
        text = answer.get("text") if isinstance(answer, dict) else None
        start = answer.get("answer_start") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
            raise _shape_error(f"{label}: each answer needs a 'text' string and an integer 'answer_start'", where)
        texts.append(text)
        starts.append(start)
    return texts, starts


def read_squad_json(path: Path) -> list[QAExample]:
    """SQuAD v1.1/v2.0; every level's shape is checked so a malformed file is one line."""
    text = ""
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = validate.loads(text)
    except validate.JsonValueError as exc:
        raise CorpusError(f"{validate.place(text, exc.offset)}: {exc.problem}", where=str(path), fix=exc.fix) from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"not UTF-8 (byte {exc.start})", where=str(path), fix="save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"invalid JSON ({exc.msg})", where=f"{path}:{exc.lineno}", fix="check the JSON syntax") from None
    except RecursionError:
        raise CorpusError("not SQuAD JSON (nested too deeply)", where=str(path), fix="use SQuAD v1.1/v2.0 JSON or JSONL") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CorpusError("not SQuAD JSON (no top-level 'data' list)", where=str(path), fix="use SQuAD v1.1/v2.0 JSON or JSONL")
    where = str(path)
    examples = []
    for a, article in enumerate(data["data"], start=1):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _shape_error(f"article {a} has no 'paragraphs' list (not SQuAD)", where)
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(paragraphs, start=1):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            qas = paragraph.get("qas", []) if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not isinstance(qas, list):
                raise _shape_error(f"article {a}, paragraph {p} needs a 'context' string and a 'qas' list (not SQuAD)", where)
            for q, qa in enumerate(qas, start=1):
                label = f"article {a}, paragraph {p}, question {q}"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or not qa["question"].strip():
                    raise _shape_error(f"{label} has no 'question' text", where)
                texts, starts = _answer_list(qa, label, where)
                example = QAExample(id=str(qa.get("id", len(examples))), context=context, question=qa["question"],
                                    answers=texts, starts=starts, title=title)
                examples.append(_checked(example, where))
    return examples


def _answers_of(record: dict[str, Any], context: str, where: str) -> tuple[list[str], list[int]]:
    """HF's ``{"text": [...], "answer_start": [...]}``, a list of dicts or strings, or one string."""
    answers = record.get("answers", record.get("answer", []))
    if isinstance(answers, dict):
        texts, starts = answers.get("text", []), answers.get("answer_start", [])
        if not isinstance(texts, list) or not isinstance(starts, list) or (starts and len(starts) != len(texts)):
            raise CorpusError("'answers' needs equally long 'text' and 'answer_start' lists", where=where,
                              fix='write "answers": {"text": [...], "answer_start": [...]}')
        starts = starts or [None] * len(texts)
    elif isinstance(answers, str):
        texts, starts = [answers], [None]
    elif isinstance(answers, list):
        texts = [a.get("text") if isinstance(a, dict) else a for a in answers]
        starts = [a.get("answer_start") if isinstance(a, dict) else None for a in answers]
    else:
        raise CorpusError("'answers' must be a list, a dict or a string", where=where, fix='write "answers": {"text": [...], "answer_start": [...]}')
    resolved = []
    for text, start in zip(texts, starts):
        if not isinstance(text, str) or not (start is None or (isinstance(start, int) and not isinstance(start, bool))):
            raise CorpusError("each answer needs a text string and an integer answer_start", where=where,
                              fix='write "answers": {"text": [...], "answer_start": [...]}')
        if start is None:
            start = context.find(str(text))
            if start < 0:
                raise CorpusError(f"answer {str(text)[:40]!r} is not in its context", where=where, fix="quote the answer exactly as it appears in the context")
        resolved.append(int(start))
    return [str(t) for t in texts], resolved


def read_qa_jsonl(path: Path) -> list[QAExample]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = validate.loads(line)
        except validate.JsonValueError as exc:
            raise CorpusError(f"{validate.place(line, exc.offset, number)}: {exc.problem}", where=str(path), fix=exc.fix) from None
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON ({exc.msg})", where=where, fix="write one JSON object per line") from None
        except RecursionError:
            raise CorpusError("JSON nested too deeply", where=where, fix="write one flat JSON object per line") from None
        if not isinstance(record, dict) or not isinstance(record.get("context"), str) or not isinstance(record.get("question"), str):
            raise CorpusError("expected an object with 'context' and 'question' strings", where=where, fix='write {"context": ..., "question": ..., "answers": ...}')
        texts, starts = _answers_of(record, record["context"], where)
        example = QAExample(id=str(record.get("id", number)), context=record["context"], question=record["question"],
                            answers=texts, starts=starts, title=str(record.get("title", "")))
        examples.append(_checked(example, where))
    return examples


def read_qa_file(path: str | Path) -> list[QAExample]:
    path = Path(path).expanduser()
    if path.exists():
        validate.check_file_kind(path)  # a FIFO or a device: refused before anything opens it
    if not path.is_file():
        raise CorpusError("QA file not found", where=str(path), fix="pass a SQuAD .json or a .jsonl file")
    examples = read_qa_jsonl(path) if path.suffix.lower() == ".jsonl" else read_squad_json(path)
    if not examples:
        raise CorpusError("file has no questions", where=str(path), fix="add questions")
    return examples
