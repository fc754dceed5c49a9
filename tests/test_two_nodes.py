"""Two torchrun nodes on one machine: two `workbench run --nnodes 2 --node-rank 0|1
--rdzv-endpoint 127.0.0.1:PORT` launchers (gloo, CPU, one process each) meet at node 0's
rendezvous, train the losses of one process on the same global batch, and write one run
directory (global rank 0's, on node 0). A node that dies (SIGKILL, as a machine lost) stops
node 0 with one line and its checkpoint kept; one process resumes from that checkpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_scale_ddp import GLOBAL_BATCH, STEPS, spec_values, step_losses

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.runs.checkpoint import complete_checkpoints

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc").is_dir(), reason="torchrun nodes and their processes: Linux")]

HOLD = textwrap.dedent('''
    import os, time
    if os.environ.get("RANK") == "1" and os.environ.get("HOLD_AT_STEP"):
        from workbench.lean_gpt2 import LeanGPT2

        original, calls = LeanGPT2.forward, [0]

        def forward(self, *args, **kwargs):
            if self.training:
                calls[0] += 1
                if calls[0] == int(os.environ["HOLD_AT_STEP"]):  # this node "hangs" until the test kills it
                    open(os.environ["HOLD_MARKER"], "w").close()
                    time.sleep(600)
            return original(self, *args, **kwargs)

        LeanGPT2.forward = forward

    import sys
    if os.environ.get("EXIT_BARRIER_DELAY") and "--node-rank=1" in sys.argv and not os.environ.get("RANK"):
        # node 1's torchrun agent checks in at the exit barrier, then waits this long before
        # waiting on it: node 0's agent, which hosts the store, has left by then (the race a
        # loaded machine gives now and then, made certain). Patched once torch imports the
        # module, so torch still loads when and how the agent chooses.
        import importlib.abc, importlib.util

        class DelayExitBarrier(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name != "torch.distributed.elastic.utils.store":
                    return None
                sys.meta_path.remove(self)
                spec = importlib.util.find_spec(name)
                run_module = spec.loader.exec_module

                def exec_module(module):
                    run_module(module)
                    check_in = module._barrier_nonblocking

                    def late(*args, **kwargs):
                        key = check_in(*args, **kwargs)
                        time.sleep(float(os.environ["EXIT_BARRIER_DELAY"]))
                        return key

                    module._barrier_nonblocking = late

                spec.loader.exec_module = exec_module
                return spec

        sys.meta_path.insert(0, DelayExitBarrier())
''')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_nodes(config: Path, tmp_path: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    endpoint = f"127.0.0.1:{free_port()}"
    return [subprocess.Popen([sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "1", "--nnodes", "2",
                              "--node-rank", str(rank), "--rdzv-endpoint", endpoint, "--json"],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True) for rank in (0, 1)]


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren... (Linux /proc)."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for child in children for d in descendants(child)]


def kill_node(launcher: subprocess.Popen) -> None:
    """SIGKILL a node's launcher, its torchrun agent and its rank at once: a machine lost."""
    for pid in [launcher.pid, *descendants(launcher.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launcher.wait()


def finish(nodes: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    try:
        return [node.communicate(timeout=timeout)[1] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                kill_node(node)


def test_two_nodes_match_one_process_then_a_lost_node_stops_node_0_and_one_process_resumes(story_corpus: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    single = TrainingRun(RunSpec(**spec_values(story_corpus, runs, "single", GLOBAL_BATCH // 2, grad_accum=2))).run()
    expected = step_losses(single.run_dir)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(HOLD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])}

    # Both nodes are given the same --out: rank 0 (node 0) makes one run directory, node 1 none.
    config = tmp_path / "nodes.toml"
    config.write_text(RunSpec(**spec_values(story_corpus, runs, "nodes", GLOBAL_BATCH // 2)).to_toml())
    nodes = start_nodes(config, tmp_path, {**env, "EXIT_BARRIER_DELAY": "2"})  # node 0's agent, the store's host, leaves first
    stderrs = finish(nodes)
    assert [node.returncode for node in nodes] == [0, 0], stderrs
    assert stderrs == ["", ""], stderrs  # a clean end says nothing: no store warning, no traceback
    assert sorted(p.name for p in runs.iterdir()) == ["nodes", "single"]
    found = step_losses(runs / "nodes")
    assert sorted(found) == list(range(1, STEPS + 1))
    for step, loss in expected.items():
        assert found[step] == pytest.approx(loss, rel=1e-4), f"step {step}"

    # Node 1 hangs in step 4's forward, then is killed whole: node 0 stops with one line.
    config.write_text(RunSpec(**spec_values(story_corpus, runs, "lost", GLOBAL_BATCH // 2)).to_toml())
    marker = tmp_path / "held"
    nodes = start_nodes(config, tmp_path, {**env, "HOLD_AT_STEP": "4", "HOLD_MARKER": str(marker)})
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert all(node.poll() is None for node in nodes) and time.monotonic() < deadline, finish(nodes, 5)
        time.sleep(0.1)
    kill_node(nodes[1])
    (stderr,) = finish(nodes[:1])
    lines, run_dir = stderr.strip().splitlines(), runs / "lost"
    assert nodes[0].returncode == 2, stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "stopped at step 3: lost contact with another process of this run on 127.0.0.1" in lines[0], lines[0]
    assert f"resume with `workbench run --resume {run_dir}" in lines[0]
    assert [p.name for p in complete_checkpoints(run_dir / "checkpoints")] == ["step-0000003"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"

    resumed = resume_run(run_dir, out=str(runs))  # one process, the global batch of 8 as two micro-batches
    assert resumed.step == STEPS
    losses = step_losses(run_dir)
    for step, loss in expected.items():
        assert losses[step] == pytest.approx(loss, rel=1e-4), f"step {step}"
