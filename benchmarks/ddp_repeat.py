"""Clean DDP exits, counted: a two-process run (torchrun, gloo, CPU) trained and resumed N times.

Each repetition trains a tiny clm for 4 steps in two processes (`workbench run --gpus 2
--device cpu`), then resumes it to 6 steps, again in two processes. A rank whose process
group outlives the interpreter can abort at exit ("terminate called without an active
exception", exit 134) after a run that had finished. Prints, per repetition, the two exit
codes and seconds, then the totals: aborts, other non-zero exits. The bar is 0.

    nice python benchmarks/ddp_repeat.py            # 30 repetitions
    nice python benchmarks/ddp_repeat.py --runs 5   # a busy machine
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tiny corpus the tests write
ABORT = "terminate called without an active exception"


def one(workdir: Path, corpus: Path, index: int) -> list[tuple[int, bool, float, str]]:
    """(exit code, aborted, seconds, stderr tail) for the train and the resume of repetition ``index``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out, name = workdir / "runs", f"r{index:03d}"
    tiny = ["--corpus", str(corpus), "--device", "cpu", "--batch-size", "4", "--seq-len", "32", "--vocab-size", "300",
            "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--eval-batches", "2", "--log-interval", "1",
            "--eval-interval", "2", "--save-interval", "2", "--max-steps", "4", "--probe", "The dog"]
    commands = [["run", *tiny, "--out", str(out), "--name", name, "--gpus", "2", "--json"],
                ["run", "--resume", str(out / name), "--out", str(out), "--max-steps", "6", "--gpus", "2", "--json"]]
    results = []
    for args in commands:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=600)
        results.append((done.returncode, ABORT in done.stderr, time.perf_counter() - started, done.stderr[-400:]))
        if done.returncode:
            break
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="repetitions (default 30)")
    args = parser.parse_args()
    from conftest import write_story_corpus

    aborts = failures = 0
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ddp-repeat-") as tmp:
        workdir = Path(tmp)
        corpus = write_story_corpus(workdir / "stories.txt")
        for index in range(args.runs):
            results = one(workdir, corpus, index)
            aborts += sum(aborted for _, aborted, _, _ in results)
            failures += sum(code != 0 and not aborted for code, aborted, _, _ in results)
            shown = "  ".join(f"exit {code} in {seconds:.1f} s{' ABORT' if aborted else ''}" for code, aborted, seconds, _ in results)
            print(f"{index + 1:3d}/{args.runs}  train, resume: {shown}", flush=True)
            for code, _, _, tail in results:
                if code:
                    print("      " + tail.replace("\n", "\n      "), flush=True)
    print(f"repetitions {args.runs}: aborts ({ABORT!r}) {aborts}, other non-zero exits {failures}; "
          f"load average at end: {os.getloadavg()}")
    raise SystemExit(1 if aborts or failures else 0)


if __name__ == "__main__":
    main()
