"""The run directory: layout, ``run.toml``, the ``metrics.jsonl`` writer, status, listing.

Layout of ``<out>/<name>/``::

    run.toml          resolved spec + versions, git commit, base identity
    metrics.jsonl     one event per line, appended and flushed (tail it from anywhere)
    status.json       running | finished | stopped | failed, written atomically
    tokenizer/        the run's tokenizer (trained or the base's)
    checkpoints/step-NNNNNNN/   resumable states; complete only once MANIFEST.json exists
    model/            the final model + tokenizer (save_pretrained, safetensors)
    summary.json      eval loss before/after, perplexity, timings
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from workbench.config import RunSpec, tomllib
from workbench.engine.events import Event
from workbench.errors import RunDirError


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + fsync + rename, so readers never see half a file."""
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
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "workbench": __import__("workbench").__version__,
    }


class MetricsWriter:
    """Listener that appends each event to ``metrics.jsonl`` and flushes it at once."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")
        if self._handle.tell() > 0 and not _ends_with_newline(path):
            self._handle.write("\n")  # a line torn by a kill must not swallow the next event

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_json(), default=_json_default)
        with self._lock:
            if self._handle.closed:
                return
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


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
    def write_run_toml(self, spec: RunSpec, meta: dict[str, Any]) -> None:
        doc = {"spec": spec.to_dict(), "meta": {k: v for k, v in meta.items() if v is not None}}
        atomic_write_text(self.run_toml, tomli_w.dumps(doc))

    def write_status(self, status: str, **extra: Any) -> None:
        data = {"status": status, "pid": os.getpid(), "updated": time.time(), **extra}
        atomic_write_text(self.status_file, json.dumps(data, default=_json_default))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2, default=_json_default))

    # ----------------------------------------------------------- reading
    def read_run_toml(self) -> dict[str, Any]:
        if not self.run_toml.is_file():
            raise RunDirError("not a run directory (no run.toml)", where=str(self.path), fix="pass a folder under checkpoints/ (see `workbench runs`)")
        try:
            return tomllib.loads(self.run_toml.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RunDirError(f"run.toml is unreadable ({exc})", where=str(self.run_toml), fix="restore run.toml or start a new run") from None

    def spec(self) -> RunSpec:
        data = self.read_run_toml()
        return RunSpec.from_dict(data.get("spec", {}), source=str(self.run_toml))

    def meta(self) -> dict[str, Any]:
        return self.read_run_toml().get("meta", {})

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"status": "unknown"}

    def summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def events(self) -> list[dict[str, Any]]:
        """All parseable lines of ``metrics.jsonl`` (a torn last line is skipped)."""
        out = []
        try:
            with self.metrics.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except OSError:
            pass
        return out


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
    """Create ``out/name``; a taken name gets a numeric suffix, never overwrites."""
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


@dataclass
class RunRow:
    """One line of ``workbench runs`` and the TUI's Runs table."""

    name: str
    path: str
    objective: str
    corpus: str
    base: str
    steps: int
    total_steps: int
    best_eval_loss: float | None
    status: str
    created: float
    extra: dict = field(default_factory=dict)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_row(run: RunDir) -> RunRow:
    data = run.read_run_toml()
    spec, meta = data.get("spec", {}), data.get("meta", {})
    status = run.status()
    state = status.get("status", "unknown")
    if state == "running" and status.get("pid") and not _pid_alive(int(status["pid"])):
        state = "interrupted"
    steps, total, best = 0, 0, None
    for event in run.events():
        kind = event.get("event")
        if kind == "step":
            steps, total = event.get("step", steps), event.get("total_steps", total)
        elif kind == "eval" and event.get("split", "eval") == "eval":
            loss = event.get("eval_loss")
            if loss is not None and (best is None or loss < best):
                best = loss
        elif kind == "started":
            total = event.get("total_steps", total)
        elif kind == "finished":
            steps = event.get("step", steps)
    return RunRow(
        name=run.path.name,
        path=str(run.path),
        objective=spec.get("objective", "?"),
        corpus=spec.get("corpus", "?"),
        base=spec.get("base", ""),
        steps=int(steps),
        total_steps=int(total),
        best_eval_loss=best,
        status=state,
        created=float(meta.get("created", run.run_toml.stat().st_mtime)),
    )


def list_runs(out: str = "checkpoints") -> list[RunRow]:
    root = Path(out)
    if not root.is_dir():
        return []
    rows = []
    for child in root.iterdir():
        if (child / "run.toml").is_file():
            try:
                rows.append(run_row(RunDir(child.resolve())))
            except RunDirError:
                continue
    rows.sort(key=lambda r: r.created, reverse=True)
    return rows
