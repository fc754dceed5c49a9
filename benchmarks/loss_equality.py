"""Per-step losses of a few short runs, recorded at one revision and compared with another.

Runs ``workbench run --json`` (a subprocess, so any revision's CLI works) for 20-step tiny
``clm``, ``mlm`` and ``nsp`` runs on the built-in ``general`` corpus, then a 10-step LoRA
``generation`` fine-tune of the ``clm`` run (which also exercises the forgetting check),
and keeps every training step's loss and every eval's loss (``split`` ``eval`` and
``base_eval``). A refactor that must not change the numbers is checked by comparing two
recordings: equality is exact (same floats), not a tolerance.

    python benchmarks/loss_equality.py record /tmp/before.json --rev 07ddf94
    python benchmarks/loss_equality.py record /tmp/after.json            # the working tree
    python benchmarks/loss_equality.py compare /tmp/before.json /tmp/after.json

``--rev`` exports that revision with ``git archive`` into a temporary folder (the
repository's worktrees and branches are not touched) and runs its code from there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = (
    ("clm", ["--objective", "clm", "--max-steps", "20"]),
    ("mlm", ["--objective", "mlm", "--max-steps", "20"]),
    ("nsp", ["--objective", "nsp", "--max-steps", "20"]),
    ("generation-lora", ["--objective", "generation", "--method", "lora", "--max-steps", "10", "--base", "{clm}"]),
)


def run_one(code: Path, out: Path, name: str, flags: list[str], bases: dict[str, str]) -> tuple[dict, str]:
    """One run's losses, and its run directory (a later run may fine-tune it)."""
    args = [f.format(**bases) for f in flags]
    cmd = [sys.executable, "-m", "workbench", "run", *args, "--log-interval", "1", "--json", "--out", str(out), "--name", name]
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    losses = {
        "steps": [e["loss"] for e in events if e["event"] == "step"],
        "eval": [[e["step"], e["eval_loss"]] for e in events if e["event"] == "eval" and e.get("split", "eval") == "eval"],
        "base_eval": [[e["step"], e["eval_loss"]] for e in events if e["event"] == "eval" and e.get("split") == "base_eval"],
    }
    return losses, str(out / name)


def record(rev: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="loss-equality-") as tmp:
        code = ROOT
        if rev:
            code = Path(tmp) / "code"
            code.mkdir()
            archive = Path(tmp) / "rev.tar"
            subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(code)
        result: dict = {"revision": rev or "working tree", "runs": {}}
        bases: dict[str, str] = {}
        for name, flags in RUNS:
            losses, run_dir = run_one(code, Path(tmp) / "runs", name, flags, bases)
            bases[name] = run_dir
            result["runs"][name] = losses
            print(f"{name}: {len(losses['steps'])} steps, final train loss {losses['steps'][-1]:.6f}, "
                  f"final eval loss {losses['eval'][-1][1]:.6f}", flush=True)
        return result


def compare(a: dict, b: dict) -> int:
    """Prints each run's verdict; returns the number of runs whose losses differ."""
    differing = 0
    for name in a["runs"]:
        left, right = a["runs"][name], b["runs"].get(name)
        if left == right:
            print(f"{name}: identical ({len(left['steps'])} step losses, {len(left['eval'])} evals, "
                  f"{len(left['base_eval'])} base evals)")
            continue
        differing += 1
        print(f"{name}: DIFFERENT")
        for key in ("steps", "eval", "base_eval"):
            lv, rv = left[key], (right or {}).get(key)
            if lv != rv:
                print(f"  {key}: {a['revision']}: {lv}\n  {key}: {b['revision']}: {rv}")
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the runs and write their losses to a JSON file")
    rec.add_argument("path", type=Path)
    rec.add_argument("--rev", default=None, help="git revision to run (default: the working tree)")
    cmp_ = sub.add_parser("compare", help="compare two recordings; exit 1 if any loss differs")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        args.path.write_text(json.dumps(record(args.rev), indent=1))
        print(f"wrote {args.path}")
    else:
        differing = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
        sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
