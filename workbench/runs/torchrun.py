"""torchrun without its crash report: what ``workbench run --gpus N`` launches.

When a rank fails, torchrun raises ``ChildFailedError`` and prints a Python traceback plus a
failure table, and its agent logs each teardown step. A rank that fails on bad input has
already printed the workbench's one-line error, so this entry point runs torchrun's own
``run`` (the same arguments, the same elastic agent), keeps the agent's logging to critical
messages (and its C++ warnings off: ``import_quietly``), and turns a child failure into its exit code: 2 for a one-line workbench error and
130/143/129 for a stop by signal (the rank has said so), otherwise one line naming the rank
and how it ended. torchrun passes stop signals on to the ranks itself; this entry point only
gives them time to checkpoint (see ``allow_graceful_stop``).
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


STOP_GRACE_S = 1800
"""How long torchrun lets the ranks finish their step and checkpoint after a stop signal."""


def allow_graceful_stop() -> None:
    """Let the ranks finish a checkpoint after a stop signal before torchrun kills them.

    torchrun itself sends a SIGINT/SIGTERM/SIGHUP it gets to each rank once (to the rank's
    own process group) and waits for them; a second signal reaches them again and a rank
    then leaves at once. A user's own ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` wins.
    """
    # The one change to torchrun's behaviour, through its public grace-period setting: its
    # default 30 s before SIGKILL would cut a large model's checkpoint short. (A torch too old
    # for the setting ignores it and keeps 30 s.)
    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(STOP_GRACE_S))


CPP_LOG_LEVEL = "TORCH_CPP_LOG_LEVEL"


def import_quietly() -> None:
    """Import torchrun with the agent's C++ warnings off; the ranks keep torch's default.

    At a clean end of a run over several nodes, the agent hosting the rendezvous store (node
    0's) can pass the exit barrier last and leave before another node's agent has read that
    the barrier is done. That agent then warns, with a C++ stack, that the store went away,
    and logs a Python traceback, although every rank finished and it exits 0. c10 reads the
    level once, when torch loads, so it is set only around the import (a user's own wins).
    """
    ours = CPP_LOG_LEVEL not in os.environ
    if ours:
        os.environ[CPP_LOG_LEVEL] = "ERROR"
    try:
        # the rendezvous backends' modules (and so their loggers) are otherwise made on first use
        import torch.distributed.elastic.rendezvous.c10d_rendezvous_backend  # noqa: F401 - --standalone
        import torch.distributed.elastic.rendezvous.static_tcp_rendezvous  # noqa: F401 - several nodes
        import torch.distributed.run  # noqa: F401
    finally:
        if ours:
            del os.environ[CPP_LOG_LEVEL]  # the ranks inherit this process's environment


def quiet_agent_logs() -> None:
    """The agent's loggers at critical only. Each elastic module's logger has a level of its
    own (torch's ``get_logger``), so setting the parent's level alone would not do."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.run").setLevel(logging.ERROR)  # the OMP_NUM_THREADS=1 banner


def main(argv: list[str] | None = None) -> int:
    import_quietly()
    from torch.distributed.elastic.multiprocessing import SignalException  # torch: loaded on first use
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError  # torch: loaded on first use
    from torch.distributed.run import get_args_parser, run  # torch: loaded on first use

    allow_graceful_stop()
    quiet_agent_logs()
    args = get_args_parser().parse_args(argv)
    try:
        run(args)
    except ChildFailedError as failure:
        rank, first = failure.get_first_failure()
        if first.exitcode != WORKBENCH_ERROR_EXIT and first.exitcode not in STOP_EXITS:
            print(describe(rank, first.exitcode), file=sys.stderr)
        return exit_code_for(first.exitcode)
    except SignalException as stop:  # the ranks were stopped by it and have said so
        return exit_code_for(-int(stop.sigval))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
