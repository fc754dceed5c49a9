"""The run directory: layout, ``run.toml``, the ``metrics.jsonl`` writer, status, listing.

Layout of ``<out>/<name>/``::

    run.toml          resolved spec + versions, git commit, base identity
    metrics.jsonl     one event per line, appended and flushed (tail it from anywhere)
    status.json       running | finished | stopped | failed, written atomically
    tokenizer/        the run's tokenizer (trained or the base's)
    checkpoints/step-NNNNNNN/   resumable states; complete only once MANIFEST.json exists
    checkpoints/initial/        a from-scratch run's untrained weights (save_pretrained; never resumed)
    model/            the final model + tokenizer (save_pretrained, safetensors)
    summary.json      eval loss before/after, perplexity, timings
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import tomli_w

from workbench.config import ResolvedSpec, RunSpec, tomllib
from workbench.errors import RunDirError
from workbench.runs.events import Event, event_problem, value_problem
from workbench.runs.lock import open_append


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + fsync + rename, so readers never see half a file. The temp
    file is created with ``O_EXCL`` and the rename replaces ``path`` itself, so a symlink
    there is replaced, never written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict[str, str]:
    import torch  # torch: loaded on first use
    import transformers  # transformers: loaded on first use

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "workbench": __import__("workbench").__version__,
    }


SELF_PATH_KEYS = ("run_dir", "model_dir", "path")
"""Keys of events and ``summary.json`` that name the run directory or a folder in it: stored
relative to the run directory (``.``, ``model``, ``checkpoints/step-0000040``), so a copied
or moved run names itself; readers resolve them against the folder they read."""


def relative_self_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with each path into ``folder`` (``SELF_PATH_KEYS``) made relative to it, in a
    summary nested in it too; a summary's ``inspect_command`` (the folder's absolute path) is
    left out, and made again by ``resolved_self_paths``."""
    out = dict(data)
    for key in SELF_PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and os.path.isabs(value):
            try:
                out[key] = Path(value).relative_to(folder).as_posix()
            except ValueError:
                pass  # not inside the run (an adapter or base elsewhere): kept as given
    if out.get("inspect_command") == f"workbench inspect {folder}":
        del out["inspect_command"]
    if isinstance(out.get("summary"), dict):
        out["summary"] = relative_self_paths(out["summary"], folder)
    return out


