"""Several processes: the ``--gpus N`` launcher (torchrun) and what ranks must agree on.

``workbench run --gpus N`` re-runs the same spec as ``python -m workbench.runs.torchrun
--nproc-per-node N -m workbench run --config SPEC.toml`` (torchrun, quieter on failure). Accelerate's ``prepare`` wraps the
model in DDP in each process; the runner slices each global batch by rank; only rank 0
writes the run directory (metrics, probes, checkpoints, the final model).

The data order is a function of (seed, step, global batch) only, so a run resumed with a
different number of processes continues the same sample sequence: the runner keeps the
global batch recorded in the checkpoint and splits it over however many ranks there are
now (it must divide evenly).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from workbench.config import RunSpec
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import SpecError, TrainingError
from workbench.runs.rundir import RunDir, find_run, new_run_dir

PATH_BYTES = 4096
"""Room for the run directory's path when rank 0 broadcasts it (a fixed-size tensor)."""


# ---------------------------------------------------------------------- inside the ranks
def shared_run_dir(accelerator: Any, out: str, name: str) -> RunDir:
    """Rank 0 creates ``out/name`` (with a suffix if taken) and every rank learns its path.

    The path travels as a byte tensor through ``broadcast`` rather than as a pickled object,
    so nothing is unpickled, and it works on gloo (CPU) and NCCL (GPU) alike.
    """
    run_dir = new_run_dir(out, name) if accelerator.is_main_process else None
    if accelerator.num_processes == 1:
        assert run_dir is not None
        return run_dir
    from accelerate.utils import broadcast  # accelerate: loaded on first use

    buffer = torch.zeros(PATH_BYTES, dtype=torch.uint8, device=accelerator.device)
    if run_dir is not None:
        encoded = str(run_dir.path).encode("utf-8")
        if len(encoded) > PATH_BYTES:
            raise TrainingError(f"the run directory path is longer than {PATH_BYTES} bytes", fix="use a shorter --out")
        buffer[: len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    buffer = broadcast(buffer, from_process=0)
    raw = bytes(buffer.cpu().tolist()).rstrip(b"\0")
    return run_dir if run_dir is not None else RunDir(Path(raw.decode("utf-8")))


def sum_across_ranks(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    """Add up per-rank metric sums whose keys may differ between ranks (one rank saw no
    entity of some type). The dicts travel as JSON bytes in padded tensors: no pickles."""
    from accelerate.utils import gather  # accelerate: loaded on first use

    device = accelerator.device
    encoded = json.dumps(values).encode("utf-8")
    longest = int(gather(torch.tensor([len(encoded)], device=device)).max())
    buffer = torch.zeros(max(1, longest), dtype=torch.uint8, device=device)
    buffer[: len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    rows = gather(buffer).view(accelerator.num_processes, -1).cpu()
    total: dict[str, float] = {}
    for row in rows:
        text = bytes(row.tolist()).rstrip(b"\0").decode("utf-8")
        for key, value in (json.loads(text) if text else {}).items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


def any_rank(accelerator: Any, *flags: bool) -> tuple[bool, ...]:
    """Each flag is true on every rank when it is true on any (one all-reduce, max)."""
    values = torch.tensor([float(flag) for flag in flags], device=accelerator.device)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())


OOM_FILE = "oom.json"
"""Written by a rank other than 0 that ran out of memory: the micro-batch a resume should use."""


def record_oom(run_dir: RunDir, micro_batch: int, *, step: int, rank: int) -> None:
    path = run_dir.path / OOM_FILE
    tmp = path.with_name(f".{OOM_FILE}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"micro_batch": micro_batch, "step": step, "rank": rank}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # another node's disk, or a full one: the error message still names the fix


def recorded_oom_micro_batch(run_dir: RunDir | None) -> int | None:
    """The micro-batch an earlier out-of-memory asked for, if any (read on resume)."""
    if run_dir is None:
        return None
    try:
        value = json.loads((run_dir.path / OOM_FILE).read_text(encoding="utf-8"))["micro_batch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value >= 1 else None


def global_batch_for(state: dict[str, Any], fresh_global_batch: int, world: int) -> int:
    """The global batch to keep: the checkpoint's on a resume (any world size), else the spec's."""
    if "global_batch" in state:
        recorded = int(state["global_batch"])
    elif {"batch_size", "grad_accum", "world_size"} <= state.keys() and state["batch_size"]:
        recorded = int(state["batch_size"]) * int(state["grad_accum"]) * int(state["world_size"])
    else:
        return fresh_global_batch
    if recorded % world:
        raise TrainingError(
            f"the run's global batch of {recorded} sequences cannot be split evenly over {world} processes",
            fix=f"resume with a number of processes that divides {recorded}",
        )
    return recorded


def leave_process_group(failure: BaseException | None) -> None:
    """Tear the process group down as a rank ends, so no gloo/NCCL thread outlives the
    interpreter (at exit such a thread aborts the process: "terminate called without an
    active exception", exit 134 after a run that had finished).

    A clean end (``failure`` None: finished, or stopped where every rank agreed): a barrier,
    so no rank leaves while another still exchanges with it, then ``destroy_process_group``.
    A failed end only when a peer is gone on gloo: its connections are closed, so nothing in
    flight can wait. A rank that failed alone (out of memory, a full disk) while its peers
    wait in a collective leaves the group to process exit: tearing it down would wait for
    collectives the peers never finish, up to the group's timeout (minutes). torchrun then
    stops the other ranks.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    if failure is not None and not (dist.get_backend() == "gloo" and _peer_lost(failure)):
        return
    try:
        if failure is None:
            dist.barrier()
    except Exception:  # noqa: BLE001 - a peer died after the last step: the run is saved, leave anyway
        pass
    dist.destroy_process_group()


def peer_host(error: BaseException) -> str:
    """" on HOST" for the peer a gloo error names ("Connection closed by peer [HOST]:PORT",
    "Read error [HOST]:PORT: Connection reset by peer"), else ""."""
    found = re.search(r"\[([0-9A-Za-z.:%-]+)\]:\d+", str(error))
    return f" on {found.group(1)}" if found else ""


def _peer_lost(failure: BaseException) -> bool:
    """Whether ``failure``, or what it was raised from (the runner's one-line error keeps the
    collective's error as its context), says another rank is gone."""

    seen: BaseException | None = failure
    for _ in range(8):
        if seen is None:
            return False
        if lost_a_peer(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# ---------------------------------------------------------------------- the launcher
def torchrun_command(
    child_args: list[str],
    *,
    gpus: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """``python -m workbench.runs.torchrun ... -m workbench run CHILD_ARGS``: torchrun's own
    ``run`` with its crash report replaced by an exit code (see ``workbench/runs/torchrun.py``).

    One node uses ``--standalone`` (a free local rendezvous port, so parallel CI jobs never
    collide on 29500). Several nodes use torchrun's static rendezvous at ``HOST:PORT``
    (``--master-addr``/``--master-port``): ranks follow ``--node-rank``, so node 0, which
    must be HOST, holds global rank 0 and the run directory (the c10d backend would hand
    out ranks in joining order instead).
    """
    command = [sys.executable, "-m", "workbench.runs.torchrun", f"--nproc-per-node={gpus}"]
    if nnodes == 1:
        command.append("--standalone")
    else:
        host, _, port = (rdzv_endpoint or "").rpartition(":")
        if not host or not port.isdigit():
            raise SpecError("several nodes need a meeting point", fix="pass --rdzv-endpoint HOST:PORT (node 0's address, the same on every node)")
        if not 0 <= node_rank < nnodes:
            raise SpecError(f"--node-rank {node_rank} is outside 0..{nnodes - 1}", fix="number the nodes 0 to --nnodes minus 1")
        command += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
    return command + ["-m", "workbench", "run", *child_args]


def check_gpus(gpus: int, device: str) -> None:
    if gpus < 1:
        raise SpecError(f"--gpus must be at least 1, got {gpus}")
    if device == "cpu":
        return  # CPU processes on the gloo backend: a test or a dry run
    available = torch.cuda.device_count()
    if available < gpus:
        raise TrainingError(
            f"--gpus {gpus}, but {available} CUDA GPU(s) are visible",
            fix=f"pass --gpus {available} or fewer" if available else "use a GPU machine, or --device cpu to test with CPU processes",
        )


def launch(
    spec: RunSpec | None,
    *,
    resume: str | None = None,
    out: str | None = None,
    gpus: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    child_flags: Sequence[str] = (),
) -> int:
    """Run ``spec`` (or resume a run) in ``gpus`` processes per node; returns torchrun's exit code.

    The spec is resolved here (so a bad flag fails before any process starts, and every rank
    gets the same run name) and handed to the ranks as a TOML file. ``child_flags`` go to
    every rank's ``workbench run`` as they are (``--json``, a resume's ``--max-steps N``...).
    """
    if resume is not None:
        run_dir = find_run(resume, out=out or "checkpoints")
        device = run_dir.spec().device
    else:
        assert spec is not None
        resolved, _ = resolve_spec(spec)
        spec, device = resolved.as_run_spec(), resolved.runtime.device
    check_gpus(gpus, device)
    with tempfile.TemporaryDirectory(prefix="workbench-launch-") as folder:
        if resume is not None:
            child = ["--resume", str(run_dir.path), "--out", out or "checkpoints"]
        else:
            spec_file = Path(folder) / "spec.toml"
            spec_file.write_text(spec.to_toml(), encoding="utf-8")
            child = ["--config", str(spec_file)]
        command = torchrun_command([*child, *child_flags], gpus=gpus, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        # torchrun and the ranks get a session of their own, so a terminal's Ctrl-C reaches
        # them once, through this launcher and torchrun, and not also directly (a rank takes
        # a second signal as "exit now, skip the checkpoint").
        process = subprocess.Popen(command, env=env, start_new_session=True)
        # A signal this launcher ignores (SIGHUP under nohup) stays ignored: the ranks have
        # their own sessions, so they only see what is forwarded.
        forwarded = [sig for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                     if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN]
        previous = {sig: signal.signal(sig, lambda signum, _frame: process.send_signal(signum)) for sig in forwarded}
        try:
            return process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


PEER_LOST_MARKERS = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted", "Broken pipe")


def lost_a_peer(exc: BaseException) -> bool:
    """A collective failed because another rank died (gloo says so at once; NCCL may instead
    block until torchrun stops this process)."""
    dist_error = getattr(torch.distributed, "DistNetworkError", None)
    return (dist_error is not None and isinstance(exc, dist_error)) or any(m in str(exc) for m in PEER_LOST_MARKERS)
