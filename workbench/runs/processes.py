"""Is this process alive? One answer for the lock, the run listing, checkpoints and sweeps."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process on this host: another user's process counts, a
    zombie (exited, not yet reaped) does not, and a number no pid can be is not alive."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process
    except (OSError, OverflowError, ValueError):  # ProcessLookupError, or not a pid this system can have
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped still answers ``kill(pid, 0)``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False  # no /proc (macOS): kill's answer stands


def _windows_pid_alive(pid: int) -> bool:
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    code = ctypes.c_ulong()
    try:
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
