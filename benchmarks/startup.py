"""Start-up time of the CLI, each figure the median of several fresh processes (wall time).

* ``workbench --help`` (goal: at most 0.5 s);
* ``workbench runs`` listing 20 run directories (goal: at most 1.0 s);
* ``workbench run --json`` (the default experiment) until its first ``step`` event, against a
  minimal nanoGPT-style script that imports torch and transformers, builds the same tiny
  GPT-2, evaluates it on as many batches as the run's step-0 eval (nanoGPT's ``train.py``
  also estimates the loss before its first step) and runs one optimizer step on the same
  batch shape (goal: a ratio of at most 1.3). The script reads no corpus and trains no
  tokenizer, so the ratio also counts what the workbench does that it does not.

The load average is printed with the figures: on a shared machine they move with it.

    python benchmarks/startup.py [--repeats 5] [--max-steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbench.config import RunSpec
from workbench.models import PRESETS
from workbench.runs.events import EvalDone, RunFinished, RunStarted, StepLogged
from workbench.runs.rundir import MetricsWriter, RunDir

WORKBENCH = [sys.executable, "-m", "workbench"]

BASELINE = """
import sys, time, json
import torch
from transformers import GPT2Config, GPT2LMHeadModel
shape = json.loads(sys.argv[1])
p = shape["preset"]
config = GPT2Config(vocab_size=shape["vocab"], n_embd=p["hidden"], n_layer=p["layers"], n_head=p["heads"],
                    n_inner=p["ffn"], n_positions=max(512, shape["seq_len"]), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
torch.manual_seed(0)
model = GPT2LMHeadModel(config).to(shape["device"]).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
batch = torch.randint(0, shape["vocab"], (shape["batch_size"], shape["seq_len"]), device=shape["device"])
model.eval()
with torch.no_grad():
    for _ in range(shape["eval_batches"]):
        model(input_ids=batch, labels=batch)
model.train()
loss = model(input_ids=batch, labels=batch).loss
loss.backward()
optimizer.step()
print("STEP", float(loss), flush=True)
"""
"""The hand-written reference: everything a first step needs and nothing else."""


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def write_fake_runs(root: Path, count: int) -> None:
    """``count`` finished runs with the files a real one has (run.toml, metrics, status, summary)."""
    for i in range(count):
        name = f"clm-general-{i:02d}"
        run = RunDir(root / name)
        run.path.mkdir(parents=True)
        run.write_run_toml(RunSpec(name=name, max_steps=200), {"created": 1_700_000_000.0 + i})
        writer = MetricsWriter(run.metrics)
        writer(RunStarted(run_dir=str(run.path), name=name, objective="clm", corpus="general", total_steps=200,
                          parameters=898_432, device="cpu", precision="fp32"))
        for step in range(10, 201, 10):
            writer(StepLogged(step=step, total_steps=200, loss=8.0 - step / 50, lr=1e-3, tokens=step * 2048,
                              tokens_per_s=2000.0, elapsed_s=step / 10, eta_s=(200 - step) / 10))
            if step % 50 == 0:
                writer(EvalDone(step=step, eval_loss=8.0 - step / 40, perplexity=100.0))
        writer(RunFinished(status="finished", step=200, run_dir=str(run.path), model_dir=str(run.model_dir)))
        writer.close()
        run.write_status("finished")
        run.write_summary({"status": "finished", "steps": 200, "eval_loss_after": 3.0})


def first_line_with(command: list[str], wanted: str) -> tuple[float, list[str]]:
    """Seconds from starting ``command`` to the first stdout line containing ``wanted``; the lines
    up to it. The process is killed there: what it does afterwards is not start-up."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if wanted in line:
                return time.perf_counter() - start, lines
        raise RuntimeError(f"{' '.join(command)} ended (code {process.wait()}) before printing {wanted!r}")
    finally:
        process.kill()
        process.wait()


def run_to_first_step(max_steps: int) -> tuple[float, float, dict]:
    """Seconds to the `started` and the first `step` event of the default experiment, and the started event."""
    with tempfile.TemporaryDirectory() as out:
        command = [*WORKBENCH, "run", "--json", "--max-steps", str(max_steps), "--log-interval", "1", "--out", out]
        seconds, lines = first_line_with(command, '"event": "step"')
    events = [json.loads(line) for line in lines if line.startswith("{")]
    started = next(e for e in events if e["event"] == "started")
    started_after = seconds - (events[-1]["time"] - started["time"])
    return seconds, started_after, started


def baseline_shape(started: dict) -> dict:
    spec = started["spec"]
    return {"preset": PRESETS[spec["size"]], "vocab": spec["vocab_size"], "batch_size": spec["batch_size"],
            "seq_len": spec["seq_len"], "device": started["device"], "eval_batches": spec["eval_batches"]}


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")

    help_s = median([wall_time([*WORKBENCH, "--help"]) for _ in range(args.repeats)])
    print(f"workbench --help            {help_s:6.2f} s   (goal <= 0.5 s)")

    with tempfile.TemporaryDirectory() as root:
        write_fake_runs(Path(root), 20)
        runs_s = median([wall_time([*WORKBENCH, "runs", "--out", root]) for _ in range(args.repeats)])
    print(f"workbench runs (20 runs)    {runs_s:6.2f} s   (goal <= 1.0 s)")

    firsts, starts, baselines = [], [], []
    for _ in range(args.repeats):  # alternating, so both see the same load
        first, started_after, started = run_to_first_step(args.max_steps)
        firsts.append(first)
        starts.append(started_after)
        shape = json.dumps(baseline_shape(started))
        baselines.append(first_line_with([sys.executable, "-c", BASELINE, shape], "STEP")[0])
    ratio = median(firsts) / median(baselines)
    print(f"workbench run: first step   {median(firsts):6.2f} s   (its `started` event at {median(starts):.2f} s; "
          f"device {started['device']}, batch {started['spec']['batch_size']}x{started['spec']['seq_len']})")
    print(f"minimal script: eval + step {median(baselines):6.2f} s")
    print(f"ratio                       {ratio:6.2f}     (goal <= 1.3)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
