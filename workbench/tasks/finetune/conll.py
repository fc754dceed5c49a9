"""NER input: CoNLL files (token ... tag columns) and JSON Lines ``{tokens, tags}``.

Hand-written because ``datasets`` has no CoNLL builder for local files. Handles the traps
of real files: a byte-order mark (also stray ones mid-file, as in WNUT-17), CRLF line
endings, ``-DOCSTART-`` lines and the 4-column CoNLL-2003 layout (token POS chunk tag).
Tags in IOB1, IOB2, BIOES or BILOU are normalised to IOB2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench.corpora import validate
from workbench.errors import CorpusError

TAG_PATTERN = re.compile(r"^(O|[BIESLU]-\S+)$")


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    lines: list[int] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise CorpusError("file not found", where=str(path), fix="check the path")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(f"not UTF-8 (byte {exc.start})", where=f"{path}:{line}", fix="save the file as UTF-8") from None
    return text.replace("\ufeff", "").splitlines()


def read_conll(path: Path) -> list[Sentence]:
    """Sentences of a CoNLL file: the first column is the token, the last the tag."""
    sentences: list[Sentence] = []
    current = Sentence([], [], [])
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if current.tokens:
                sentences.append(current)
            current = Sentence([], [], [])
            continue
        if len(parts) < 2:
            raise CorpusError(
                f"line has one column ({parts[0]!r}); expected a token and a tag",
                where=f"{path}:{number}",
                fix="write 'token<TAB>tag' per line, blank lines between sentences",
            )
        tag = parts[-1]
        if not TAG_PATTERN.match(tag):
            raise CorpusError(
                f"{tag!r} is not a tag (O, B-TYPE, I-TYPE, E-TYPE or S-TYPE)",
                where=f"{path}:{number}",
                fix="put the NER tag in the last column",
            )
        current.tokens.append(parts[0])
        current.tags.append(tag)
        current.lines.append(number)
    if current.tokens:
        sentences.append(current)
    return sentences


def read_jsonl(path: Path) -> list[Sentence]:
    """``{"tokens": [...], "tags": [...]}`` per line (``ner_tags`` also accepted, as strings)."""
    sentences = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = validate.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON ({exc.msg})", where=f"{path}:{number}", fix="write one JSON object per line") from None
        except RecursionError:
            raise CorpusError("JSON nested too deeply", where=f"{path}:{number}", fix="write one flat JSON object per line") from None
        except validate.JsonValueError as exc:
            raise CorpusError(f"{validate.place(line, exc.offset, number)}: {exc.problem}", where=str(path), fix=exc.fix) from None
        tokens = record.get("tokens") if isinstance(record, dict) else None
        tags = (record.get("tags") or record.get("ner_tags")) if isinstance(record, dict) else None
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise CorpusError(
                "expected an object with equally long 'tokens' and 'tags' lists",
                where=f"{path}:{number}",
                fix='write {"tokens": [...], "tags": [...]} per line',
            )
        for tag in tags:
            if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
                raise CorpusError(f"{tag!r} is not a tag string", where=f"{path}:{number}", fix="use tags like O, B-PER, I-PER")
        if tokens:
            sentences.append(Sentence([str(t) for t in tokens], list(tags), [number] * len(tokens)))
    return sentences


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1/BIOES/BILOU -> IOB2: every entity starts with B-, continues with I-."""
    out = []
    prev = "O"
    for tag in tags:
        if tag == "O":
            out.append(tag)
            prev = tag
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix in ("S", "U"):
            prefix = "B"
        elif prefix in ("E", "L"):
            prefix = "I"
        if prefix == "I" and (prev == "O" or prev[2:] != kind):
            prefix = "B"  # IOB1: an entity may start with I-
        new = f"{prefix}-{kind}"
        out.append(new)
        prev = new
    return out


def read_ner_file(path: str | Path) -> list[Sentence]:
    path = Path(path)
    sentences = read_jsonl(path) if path.suffix.lower() in (".jsonl", ".json") else read_conll(path)
    if not sentences:
        raise CorpusError("file has no sentences", where=str(path), fix="write 'token<TAB>tag' lines")
    return [Sentence(s.tokens, to_iob2(s.tags), s.lines) for s in sentences]


def ner_files(corpus: str) -> tuple[Path, Path | None]:
    """A file, or a folder with train* and dev*/valid*/test* files (dev preferred)."""
    path = Path(corpus).expanduser()
    if path.exists():
        validate.check_file_kind(path)  # a FIFO or a device: refused before anything opens it
    if path.is_file():
        return path, None
    if not path.is_dir():
        raise CorpusError("NER file or folder not found", where=corpus, fix="pass a .conll/.txt or .jsonl file")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".conll", ".txt", ".tsv", ".iob", ".bio", ".jsonl"))
    train = [p for p in files if p.stem.lower().startswith("train")]
    held = [p for stem in ("dev", "valid", "val", "test") for p in files if p.stem.lower().startswith(stem)]
    if not train:
        raise CorpusError("folder has no train* file", where=str(path), fix="name the training file train.conll")
    return train[0], (held[0] if held else None)
