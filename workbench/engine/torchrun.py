"""torchrun without its crash report: what ``workbench run --gpus N`` launches.

When a rank fails, torchrun raises ``ChildFailedError`` and prints a Python traceback plus a
failure table, and its agent logs each teardown step. A rank that fails on bad input has
already printed the workbench's one-line error, so this entry point runs torchrun's own
``run`` (the same arguments, the same elastic agent), keeps the agent's logging to critical
messages, and turns a child failure into its exit code: 2 for a one-line workbench error
(nothing more is printed), otherwise one line naming the rank and how it ended.
"""

from __future__ import annotations

import logging
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


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.run").setLevel(logging.ERROR)  # the OMP_NUM_THREADS=1 banner
    args = get_args_parser().parse_args(argv)
    try:
        run(args)
    except ChildFailedError as failure:
        rank, first = failure.get_first_failure()
        if first.exitcode != WORKBENCH_ERROR_EXIT:
            print(describe(rank, first.exitcode), file=sys.stderr)
        return exit_code_for(first.exitcode)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
