"""torchrun without its crash report: what ``workbench run --gpus N`` launches.

When a rank fails, torchrun raises ``ChildFailedError`` and prints a Python traceback plus a
failure table, and its agent logs each teardown step. A rank that fails on bad input has
already printed the workbench's one-line error, so this entry point runs torchrun's own
``run`` (the same arguments, the same elastic agent), keeps the agent's logging to critical
messages, and turns a child failure into its exit code: 2 for a one-line workbench error and
130/143/129 for a stop by signal (the rank has said so), otherwise one line naming the rank
and how it ended. Stop signals are passed on to the ranks (see ``forward_stop_signals``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

WORKBENCH_ERROR_EXIT = 2


def exit_code_for(exitcode: int) -> int:
    """A child's exit code as this launcher's; a signal death (negative) becomes 128 + signal."""
    if exitcode < 0:
        return 128 + (-exitcode)
    return exitcode or 1


def describe(rank: int, exitcode: int) -> str:
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (SIGKILL often means the machine ran out of host memory)" if -exitcode == signal.SIGKILL else ""
        return f"error: process rank {rank} was killed by {name}{hint}; the run's completed checkpoints are intact"
    return f"error: process rank {rank} exited with code {exitcode}; its output above says why"


STOP_EXITS = {128 + int(signal.SIGINT), 128 + int(signal.SIGTERM), 128 + int(getattr(signal, "SIGHUP", 1))}
"""A rank stopped by a signal exits with these after checkpointing and saying so itself."""


def worker_pids() -> list[int]:
    """This process's children (the ranks), from /proc; empty where there is no /proc."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as handle:
                pids += [int(pid) for pid in handle.read().split()]
    except OSError:
        return []
    return pids


def forward_stop_signals() -> None:
    """Make torchrun pass a stop signal on to the ranks, and keep supervising them.

    torchrun's own handler raises in its agent, which then signals the ranks and kills them
    30 s later, cutting a checkpoint short. Forwarded instead, each rank stops at the next
    step the ranks agree on, checkpoints and exits with 128 + signal; the agent reports that
    exit as usual. Without /proc (not Linux) torchrun's handler stays.
    """
    from torch.distributed.elastic.multiprocessing import api

    original = api._terminate_process_handler

    def forward(signum: int, frame: object) -> None:
        pids = worker_pids()
        if not pids:
            original(signum, frame)
            return
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    api._terminate_process_handler = forward


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    forward_stop_signals()
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.run").setLevel(logging.ERROR)  # the OMP_NUM_THREADS=1 banner
    args = get_args_parser().parse_args(argv)
    try:
        run(args)
    except ChildFailedError as failure:
        rank, first = failure.get_first_failure()
        if first.exitcode != WORKBENCH_ERROR_EXIT and first.exitcode not in STOP_EXITS:
            print(describe(rank, first.exitcode), file=sys.stderr)
        return exit_code_for(first.exitcode)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
