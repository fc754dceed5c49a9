"""Check user files before ``datasets`` parses them, so every rejection names the file,
the line or byte offset, and the fix (the library's own errors name neither)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from workbench.errors import CorpusError

_CHUNK = 1 << 20
MAX_FIELD_CHARS = 64 << 20


def _line_of(raw_prefix: bytes) -> int:
    return raw_prefix.count(b"\n") + 1


def check_utf8(path: Path) -> bool:
    """Raise if ``path`` is not UTF-8 text; return True when it starts with a BOM.

    Decodes incrementally, so a 10 MB single line or a large file costs one pass and no
    more memory than a chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    has_bom = False
    line = 1
    with path.open("rb") as handle:
        first = True
        while True:
            chunk = handle.read(_CHUNK)
            if first:
                if chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise CorpusError(
                        "file is UTF-16 encoded (byte-order mark at byte 0)",
                        where=str(path),
                        fix=f"convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
                    )
                has_bom = chunk.startswith(codecs.BOM_UTF8)
                first = False
            if b"\x00" in chunk:
                nul = chunk.index(b"\x00")
                raise CorpusError(
                    f"NUL byte at byte {offset + nul} (line {line + _line_of(chunk[:nul]) - 1}): this is binary data, not text",
                    where=str(path),
                    fix="pass a text file (UTF-8), or remove the NUL bytes",
                )
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                raise CorpusError(
                    f"not valid UTF-8 at byte {at} (line {line + _line_of(chunk[: exc.start]) - 1})",
                    where=str(path),
                    fix=f"convert it to UTF-8, e.g. iconv -f LATIN1 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
                ) from None
            if not chunk:
                return has_bom
            line += chunk.count(b"\n")
            offset += len(chunk)


def read_text(path: Path) -> str:
    """Return the file's text after ``check_utf8``; the BOM is dropped."""
    check_utf8(path)
    return path.read_text(encoding="utf-8-sig")


def check_delimited(path: Path, delimiter: str) -> list[str]:
    """Check a CSV/TSV file row by row; return its header.

    Ragged rows, an empty header and duplicate column names are errors with a line number.
    """
    text = read_text(path)
    if not text.strip():
        raise CorpusError("file is empty", where=str(path), fix="add a header row and data rows")
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        if not any(h.strip() for h in header):
            raise CorpusError("line 1: the header row is empty", where=str(path), fix="add column names on line 1")
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise CorpusError(f"line 1: duplicate column {dupes[0]!r}", where=str(path), fix="give every column a unique name")
        rows = 0
        for row in reader:
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                raise CorpusError(
                    f"line {reader.line_num}: {len(row)} fields, but the header has {len(header)}",
                    where=str(path),
                    fix="quote fields that contain the delimiter, or fix the row",
                )
    except csv.Error as exc:
        raise CorpusError(f"line {reader.line_num}: {exc}", where=str(path), fix="fix the quoting on that line") from None
    if rows == 0:
        raise CorpusError("no data rows after the header", where=str(path), fix="add data rows")
    return header


def json_kind(value: object) -> str | None:
    """The JSON type of a value as users name it; ``None`` for null (a missing value)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class FieldTypes:
    """Remember each field's JSON type and where it was first seen; a field that changes
    type is an error naming both places (pyarrow would fail without a line, or coerce)."""

    def __init__(self, path: Path, unit: str):
        self.path, self.unit = path, unit
        self.first: dict[str, tuple[str, int]] = {}

    def check(self, record: dict, number: int) -> None:
        for key, value in record.items():
            kind = json_kind(value)
            if kind is None:
                continue
            seen = self.first.setdefault(key, (kind, number))
            if seen[0] != kind:
                raise CorpusError(
                    f"{self.unit} {number}: field {key!r} is {_a(kind)}, but {_a(seen[0])} in {self.unit} {seen[1]}",
                    where=str(self.path),
                    fix="give each field one type in every record (quote numbers meant as text)",
                )


def _parse_json(text: str, path: Path, where: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise CorpusError(f"{where}: JSON nested too deeply", where=str(path), fix="flatten the data: one object per record") from None


def check_jsonl(path: Path) -> None:
    """Every non-blank line must be a JSON object, each field of one type throughout."""
    text = read_text(path)
    seen = 0
    types = FieldTypes(path, "line")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _parse_json(line, path, f"line {number}")
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})",
                where=str(path),
                fix="make every line one JSON object",
            ) from None
        if not isinstance(record, dict):
            raise CorpusError(
                f"line {number}: expected a JSON object, got {type(record).__name__}",
                where=str(path),
                fix='write one object per line, e.g. {"text": "..."}',
            )
        types.check(record, number)
        seen += 1
    if seen == 0:
        raise CorpusError("file has no records", where=str(path), fix="add one JSON object per line")


def load_json_records(path: Path) -> list[dict]:
    """A ``.json`` file: a list of objects, or an object holding one such list."""
    text = read_text(path)
    try:
        data = _parse_json(text, path, "line 1")
    except json.JSONDecodeError as exc:
        if "\n{" in text.strip() or text.lstrip().startswith("{"):
            check_jsonl(path)  # maybe JSON Lines with a .json suffix; raises with a line number
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        raise CorpusError(
            f"line {exc.lineno}: invalid JSON ({exc.msg})", where=str(path), fix="fix the JSON syntax"
        ) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise CorpusError(
            "expected a list of JSON objects", where=str(path), fix='write [{"text": "..."}, ...] or use JSON Lines'
        )
    if not data:
        raise CorpusError("file has no records", where=str(path), fix="add records")
    types = FieldTypes(path, "record")
    for number, record in enumerate(data, start=1):
        types.check(record, number)
    return data


def check_parquet(path: Path) -> None:
    """A readable Parquet file with at least one row (pyarrow reads only the footer)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid, OSError: not Parquet or truncated
        reason = " ".join(str(exc).split())[:200]
        raise CorpusError(f"not a readable Parquet file ({reason})", where=str(path), fix="re-export the file as Parquet, or use CSV/JSON Lines") from None
    if rows == 0:
        raise CorpusError("file has no records (0 rows)", where=str(path), fix="add data rows")
