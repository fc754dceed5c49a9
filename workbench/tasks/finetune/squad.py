"""QA input: SQuAD v1.1/v2.0 JSON, and JSON Lines with context, question and answers.

Every answer span is checked against its context, so a wrong ``answer_start`` is one
line naming the question, not a silently mislabelled example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def read_squad_json(path: Path) -> list[QAExample]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"not UTF-8 (byte {exc.start})", where=str(path), fix="save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"invalid JSON ({exc.msg})", where=f"{path}:{exc.lineno}", fix="check the JSON syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CorpusError("not SQuAD JSON (no top-level 'data' list)", where=str(path), fix="use SQuAD v1.1/v2.0 JSON or JSONL")
    examples = []
    for article in data["data"]:
        title = str(article.get("title", ""))
        for paragraph in article.get("paragraphs", []):
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                example = QAExample(
                    id=str(qa.get("id", len(examples))), context=context, question=qa["question"],
                    answers=[a["text"] for a in answers], starts=[int(a["answer_start"]) for a in answers], title=title,
                )
                examples.append(_checked(example, str(path)))
    return examples


def _answers_of(record: dict[str, Any], context: str, where: str) -> tuple[list[str], list[int]]:
    """HF's ``{"text": [...], "answer_start": [...]}``, a list of dicts or strings, or one string."""
    answers = record.get("answers", record.get("answer", []))
    if isinstance(answers, dict):
        texts = list(answers.get("text", []))
        starts = list(answers.get("answer_start", [])) or [None] * len(texts)
    elif isinstance(answers, str):
        texts, starts = [answers], [None]
    elif isinstance(answers, list):
        texts = [a["text"] if isinstance(a, dict) else a for a in answers]
        starts = [a.get("answer_start") if isinstance(a, dict) else None for a in answers]
    else:
        raise CorpusError("'answers' must be a list, a dict or a string", where=where, fix='write "answers": {"text": [...], "answer_start": [...]}')
    resolved = []
    for text, start in zip(texts, starts):
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
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON ({exc.msg})", where=where, fix="write one JSON object per line") from None
        if not isinstance(record, dict) or not isinstance(record.get("context"), str) or not isinstance(record.get("question"), str):
            raise CorpusError("expected an object with 'context' and 'question' strings", where=where, fix='write {"context": ..., "question": ..., "answers": ...}')
        texts, starts = _answers_of(record, record["context"], where)
        example = QAExample(id=str(record.get("id", number)), context=record["context"], question=record["question"],
                            answers=texts, starts=starts, title=str(record.get("title", "")))
        examples.append(_checked(example, where))
    return examples


def read_qa_file(path: str | Path) -> list[QAExample]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusError("QA file not found", where=str(path), fix="pass a SQuAD .json or a .jsonl file")
    examples = read_qa_jsonl(path) if path.suffix.lower() == ".jsonl" else read_squad_json(path)
    if not examples:
        raise CorpusError("file has no questions", where=str(path), fix="add questions")
    return examples
