"""Check user files before ``datasets`` parses them, so every rejection names the file,
the line or byte offset, and the fix (the library's own errors name neither)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable

from workbench.errors import CorpusError

_CHUNK = 1 << 20
MAX_FIELD_CHARS = 64 << 20
MAX_INT_DIGITS = 4300
"""Python's own limit on converting digits to an int (``sys.get_int_max_str_digits``)."""
INT64 = (-(1 << 63), (1 << 63) - 1)
PSEUDO_FILESYSTEMS = ("/proc", "/sys")
"""Kernel file systems whose files report size 0 (or 4096) and are made up as they are read."""


def _line_of(raw_prefix: bytes) -> int:
    return raw_prefix.count(b"\n") + 1


def _special_kind(mode: int) -> str | None:
    """What a non-regular file is, as users name it; None for a regular file or a folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _pseudo_filesystem(device: int) -> str | None:
    for root in PSEUDO_FILESYSTEMS:
        try:
            if os.stat(root).st_dev == device:
                return root
        except OSError:
            continue
    return None


def check_file_kind(path: Path) -> os.stat_result:
    """``os.stat`` a corpus path and refuse anything but a regular file or folder.

    Only ``stat``, never ``open``: opening a FIFO blocks until a writer comes, ``/dev/zero``
    never ends, and ``/proc`` files claim size 0, so each would hang or be called "empty".
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CorpusError("file not found", where=str(path), fix="check the path") from None
    except OSError as exc:
        raise CorpusError(f"cannot read it ({exc.strerror})", where=str(path), fix="check the path and its permissions") from None
    kind = _special_kind(info.st_mode)
    if kind is not None:
        raise CorpusError(
            f"is {kind}, not a regular file (reading it could block or never end)",
            where=str(path),
            fix="write the data to a regular file first and pass that file",
        )
    root = _pseudo_filesystem(info.st_dev)
    if root is not None:
        raise CorpusError(
            f"is on {root}, a kernel pseudo-filesystem, not a regular file (its contents are made up as it is read)",
            where=str(path),
            fix=f"copy it to a regular file first (e.g. cat {path} > corpus.txt) and pass that",
        )
    return info


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


class JsonValueError(Exception):
    """A JSON value that parses but that Python or Arrow cannot hold (a 5000-digit integer,
    ``1e999``, a lone UTF-16 surrogate); ``offset`` is where it starts in the text, if known."""

    def __init__(self, problem: str, fix: str, offset: int | None = None):
        super().__init__(problem)
        self.problem, self.fix, self.offset = problem, fix, offset


_NUMBER_FIX = "quote it (write it as a string), or make it smaller"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _number_hooks(int64: bool) -> tuple[Callable[[str], int], Callable[[str], float], list[str]]:
    """``parse_int``/``parse_float`` for ``json.loads`` that refuse what cannot be held, and
    the list in which they leave the offending literal (to find its line afterwards)."""
    bad: list[str] = []

    def parse_int(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > MAX_INT_DIGITS:
            bad.append(text)
            raise JsonValueError(f"an integer with {digits} digits is too long (at most {MAX_INT_DIGITS})", _NUMBER_FIX)
        value = int(text)
        if int64 and not INT64[0] <= value <= INT64[1]:
            bad.append(text)
            raise JsonValueError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} does not fit in 64 bits", _NUMBER_FIX)
        return value

    def parse_float(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            bad.append(text)
            raise JsonValueError(f"number {text[:24]} is too large for a 64-bit float", _NUMBER_FIX)
        return value

    return parse_int, parse_float, bad


def _number_offset(text: str, literal: str) -> int | None:
    """Where a number literal stands in the JSON text (as a value, not inside a string)."""
    match = re.search(r"(?:(?<=[\[:,])|(?<=\s))" + re.escape(literal) + r"(?=[\s,\]}]|$)", text)
    return match.start() if match else None


def _lone_surrogate_offset(text: str) -> int | None:
    """Where the first ``\uD800``-``\uDFFF`` escape that is not half of a pair starts."""
    pending_high: int | None = None
    for match in _SURROGATE_ESCAPE.finditer(text):
        start = before = match.start()
        while before > 0 and text[before - 1] == "\\":
            before -= 1
        if (start - before) % 2:  # "\\ud800" is a backslash and text, not an escape
            continue
        high = match.group()[3].lower() in "89ab"  # \uD800-\uDBFF lead a pair
        if pending_high is not None:
            if not high and start == pending_high + 6:
                pending_high = None
                continue
            return pending_high
        if not high:
            return start
        pending_high = start
    return pending_high


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def loads(text: str, *, int64: bool = False) -> Any:
    """``json.loads``, but a value that Python or Arrow would fail on later, without a line
    number, raises ``JsonValueError`` with its offset: an integer over 4300 digits (Python's
    limit), one outside 64 bits with ``int64`` (``Dataset.from_list``), a float that
    overflows to infinity, a lone surrogate (not valid Unicode, so not writable as Arrow
    text). Syntax errors stay ``json.JSONDecodeError``; deep nesting stays ``RecursionError``.
    """
    parse_int, parse_float, bad = _number_hooks(int64)
    try:
        value = json.loads(text, parse_int=parse_int, parse_float=parse_float)
    except JsonValueError as exc:
        exc.offset = _number_offset(text, bad[-1]) if bad else None
        raise
    if _SURROGATE_ESCAPE.search(text) and _has_surrogate(value):
        raise JsonValueError(
            "a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair) is not valid Unicode",
            "remove it, or write the whole pair (e.g. \\ud83d\\ude00)",
            _lone_surrogate_offset(text),
        )
    return value


def place(text: str, offset: int | None, first_line: int = 1) -> str:
    """``line N, column C`` of an offset in ``text`` (whose first line is ``first_line``)."""
    if offset is None:
        return f"line {first_line}"
    line = first_line + text.count("\n", 0, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _parse_json(text: str, path: Path, first_line: int, *, int64: bool = False) -> object:
    try:
        return loads(text, int64=int64)
    except RecursionError:
        raise CorpusError(f"line {first_line}: JSON nested too deeply", where=str(path), fix="flatten the data: one object per record") from None
    except JsonValueError as exc:
        raise CorpusError(f"{place(text, exc.offset, first_line)}: {exc.problem}", where=str(path), fix=exc.fix) from None


def check_jsonl(path: Path) -> None:
    """Every non-blank line must be a JSON object, each field of one type throughout."""
    text = read_text(path)
    seen = 0
    types = FieldTypes(path, "line")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _parse_json(line, path, number)
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
        data = _parse_json(text, path, 1, int64=True)
    except json.JSONDecodeError as exc:
        if "\n{" in text.strip() or text.lstrip().startswith("{"):
            check_jsonl(path)  # maybe JSON Lines with a .json suffix; raises with a line number
            return [_parse_json(line, path, n, int64=True) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
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
    import pyarrow.parquet as pq  # pyarrow: loaded on first use

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid, OSError: not Parquet or truncated
        reason = " ".join(str(exc).split())[:200]
        raise CorpusError(f"not a readable Parquet file ({reason})", where=str(path), fix="re-export the file as Parquet, or use CSV/JSON Lines") from None
    if rows == 0:
        raise CorpusError("file has no records (0 rows)", where=str(path), fix="add data rows")
