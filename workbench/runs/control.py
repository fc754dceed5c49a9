"""Cooperative stop and pause, safe to call from any thread (the TUI, a signal handler)."""

from __future__ import annotations

import threading


class RunControl:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.stop_reason = ""

    def request_stop(self, reason: str = "stop requested") -> None:
        self.stop_reason = reason
        self._stop.set()
        self._paused.clear()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; return the seconds spent paused (excluded from ETA)."""
        waited = 0.0
        while self._paused.is_set() and not self._stop.is_set():
            self._stop.wait(0.1)
            waited += 0.1
        return waited
