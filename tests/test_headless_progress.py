"""Progress without a terminal: one flushed line per log interval and per eval (``nohup ... >
log``, CI); on a terminal, the bar's ETA is the engine's and its last frame is the last step."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, tiny_overrides, write_story_corpus
from rich.console import Console

from workbench.console import PlainPrinter, RichPrinter
from workbench.runs.events import EvalDone, Message, RunFinished, RunStarted, StepLogged


def started(total_steps: int = 30, time_budget_s: float | None = None) -> RunStarted:
    return RunStarted(run_dir="/runs/r", name="r", objective="clm", corpus="general", total_steps=total_steps,
                      parameters=10**5, device="cpu", precision="fp32", time_budget_s=time_budget_s,
                      spec={"max_steps": total_steps or None, "lr": 1e-3, "batch_size": 8})


def step(number: int, total: int = 30, eta_s: float = 70.0, elapsed_s: float = 5.0) -> StepLogged:
    return StepLogged(step=number, total_steps=total, loss=5.12345, lr=1.9e-3, tokens=1000, tokens_per_s=2345.0,
                      elapsed_s=elapsed_s, eta_s=eta_s)


def finished(number: int, status: str = "stopped") -> RunFinished:
    return RunFinished(status=status, step=number, run_dir="/runs/r", model_dir="/runs/r/model",
                       summary={"steps": number, "eval_loss_before": 6.0, "eval_loss_after": 5.0,
                                "inspect_command": "workbench inspect /runs/r"})


def plain_lines(*events) -> list[str]:
    stream = io.StringIO()
    printer = PlainPrinter(stream, width=100)
    for event in events:
        printer(event)
    return stream.getvalue().splitlines()


def test_plain_lines_say_step_loss_lr_rate_and_eta() -> None:
    lines = plain_lines(started(), Message(text="Training a [bpe] tokenizer"), step(10),
                        EvalDone(step=10, eval_loss=4.5, perplexity=90.0, examples=8, fraction=0.5, coverage="sample"),
                        step(20, eta_s=35.0), finished(20, "finished"))
    assert "Training a [bpe] tokenizer" in lines  # a message's text is not markup
    assert "step 10/30  loss 5.1235  lr 1.9e-03  2.3k tok/s  ETA 0:01:10" in lines
    assert "step 20/30  loss 5.1235  lr 1.9e-03  2.3k tok/s  ETA 0:00:35" in lines
    assert "eval step 10: loss 4.5000 (sample 50%)  ppl 90.00" in lines
    text = "\n".join(lines)
    assert "Run finished" in text and "6.0000 -> 5.0000" in text and "workbench inspect /runs/r" in text
    assert "\x1b[" not in text  # no colours in a log file


def test_plain_lines_with_a_time_budget_say_the_estimate_and_the_time_left() -> None:
    lines = plain_lines(started(total_steps=0, time_budget_s=60.0), step(20, total=400, eta_s=48.0, elapsed_s=12.0))
    assert "until 1m00s of training (time budget)" in "\n".join(lines)
    assert "step 20 (~400 est.)  loss 5.1235  lr 1.9e-03  2.3k tok/s  48s left" in lines


def test_the_bar_shows_the_engines_eta_and_ends_on_the_last_step() -> None:
    stream = io.StringIO()
    printer = RichPrinter(Console(file=stream, force_terminal=False, width=160))
    printer(started(total_steps=600))
    task = printer.progress.tasks[0]
    assert task.fields["eta"] == "-"
    printer(step(330, total=600, eta_s=70.0))
    assert task.fields["eta"] == "0:01:10" and task.fields["where"] == "step 330/600"
    printer(finished(338))  # stopped between two logs
    assert task.completed == 338 and task.fields["where"] == "step 338/600"
    assert "step 338/600" in stream.getvalue() and "step 330/600" not in stream.getvalue()


def test_the_bar_with_a_time_budget_shows_the_budget_left_as_its_eta() -> None:
    printer = RichPrinter(Console(file=io.StringIO(), force_terminal=False, width=160))
    printer(started(total_steps=0, time_budget_s=60.0))
    printer(step(20, total=400, eta_s=48.0, elapsed_s=12.0))
    task = printer.progress.tasks[0]
    assert task.fields["eta"] == "0:00:48" and task.fields["where"] == "step 20 (~400 est.)" and task.completed == 12.0
    printer(finished(97, "finished"))
    assert task.fields["where"] == "step 97" and task.completed == 60.0


@pytest.mark.slow  # a run in a process of its own
def test_piped_run_prints_each_interval_while_it_runs(tmp_path: Path) -> None:
    """``workbench run ... | cat``: the step lines arrive as the run goes, not all at its end."""
    corpus = write_story_corpus(tmp_path / "stories.txt", documents=60)
    out = tmp_path / "runs"
    o = tiny_overrides()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    env.pop("PYTHONUNBUFFERED", None)  # the printer must flush by itself
    args = ["run", "--corpus", str(corpus), "--objective", "clm", "--max-steps", "30", "--log-interval", "10",
            "--eval-interval", "20", "--name", "piped", "--device", "cpu", "--out", str(out),
            "--batch-size", str(o["batch_size"]), "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]),
            "--eval-batches", str(o["eval_batches"])]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=stderr)
        lines, running_at_step_10 = [], None
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("step 10/30") and running_at_step_10 is None:
                status = json.loads((out / "piped" / "status.json").read_text())["status"]
                running_at_step_10 = proc.poll() is None and status == "running"
        code = proc.wait(timeout=300)
    assert code == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["10/30", "20/30", "30/30"], lines
    assert all(" loss " in line and " lr " in line and " tok/s " in line and " ETA " in line for line in steps)
    assert any(line.startswith("eval step 20: loss ") for line in lines), lines
    assert running_at_step_10, "the line for step 10 came only once the run was over"
    finished_at = next(i for i, line in enumerate(lines) if "Run finished" in line)
    assert lines.index(steps[0]) < finished_at


def test_a_closed_pipe_does_not_stop_the_run() -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    printer = PlainPrinter(ClosedPipe())
    for event in (started(), step(10), finished(30, "finished")):
        printer(event)  # nothing raised: the lines are lost, the training is not
    assert printer.closed
