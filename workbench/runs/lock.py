"""One writer per run directory, and run writes that stay inside it.

``claim(run_path)`` takes an exclusive ``fcntl.flock`` on ``<run>/.lock``, writes the
holder's pid and host into it, and keeps it until ``RunLock.release()``: a second writer
(``workbench run --resume`` of a live run, a TUI run on the same folder) gets a one-line
error naming that pid. The kernel drops a flock when its process dies, however it dies, so
a lock file left by a killed run is not stale in any way that matters: it is simply locked
again (and its old pid reported as taken over). A clean release empties the file.

Without ``fcntl`` (Windows) the lock file is created with ``O_EXCL`` instead, and one whose
pid is no longer running on this host is taken over (best effort: a pid can be reused).

``refuse_symlinks`` is the other half: the run never writes through a symbolic link inside
its directory (a planted ``model -> /elsewhere`` would otherwise redirect the final save).
The run directory itself may be a link (``--out`` on another disk).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.errors import RunDirError
from workbench.runs.events import Message
from workbench.runs.processes import pid_alive

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
WRITE_TARGETS = ("model", "checkpoints", "tokenizer", "metrics.jsonl", "probes.jsonl", "samples.jsonl", "eval_predictions.jsonl",
                 "tensorboard")
"""What a run writes into (rather than replacing by rename): none of them may be a symlink."""
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
HOLDER_WAIT_S = 1.0
"""How long a refused writer waits for the holder's pid to appear in a just-locked file."""


@dataclass
class RunLock:
    """The lock a run holds on its directory; ``release()`` is idempotent."""

    path: Path
    fd: int | None
    previous: dict[str, Any] = field(default_factory=dict)
    """The holder recorded in the file when it was taken: a process that died holding it."""
    flocked: bool = True
    """False for the ``O_EXCL`` lock file, which is removed on release."""

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if self.flocked:
                os.ftruncate(fd, 0)  # empty: released cleanly
                fcntl.flock(fd, fcntl.LOCK_UN)  # explicitly: a forked child may share the descriptor
        except OSError:
            pass
        finally:
            os.close(fd)
        if not self.flocked:
            self.path.unlink(missing_ok=True)


def holder_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def claim(run_path: Path, emit: Callable[[Any], None] | None = None) -> RunLock:
    """Lock ``run_path`` for this process, or raise a one-line ``RunDirError`` naming the holder;
    then refuse the run if anything it writes into is a symlink. ``emit`` hears of a lock
    taken over from a process that died holding it."""
    path = Path(run_path) / LOCK_FILE
    lock = _flock(path) if fcntl is not None else _exclusive_create(path)
    try:
        refuse_symlinks(*(Path(run_path) / name for name in WRITE_TARGETS))
    except BaseException:
        lock.release()
        raise
    if lock.previous and emit is not None:
        old = lock.previous
        emit(Message(text=f"Took over the run's lock from pid {old.get('pid')} on {old.get('host', '?')}, which is no longer running"))
    return lock


def _open_lock_file(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():
            refuse_symlinks(path)
        if isinstance(exc, FileExistsError):
            raise
        raise RunDirError(f"cannot open the run's lock file ({exc.strerror})", where=str(path),
                          fix="check the run directory's permissions and disk") from None


def _flock(path: Path) -> RunLock:
    """flock the lock file; retried if the file was replaced between opening and locking it."""
    for _ in range(5):
        fd = _open_lock_file(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd, wait=exc.errno in (errno.EAGAIN, errno.EACCES))
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise busy(path.parent, holder) from None
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a filesystem without locks
                return _exclusive_create(path)
            raise RunDirError(f"cannot lock the run ({exc.strerror})", where=str(path), fix="check the disk") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            previous = _read_holder(fd, wait=False)
            _write_holder(fd)
            return RunLock(path, fd, previous)
        os.close(fd)
    raise busy(path.parent, {})


def _exclusive_create(path: Path) -> RunLock:
    """No flock: the file's existence is the lock; a dead holder's file is taken over
    (removed: it holds nothing but that holder's pid and host)."""
    previous: dict[str, Any] = {}
    for _ in range(5):
        try:
            fd = _open_lock_file(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            previous = _read_holder_at(path)
            if holder_alive(previous):
                raise busy(path.parent, previous) from None
            path.unlink(missing_ok=True)
            continue
        _write_holder(fd)
        return RunLock(path, fd, previous, flocked=False)
    raise busy(path.parent, _read_holder_at(path))


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder_info()).encode("utf-8"))
    try:
        os.fsync(fd)
    except OSError:
        pass


def _parse_holder(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or isinstance(data.get("pid"), bool):
        return {}
    return data


def _read_holder(fd: int, wait: bool) -> dict[str, Any]:
    """The holder in an open lock file; a refused writer waits briefly for a just-taken lock's pid."""
    deadline = time.monotonic() + (HOLDER_WAIT_S if wait else 0.0)
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = _parse_holder(os.read(fd, 4096))
        if holder or time.monotonic() >= deadline:
            return holder
        time.sleep(0.05)


def _read_holder_at(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW)
    except OSError:
        return {}
    try:
        return _read_holder(fd, wait=True)
    finally:
        os.close(fd)


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether a lock file's holder may still run: on another host it cannot be told, so yes."""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False  # no pid recorded: a writer that died before it could write one
    if holder.get("host") not in (None, socket.gethostname()):
        return True
    return pid_alive(pid)


def busy(run_path: Path, holder: dict[str, Any]) -> RunDirError:
    pid, host = holder.get("pid"), holder.get("host") or "?"
    if pid is None:
        return RunDirError("another process is writing this run (it has not recorded its pid yet)", where=str(run_path),
                           fix="wait for it to finish, or stop it (Ctrl-C where it runs) and then resume")
    elsewhere = "" if host == socket.gethostname() else f" on {host}"
    return RunDirError(f"another process is writing this run (pid {pid} on {host})", where=str(run_path),
                       fix=f"wait for it to finish, or stop it with `kill -INT {pid}`{elsewhere} (it saves a checkpoint), then resume")


def refuse_symlinks(*paths: Path) -> None:
    """A one-line error if any of ``paths`` is a symbolic link: the run never writes through one."""
    for path in paths:
        if path.is_symlink():
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise RunDirError(f"is a symbolic link (to {target}); the run never writes through a link inside its directory",
                              where=str(path), fix=f"remove the link (`rm {path}`; what it points to is untouched), then run again")


def open_append(path: Path) -> Any:
    """``path`` opened to append text, never through a symlink (``O_NOFOLLOW``, and a check
    first where that flag does not exist): a planted link must not send the run's lines elsewhere."""
    refuse_symlinks(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            refuse_symlinks(path)  # a link that appeared since the check
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


def fsync_dir(path: Path, strict: bool = False) -> None:
    """Flush a directory entry. Filesystems that cannot fsync a directory (EINVAL) are fine;
    with ``strict`` any other failure (ENOSPC, EIO) is raised."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if strict and exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` (links are not followed) and every folder: a rename
    into place then publishes complete files only, as for checkpoints."""
    for here, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(here) / name
            if path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY | O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(here), strict=True)
