"""One sweep on two "machines" through a real PostgreSQL (``--storage postgresql://...``):
two `workbench sweep` processes, each with its own sweep folder, share the study's trials,
every trial runs once; a worker killed mid-trial leaves its trial to its own machine's
``--resume``, which finishes it from its checkpoint; a different sweep under the same name
is refused with one line. The server is the throwaway one of ``postgres.py``."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faults_helpers import subprocess_env, workbench_cmd
from postgres import postgres_url  # noqa: F401 - the fixture
from test_sweep_processes import flags, started_events

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")]

GRID = ["--grid", "lr=1e-3,3e-3", "--grid", "d_model=16,32"]
STEPS = 16


def sweep(corpus: Path, out: Path, url: str, *extra: str) -> subprocess.Popen:
    args = [*flags(corpus, out, "shared", steps=STEPS), "--save-interval", "4", "--eval-interval", "8", "--no-prune", *GRID]
    return subprocess.Popen(workbench_cmd("sweep", *args, "--storage", url, *extra), cwd=out.parent, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def study_trials(url: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="shared", storage=url).get_trials()


def mid_trial(folder: Path) -> Path | None:
    """A trial of this machine with a checkpoint, still running."""
    for trial in sorted(folder.glob("t*")):
        status = trial / "status.json"
        running = status.is_file() and json.loads(status.read_text() or "{}").get("status") == "running"
        if running and any((trial / "checkpoints").glob("step-*/MANIFEST.json")):
            return trial
    return None


def test_two_machines_share_one_postgres_study_a_killed_trial_resumes_and_another_sweep_is_refused(story_corpus: Path, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    machines = [tmp_path / "a" / "sweeps", tmp_path / "b" / "sweeps"]
    for out in machines:
        out.mkdir(parents=True)
    first, second = (sweep(story_corpus, out, postgres_url) for out in machines)
    deadline = time.monotonic() + 300
    while (killed := mid_trial(machines[0] / "shared")) is None:
        if first.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"machine a never got mid-trial: {first.communicate(timeout=30)}")
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # the worker dies mid-trial, its checkpoint on disk
    first.wait()
    out, err = second.communicate(timeout=400)
    assert second.returncode == 0, out + err

    trials = {t.number: t for t in study_trials(postgres_url)}
    assert sorted(trials) == [0, 1, 2, 3]  # the grid, never a trial more
    assert trials[int(killed.name[1:])].state.name == "RUNNING"
    assert {t.state.name for n, t in trials.items() if n != int(killed.name[1:])} == {"COMPLETE"}

    resumed = subprocess.run(workbench_cmd("sweep", "--resume", str(machines[0] / "shared"), "--storage", postgres_url),
                             cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = study_trials(postgres_url)
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted((t.params["lr"], t.params["d_model"]) for t in trials) == [(1e-3, 16), (1e-3, 32), (3e-3, 16), (3e-3, 32)]
    owners = {t.number: t.user_attrs["owner"]["pid"] for t in trials}
    assert second.pid in owners.values() and owners[int(killed.name[1:])] not in (first.pid, second.pid)  # a's resume took it

    # Every trial ran on exactly one machine, once; the killed one continued from its checkpoint.
    ran = [trial for out in machines for trial in (out / "shared").glob("t*") if (trial / "metrics.jsonl").is_file()]
    assert sorted(trial.name for trial in ran) == ["t000", "t001", "t002", "t003"]
    for trial in ran:
        starts = [e["resumed_from_step"] for e in started_events(trial)]
        assert starts[0] == 0 and (len(starts) == 1 if trial != killed else len(starts) == 2 and 0 < starts[1] < STEPS), trial
    assert json.loads((killed / "status.json").read_text())["status"] == "finished"

    # A third machine whose sweep differs (another grid), under the same name: one line, nothing trained.
    other = tmp_path / "c" / "sweeps"
    other.mkdir(parents=True)
    args = [*flags(story_corpus, other, "shared", steps=STEPS), "--no-prune", "--grid", "lr=1e-3,1e-2"]
    done = subprocess.run(workbench_cmd("sweep", *args, "--storage", postgres_url), cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds a different sweep" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert not any((other / "shared").glob("t*")) and len(study_trials(postgres_url)) == 4
