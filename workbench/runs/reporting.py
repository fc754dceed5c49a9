"""Optional reporters: the run's events also sent to TensorBoard or trackio (``--report-to``).

``metrics.jsonl`` stays the source of truth; a reporter is one more listener that turns each
event into scalars as it comes (``event_scalars``): ``train/loss``, ``train/lr``,
``train/tokens_per_s``, ``train/grad_norm``, and per eval ``eval/loss``, ``eval/perplexity``
and ``eval/<task metric>`` (``base_eval/...`` for the forgetting monitor), each at its
optimizer step. ``workbench export RUN --format tensorboard`` replays an existing run's
``metrics.jsonl`` through the same reporter.

Both libraries are optional extras, imported only when a run asks for them:
``check_reporters`` says which one is missing, with its ``pip install`` line, before the
run starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import tempfile
from pathlib import Path
from typing import Any

from workbench.errors import RunDirError, SpecError
from workbench.runs.events import Event
from workbench.runs.lock import refuse_symlinks

MODULES = {"tensorboard": "tensorboard", "trackio": "trackio"}
"""Reporter -> the module it needs (the extra of the same name installs it)."""

TENSORBOARD_FOLDER = "tensorboard"
"""Where a run's TensorBoard event files go, inside its run directory."""


def destinations(report_to: str | None) -> list[str]:
    """``"tensorboard,trackio"`` -> ``["tensorboard", "trackio"]``; ``"none"`` -> ``[]``."""
    return [name.strip() for name in (report_to or "none").split(",") if name.strip() and name.strip() != "none"]


def check_reporters(report_to: str | None) -> None:
    """A one-line ``SpecError`` naming the extra to install when a reporter's library is missing."""
    for name in destinations(report_to):
        if importlib.util.find_spec(MODULES[name]) is None:
            raise SpecError(f"--report-to {name} needs the {name} package, which is not installed",
                            fix=f'pip install "lm-workbench[{name}]", or drop --report-to {name}')


def check_folder(folder: Path) -> None:
    """A one-line ``RunDirError`` unless event files can be written in ``folder`` (made if
    missing): never a symbolic link, a file in its place, or a folder that refuses a new file.
    Checked before TensorBoard's writer thread starts, which would otherwise fail later with a
    traceback of its own."""
    refuse_symlinks(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(20, "a file is in the folder's place")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RunDirError(f"cannot write TensorBoard event files there ({exc.strerror or exc})", where=str(folder),
                          fix="make it a folder you can write to (or remove it), or drop --report-to tensorboard") from None


def check_report_folders(report_to: str | None, run_dir: Path) -> None:
    """Check the folders ``report_to`` writes into inside ``run_dir`` (a resumed run's, before
    anything in it is touched: a run that cannot report stays as it was)."""
    if "tensorboard" in destinations(report_to):
        check_folder(run_dir / TENSORBOARD_FOLDER)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def event_scalars(data: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(tag, value, step) for each number worth a curve in one event (as ``to_json`` or a
    ``metrics.jsonl`` line has it); other events have none."""
    kind = data.get("event")
    found: list[tuple[str, Any, int]] = []
    if kind == "step":
        found = [(f"train/{name}", data.get(key), data["step"]) for name, key in
                 (("loss", "loss"), ("lr", "lr"), ("tokens_per_s", "tokens_per_s"), ("grad_norm", "grad_norm"), ("tokens", "tokens"))]
    elif kind == "eval":
        split = data.get("split") or "eval"
        found = [(f"{split}/loss", data.get("eval_loss"), data["step"]), (f"{split}/perplexity", data.get("perplexity"), data["step"])]
        metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
        found += [(f"{split}/{name}", value, data["step"]) for name, value in metrics.items()]
    return [(tag, float(value), step) for tag, value, step in ((t, _number(v), s) for t, v, s in found) if value is not None]


class TensorBoardReporter:
    """Writes each event's scalars to TensorBoard event files in ``folder`` (``SummaryWriter``)."""

    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # heavy: torch

        check_folder(folder)
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, event: Event | dict[str, Any]) -> None:
        data = event.to_json() if isinstance(event, Event) else event
        for tag, value, step in event_scalars(data):
            self.writer.add_scalar(tag, value, global_step=step, walltime=data.get("time"))
        if data.get("event") == "started" and isinstance(data.get("spec"), dict):
            lines = [f"    {key} = {value!r}" for key, value in data["spec"].items()]
            self.writer.add_text("spec", "\n".join(lines), global_step=data.get("resumed_from_step", 0), walltime=data.get("time"))
        if data.get("event") in ("finished", "failed", "eval"):
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TrackioReporter:
    """Logs each event's scalars to trackio's local store (``TRACKIO_DIR``, by default
    ``~/.cache/huggingface/trackio``): the project is the run root's name, the run the run's.

    Three things the real trackio (0.43) does that a reporter must not let through: it prints
    its banners to stdout (which carries ``--json`` events and the TUI's screen), so they are
    kept; it starts a CPU/GPU sampling thread of its own when psutil or a GPU is there (off:
    the run records its own figures); and ``trackio.init`` would open a second run of the same
    name on a ``--resume`` (``resume="allow"`` continues the first). It logs through the
    ``Run`` object itself, not trackio's per-thread current run.
    """

    def __init__(self, run_dir: Path, spec: dict[str, Any]) -> None:
        import trackio  # the optional extra; also pulls in its HTTP stack

        with contextlib.redirect_stdout(io.StringIO()):
            self.run = trackio.init(project=run_dir.parent.name or "lm-workbench", name=run_dir.name, config=spec,
                                    resume="allow", auto_log_cpu=False, auto_log_gpu=False)

    def __call__(self, event: Event | dict[str, Any]) -> None:
        data = event.to_json() if isinstance(event, Event) else event
        by_step: dict[int, dict[str, float]] = {}
        for tag, value, step in event_scalars(data):
            by_step.setdefault(step, {})[tag] = value
        for step, values in by_step.items():
            self.run.log(values, step=step)

    def close(self) -> None:
        import trackio  # trackio: loaded on first use

        with contextlib.redirect_stdout(io.StringIO()):  # "* Run finished. Uploading logs..."
            # trackio.finish (same thread as init) also forgets the run, so trackio's exit hook
            # does not finish it a second time
            trackio.finish()


def open_reporters(report_to: str | None, run_dir: Path, spec: dict[str, Any]) -> list[Any]:
    """The reporters ``report_to`` asks for, writing for the run in ``run_dir``."""
    check_reporters(report_to)
    reporters: list[Any] = []
    for name in destinations(report_to):
        reporters.append(TensorBoardReporter(run_dir / TENSORBOARD_FOLDER) if name == "tensorboard" else TrackioReporter(run_dir, spec))
    return reporters
