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
                   displace: Callable[[Path], object] | None = None, synced: bool = False) -> Path:
    """Write ``final`` through ``tmp``: ``write(tmp)`` fills a fresh folder, which is fsynced
    (unless ``synced``: the writer fsynced every file itself) and renamed to ``final``.
    ``displace(final)`` moves an existing ``final`` out of the way first (it must leave the
    name free); without it an existing ``final`` is an error. ``tmp`` is removed on failure."""
    refuse_symlinks(final, tmp)
    renamed = False
    try:
        if tmp.exists():
            shutil.rmtree(tmp)  # a leftover of an earlier save by this writer
        os.mkdir(tmp)  # fails rather than reuse anything that appeared since
        write(tmp)
        if not synced:
            fsync_tree(tmp)
        if os.path.lexists(final):
            if displace is None:
                raise FileExistsError(f"{final} exists")
            displace(final)
        os.replace(tmp, final)
        renamed = True
        fsync_dir(final.parent)
    finally:
        if not renamed:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