def resolved_self_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with each relative path of ``SELF_PATH_KEYS`` resolved against ``folder``
    (where the run is now), in a nested summary too."""
    out = dict(data)
    for key in SELF_PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = os.path.normpath(folder / value)
    if "model_dir" in out and "objective" in out and "inspect_command" not in out:  # a summary
        out["inspect_command"] = f"workbench inspect {out.get('run_dir') or folder}"
    if isinstance(out.get("summary"), dict):
        out["summary"] = resolved_self_paths(out["summary"], folder)
    return out


class MetricsWriter:
    """Listener that appends each event to ``metrics.jsonl`` and flushes it at once."""

    def __init__(self, path: Path):
        self.path = path
        self._folder = path.parent.resolve()
        self._lock = threading.Lock()
        self._handle = open_append(path)  # never through a symlink
        if self._handle.tell() > 0 and not _ends_with_newline(path):
            self._handle.write("\n")  # a line torn by a kill must not swallow the next event

    def __call__(self, event: Event) -> None:
        line = json.dumps(relative_self_paths(event.to_json(), self._folder), default=_json_default)
        with self._lock:
            if self._handle.closed:
                return
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def _overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite an existing small file over its own bytes (never through a symlink), padded
    with spaces (JSON allows them) to its old length so nothing is truncated: no new block
    is needed, so this works on a full disk. Not atomic: the fallback when atomic fails."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        data = text.encode("utf-8")
        data += b" " * max(0, os.fstat(fd).st_size - len(data))
        view = memoryview(data)
        while view:  # from offset 0: the descriptor is fresh
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


@dataclass
class RunDir:
    path: Path

    @property
    def run_toml(self) -> Path:
        return self.path / "run.toml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    # ----------------------------------------------------------- writing
    def write_run_toml(self, spec: RunSpec | ResolvedSpec, meta: dict[str, Any]) -> None:
        doc = {"spec": spec.to_dict(), "meta": {k: v for k, v in meta.items() if v is not None}}
        atomic_write_text(self.run_toml, tomli_w.dumps(doc))

    def write_status(self, status: str, **extra: Any) -> None:
        data = {"status": status, "pid": os.getpid(), "updated": time.time(), **extra}
        atomic_write_text(self.status_file, json.dumps(data, default=_json_default))

    def write_status_anyway(self, status: str, **extra: Any) -> str:
        """``write_status`` for a run's last word (failed, stopped), which must land even on
        a full disk, where the atomic write's new temp file cannot: then overwrite the old
        ``status.json`` in place (its disk block is already allocated), and failing that
        remove it, so that no reader goes on seeing ``running`` (they then say ``unknown``).
        Returns how it was recorded: "atomic", "in place", "removed" or "" (nothing worked)."""
        try:
            self.write_status(status, **extra)
            return "atomic"
        except OSError:
            pass
        data = {"status": status, "pid": os.getpid(), "updated": time.time(), **extra}
        try:
            _overwrite_in_place(self.status_file, json.dumps(data, default=_json_default))
            return "in place"
        except OSError:
            pass
        try:
            self.status_file.unlink()
            return "removed"
        except FileNotFoundError:
            return "removed"
        except OSError:
            return ""

    def write_summary(self, summary: dict[str, Any]) -> None:
        summary = relative_self_paths(summary, self.path.resolve())
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2, default=_json_default))

    # ----------------------------------------------------------- reading
    def read_run_toml(self) -> dict[str, Any]:
        """``run.toml`` as tables: ``spec`` and ``meta`` are dicts, and the spec fields that
        readers use without ``RunSpec`` (objective, corpus, base, probes) have their types;
        anything else is a one-line ``RunDirError``."""
        if not self.run_toml.is_file():
            raise RunDirError("not a run directory (no run.toml)", where=str(self.path), fix="pass a folder under checkpoints/ (see `workbench runs`)")
        try:
            data = tomllib.loads(read_small_file(self.run_toml).decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RunDirError(f"not valid TOML ({exc})", where=str(self.run_toml), fix="restore run.toml or start a new run") from None
        except OSError as exc:
            raise RunDirError(f"unreadable ({exc.strerror or exc})", where=str(self.run_toml), fix="check its permissions") from None
        problem = _run_toml_problem(data)
        if problem:
            raise RunDirError(problem, where=str(self.run_toml), fix="restore run.toml or start a new run")
        return data

    def spec(self) -> RunSpec:
        data = self.read_run_toml()
        return RunSpec.from_dict(data.get("spec", {}), source=str(self.run_toml))

    def meta(self) -> dict[str, Any]:
        """The ``[meta]`` table, with the base's identity checked to be text (the inspector
        finds the base by it); ``run_row`` checks ``created`` itself."""
        meta = self.read_run_toml().get("meta", {})
        problem = base_problem(meta)
        if problem:
            raise RunDirError(problem, where=str(self.run_toml), fix="restore run.toml or start a new run")
        return meta

    def status(self) -> dict[str, Any]:
        """``status.json``, checked: ``{"status": "unknown"}`` while there is none, and
        ``{"status": "unknown", "damaged": why}`` when it cannot be trusted, so no reader acts
        on (or crashes on) a pid or a step of the wrong type."""
        try:
            data = parse_json_line(read_small_file(self.status_file))
        except FileNotFoundError:
            return {"status": "unknown"}
        except OSError as exc:
            return {"status": "unknown", "damaged": f"status.json is unreadable ({exc.strerror or exc})"}
        except ValueError:
            return {"status": "unknown", "damaged": "status.json is not JSON"}
        if not isinstance(data, dict):
            return {"status": "unknown", "damaged": f"status.json is not a JSON object but {type(data).__name__}"}
        for name, kind in STATUS_FIELDS.items():
            problem = value_problem(data[name], kind) if name in data else ("is missing" if name == "status" else None)
            if problem:
                return {"status": "unknown", "damaged": f"status.json: {name} {problem}"}
        return data

    def summary(self) -> dict[str, Any]:
        try:
            data = parse_json_line(read_small_file(self.summary_file))
        except (OSError, ValueError):
            return {}
        return resolved_self_paths(data, self.path) if isinstance(data, dict) else {}

    @property
    def probes_file(self) -> Path:
        return self.path / "probes.jsonl"

    def read_events(self) -> JsonLines:
        """The usable events of ``metrics.jsonl`` (``event_problem`` decides), and what was skipped;
        the paths they name resolved against this folder."""
        events = read_jsonl(self.metrics, event_problem)
        events.records[:] = [resolved_self_paths(record, self.path) for record in events.records]
        return events

    def events(self) -> list[dict[str, Any]]:
        """The usable events of ``metrics.jsonl`` (see ``read_events``)."""
        return self.read_events().records


MAX_SMALL_FILE = 4 << 20
"""``run.toml``, ``status.json`` and ``summary.json`` are a few KiB; past this it is damage."""

STATUS_FIELDS: dict[str, Any] = {"status": str, "pid": int, "updated": float, "step": int, "message": str}
"""The fields of ``status.json`` that readers use, and their types."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; a FIFO, device or folder in its place is an
    ``OSError`` rather than a reader blocked forever on it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_file(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """All of a small regular file (see ``open_regular``); a larger one is an ``OSError``."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", str(path))
    return data


def parse_json_line(raw: bytes) -> Any:
    """One JSON document from UTF-8 bytes; any way it can fail (bad UTF-8, bad JSON, nesting
    too deep, a lone surrogate that no terminal can print) is a ``ValueError``."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(raw):  # rare: pairs are fine, a lone one cannot be printed
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def skipped_note(file: str, count: int) -> str:
    """``metrics.jsonl: 3 unreadable lines skipped``: the one wording of every reader."""
    return f"{file}: {count} unreadable line{'s' if count != 1 else ''} skipped"


@dataclass
class JsonLines:
    """What ``read_jsonl`` found in one file: the usable records and what it skipped."""

    name: str
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    first_skipped: str = ""
    """``line 12: step event without total_steps``: the first skipped line and why."""
    unreadable: str = ""
    """Why the whole file could not be read (empty when it could, or does not exist)."""

    def skip(self, number: int, why: str) -> None:
        self.skipped += 1
        self.first_skipped = self.first_skipped or f"line {number}: {why}"

    def take(self, number: int, raw: bytes, problem: Callable[[Any], str | None]) -> Any | None:
        """Line ``number`` judged: its record when ``problem`` accepts it, else None (a complete
        line that is not JSON, or a record with a problem, counted as skipped; a torn last line,
        with no newline yet, is left out without counting it)."""
        if not raw.strip():
            return None
        try:
            data = parse_json_line(raw)
        except ValueError:
            if raw.endswith(b"\n"):
                self.skip(number, "not JSON")
            return None
        why = problem(data)
        if why:
            self.skip(number, why)
            return None
        return data

    def problems(self) -> list[str]:
        """``["metrics.jsonl: 3 unreadable lines skipped"]``, or nothing for a sound file."""
        if self.unreadable:
            return [f"{self.name} is {self.unreadable}"]
        return [skipped_note(self.name, self.skipped)] if self.skipped else []


def read_jsonl(path: Path, problem: Callable[[Any], str | None]) -> JsonLines:
    """The records of a JSON-lines file that ``problem`` accepts, and a count of the lines it
    skipped: lines that are not UTF-8 JSON, or records with a missing or wrongly typed
    field. A torn last line, one a writer has not finished, is left out without counting it.
    A file that does not exist is empty; one that cannot be read says why in ``unreadable``."""
    found = JsonLines(path.name)
    try:
        with open_regular(path) as handle:
            for number, raw in enumerate(handle, 1):
                data = found.take(number, raw, problem)
                if data is not None:
                    found.records.append(data)
    except FileNotFoundError:
        pass
    except OSError as exc:
        found.unreadable = f"unreadable ({exc.strerror or exc})"
    return found


_SPEC_TYPES: dict[str, Any] = {"objective": str, "corpus": str, "base": str, "probes": list}


def _run_toml_problem(data: dict[str, Any]) -> str | None:
    """Why a parsed ``run.toml`` cannot be read as one (None when it can)."""
    for table in ("spec", "meta"):
        if not isinstance(data.get(table, {}), dict):
            return f"[{table}] is not a table"
    spec = data.get("spec", {})
    for name, kind in _SPEC_TYPES.items():
        problem = value_problem(spec[name], kind) if name in spec else None
        if problem:
            return f"{name} {problem}"
    if not all(isinstance(p, str) for p in spec.get("probes", [])):
        return "probes is not a list of texts"
    return None


def base_problem(meta: dict[str, Any]) -> str | None:
    for name, value in meta.items():
        if name.startswith("base") and not isinstance(value, str):
            return f"{name} is not text"
    return None


def created_problem(meta: dict[str, Any]) -> str | None:
    created = meta.get("created", 0.0)
    return "created is not a time" if value_problem(created, float) or not is_time(float(created)) else None


def is_time(value: float) -> bool:
    try:
        dt.datetime.fromtimestamp(value)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def find_run(name_or_path: str, out: str = "checkpoints") -> RunDir:
    """A run by path or by name under ``out``; a one-line error if it does not exist."""
    candidates = [Path(name_or_path), Path(out) / name_or_path]
    for candidate in candidates:
        if (candidate / "run.toml").is_file():
            return RunDir(candidate.resolve())
    raise RunDirError(
        "no such run (no run.toml there)",
        where=name_or_path,
        fix=f"pass a run directory or a name listed by `workbench runs --out {out}`",
    )


def new_run_dir(out: str, name: str) -> RunDir:
    """Create ``out/name``; a taken name gets a numeric suffix, never overwrites. ``mkdir``
    is atomic, so two processes starting the same name at once get two folders; the caller
    then locks its folder (``lock.claim``) before writing, and nothing can resume a folder
    before its ``run.toml`` exists, which is written under that lock."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    candidate = root / name
    counter = 2
    while True:
        try:
            candidate.mkdir()
            return RunDir(candidate.resolve())
        except FileExistsError:
            candidate = root / f"{name}-{counter}"
            counter += 1


RUN_FILES = ("run.toml", "status.json", "metrics.jsonl")
"""A folder with any of these is a run (one without run.toml is a damaged run)."""
