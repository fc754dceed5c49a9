"""Throughput and time: tokens/s between logs, training time without pauses, ETA, budget."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Rates:
    tokens: int
    tokens_per_s: float
    elapsed_s: float
    eta_s: float


class ThroughputMeter:
    """Counts training time only: time spent paused is left out of rates, ETA and budget.

    A resumed run starts from the tokens and training seconds its checkpoint recorded: the
    time budget is the whole run's, and the summary's tokens/s divides this span's tokens
    by this span's time (not the whole run's tokens by the resumed part's time).
    """

    def __init__(self, tokens_seen: int, start_step: int, time_budget: float | None, prior_s: float = 0.0):
        self.tokens_seen = tokens_seen
        self.tokens_at_start = tokens_seen
        self.start_step = start_step
        self.time_budget = time_budget
        self.prior_s = prior_s
        self.start = time.perf_counter()
        self.paused_s = 0.0
        self.log_start = self.start
        self.log_tokens = 0

    def paused(self, seconds: float) -> None:
        self.paused_s += seconds
        self.log_start += seconds  # tokens/s counts training time only

    def add(self, tokens: int) -> None:
        self.log_tokens += tokens

    def elapsed(self) -> float:
        """Training seconds of this process's span."""
        return time.perf_counter() - self.start - self.paused_s

    def spent(self) -> float:
        """Training seconds of the whole run, before a resume included: what the budget counts."""
        return self.prior_s + self.elapsed()

    def over_budget(self) -> bool:
        return self.time_budget is not None and self.spent() >= self.time_budget

    def log(self, step: int, total_steps: int | None) -> Rates:
        """Rates since the last log; starts the next log window. ``total_steps`` None: the
        run ends with its time budget, so the ETA is the budget left."""
        now = time.perf_counter()
        elapsed = self.elapsed()
        rate = self.log_tokens / max(1e-9, now - self.log_start)
        eta = float("inf") if total_steps is None else elapsed / max(1, step - self.start_step) * (total_steps - step)
        if self.time_budget is not None:
            eta = min(eta, max(0.0, self.time_budget - self.spent()))
        self.tokens_seen += self.log_tokens
        self.log_start, self.log_tokens = time.perf_counter(), 0
        return Rates(tokens=self.tokens_seen, tokens_per_s=rate, elapsed_s=self.spent(), eta_s=eta)

    def finish(self) -> int:
        """All tokens seen, at the end of the run."""
        self.tokens_seen += self.log_tokens
        self.log_tokens = 0
        return self.tokens_seen

    def span_rate(self) -> float | None:
        """Tokens per second of this span: its own tokens over its own training time."""
        span = self.elapsed()
        return (self.tokens_seen - self.tokens_at_start) / span if span > 0 else None


class LossWindow:
    """Step losses summed on the device between logs: read (one host sync) once per log."""

    def __init__(self, device: object):
        import torch  # torch: loaded on first use

        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, loss: object) -> None:
        if loss is not None:
            self.total += loss
            self.count += 1

    def take(self, mean: object) -> float | None:
        """The mean since the last log (``mean`` averages it over ranks); None if no step counted."""
        if not self.count:
            return None
        value = float(mean(self.total)) / self.count
        self.total.zero_()
        self.count = 0
        return value
