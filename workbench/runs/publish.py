"""Atomic publish: a folder appears complete under its final name, or not at all.

Every folder a run publishes (a checkpoint, ``initial/``, ``model/``, ``adapter/``) is written
into a fresh temp folder beside it, fsynced file by file, then renamed into place and the
parent fsynced: a crash, a kill or a full disk leaves the previous state, never half a folder.
Nothing is written through a symbolic link.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from workbench.runs.lock import fsync_dir, fsync_tree, refuse_symlinks


def publish_folder(final: Path, tmp: Path, write: Callable[[Path], object], *,
                   displace: Callable[[Path], object] | None = None, replace: bool = False, synced: bool = False) -> Path:
    """Write ``final`` through ``tmp``: ``write(tmp)`` fills a fresh folder, which is fsynced
    (unless ``synced``: the writer fsynced every file itself) and renamed to ``final``.

    An existing ``final`` is an error, unless ``displace(final)`` moves it out of the way
    first (it must leave the name free), or ``replace``: the new folder takes its place and
    the old one is removed (put back if the rename fails). ``tmp`` never outlives a failure."""
    refuse_symlinks(final, tmp)
    renamed = False
    old = _unused(final.parent / f".{final.name}.old-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)  # a leftover of an earlier save by this writer
        os.mkdir(tmp)  # fails rather than reuse anything that appeared since
        write(tmp)
        if not synced:
            fsync_tree(tmp)
        if os.path.lexists(final):
            if replace:
                os.replace(final, old)
            elif displace is not None:
                displace(final)
            else:
                raise FileExistsError(f"{final} exists")
        try:
            os.replace(tmp, final)
        except OSError:
            if os.path.lexists(old) and not os.path.lexists(final):
                os.replace(old, final)  # put the old one back
            raise
        renamed = True
        fsync_dir(final.parent)
    finally:
        if not renamed:
            shutil.rmtree(tmp, ignore_errors=True)
    if os.path.lexists(old):
        shutil.rmtree(old, ignore_errors=True)  # the replaced folder, superseded by this one
    return final


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: the first name nothing (not even a link) has."""
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
