"""Hostile and careless use, case by case, through the real CLI in subprocesses.

Each case damages a copy of a real tiny run (or writes a bad spec), runs one `workbench`
command, and is judged on what a user sees and keeps: the exit code, whether stderr holds a
traceback, whether it hung, and whether any checkpoint or model file that existed before is
gone (files moved to ``checkpoints/.rejected/`` count as kept). ``benchmarks/faults.py``
prints the table; the tests beside it check each case on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from faults_helpers import subprocess_env, workbench_cmd

TIMEOUT_S = 240
BASE_FLAGS = ["--max-steps", "4", "--save-interval", "2", "--eval-interval", "2", "--batch-size", "4", "--seq-len", "32",
              "--vocab-size", "300", "--eval-batches", "1", "--keep-checkpoints", "4"]


@dataclass
class Case:
    category: str
    name: str
    command: Callable[[Path, Path], list[str]]
    """(the damaged run, a scratch folder) -> workbench arguments."""
    damage: Callable[[Path, Path], None] = lambda run, scratch: None
    ok_exits: tuple[int, ...] = (2,)
    memory_limit: int | None = None
    """Bytes of address space the command may take (``RLIMIT_AS``): a case that tries a huge
    model fails inside its own process, never the machine's."""


@dataclass
class Outcome:
    case: Case
    exit_code: int | None
    traceback: bool
    hung: bool
    lost: list[str]
    stderr_tail: str

    @property
    def passed(self) -> bool:
        return not self.hung and not self.traceback and not self.lost and self.exit_code in self.case.ok_exits


# ---------------------------------------------------------------------------- damage
def edit_json(path: Path, change: Callable[[object], object]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")


def every_state(run: Path, change: Callable[[dict], dict]) -> None:
    for folder in sorted((run / "checkpoints").glob("step-*")):
        edit_json(folder / "trainer_state.json", change)


def flip_bytes(path: Path) -> None:
    """Same size, different content: a size check cannot see it."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def append_line(name: str, line: bytes) -> Callable[[Path, Path], None]:
    def damage(run: Path, scratch: Path) -> None:
        with (run / name).open("ab") as handle:
            handle.write(line + b"\n")
    return damage


def replace_in_run_toml(old: str, new: str) -> Callable[[Path, Path], None]:
    def damage(run: Path, scratch: Path) -> None:
        text = (run / "run.toml").read_text(encoding="utf-8")
        assert old in text, old
        (run / "run.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return damage


def spec_file(scratch: Path, body: str) -> Path:
    path = scratch / "spec.toml"
    path.write_text(body, encoding="utf-8")
    return path


def resume(run: Path, scratch: Path) -> list[str]:
    return ["run", "--resume", str(run), "--out", str(run.parent)]


def runs_listing(run: Path, scratch: Path) -> list[str]:
    return ["runs", "--out", str(run.parent)]


def new_run(*flags: str) -> Callable[[Path, Path], list[str]]:
    return lambda run, scratch: ["run", *flags, "--out", str(scratch / "runs"), *BASE_FLAGS[:2]]


def with_config(body: str, *flags: str) -> Callable[[Path, Path], list[str]]:
    return lambda run, scratch: ["run", "--config", str(spec_file(scratch, body)), *flags, "--out", str(scratch / "runs")]


def fifo_corpus(run: Path, scratch: Path) -> list[str]:
    path = scratch / "pipe.txt"
    os.mkfifo(path)
    return ["run", "--corpus", str(path), "--out", str(scratch / "runs"), *BASE_FLAGS[:2]]


def jsonl_corpus(line: str) -> Callable[[Path, Path], list[str]]:
    def command(run: Path, scratch: Path) -> list[str]:
        path = scratch / "texts.jsonl"
        rows = [json.dumps({"text": f"The cat sat on mat number {i}."}) for i in range(40)]
        path.write_text("\n".join(rows[:20] + [line] + rows[20:]) + "\n", encoding="utf-8")
        return ["run", "--corpus", str(path), "--out", str(scratch / "runs"), *BASE_FLAGS]
    return command


def symlinked_model_tmp(run: Path, scratch: Path) -> None:
    outside = scratch / "outside.txt"
    outside.write_text("keep me\n", encoding="utf-8")
    (run / ".model-tmp").symlink_to(outside)


def corrupt_tokenizer_cache(run: Path, scratch: Path) -> None:
    """Every cached tokenizer of this harness (its own ``WORKBENCH_CACHE``) made schema-invalid."""
    for path in (scratch.parent / "cache").rglob("tokenizer.json"):
        path.write_text('{"version": "1.0", "model": 5}', encoding="utf-8")


HUGE_LIMIT = 6 * 1024**3
"""The address space of a case that asks for a model bigger than the machine."""


def big_vocab_base(run: Path, scratch: Path) -> None:
    """The run's model/config.json says vocab_size 1e11; its weights hold 300 rows."""
    edit_json(run / "model" / "config.json", lambda d: {**d, "vocab_size": 10**11})


def labelled_corpus(scratch: Path) -> Path:
    path = scratch / "reviews.csv"
    rows = [f"the {w} film was {w},{'pos' if w in ('good', 'great') else 'neg'}" for _ in range(10) for w in ("good", "great", "bad", "awful")]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def from_base(*flags: str) -> Callable[[Path, Path], list[str]]:
    return lambda run, scratch: ["run", "--base", str(run), "--out", str(scratch / "runs"), *flags, *BASE_FLAGS[:2],
                                 "--batch-size", "4", "--seq-len", "32"]


def adapter_with_r_edited(run: Path, scratch: Path) -> None:
    """A real LoRA adapter on the run's model (peft, in this process), its r then edited to 8."""
    import transformers
    from peft import LoraConfig, get_peft_model

    model = transformers.AutoModelForCausalLM.from_pretrained(run / "model")
    wrapped = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True))
    wrapped.peft_config["default"].base_model_name_or_path = str(run / "model")
    wrapped.save_pretrained(str(scratch / "adapter"), safe_serialization=True)
    edit_json(scratch / "adapter" / "adapter_config.json", lambda d: {**d, "r": 8})


def lora_run_with_alpha_edited(run: Path, scratch: Path) -> None:
    """A real 2-step LoRA run on the run's model, whose run.toml then says lora_alpha 0.5 (was 8)."""
    subprocess.run(workbench_cmd("run", "--objective", "clm", "--base", str(run), "--method", "lora", "--lora-r", "4",
                                 "--out", str(scratch / "runs"), "--name", "lora", *BASE_FLAGS[:2], "--save-interval", "1",
                                 "--eval-interval", "1", "--batch-size", "4", "--seq-len", "32", "--eval-batches", "1"),
                   env=harness_env(scratch.parent), capture_output=True, text=True, check=True, timeout=TIMEOUT_S)
    replace_in_run_toml("lora_alpha = 8.0", "lora_alpha = 0.5")(scratch / "runs" / "lora", scratch)


def size_and_method_cases() -> list[Case]:
    """Issue 22: sizes checked before memory is spent, values that cannot work, methods tamper-proof."""
    def huge(name: str, *flags: str) -> Case:
        return Case("sizes", name, lambda r, s: ["run", "--corpus", str(s.parent / "stories.txt"), "--out", str(s / "runs"),
                                                 "--device", "cpu", *flags], memory_limit=HUGE_LIMIT)

    return [
        huge("--d-model 65536 --n-layer 256", "--d-model", "65536", "--n-layer", "256"),
        huge("--d-model 8192 --n-layer 16 (51 GB of weights)", "--d-model", "8192", "--n-layer", "16"),
        huge("--vocab-size 100000000", "--vocab-size", "100000000"),
        Case("sizes", "a base whose config.json says vocab_size 1e11", lambda r, s: from_base(
             "--objective", "generation", "--corpus", str(s.parent / "stories.txt"))(r, s), big_vocab_base, memory_limit=HUGE_LIMIT),
        Case("bounds", "max_steps = 9223372036854775807", with_config("max_steps = 9223372036854775807\n")),
        Case("bounds", "--time-budget 100000000h", new_run("--time-budget", "100000000h")),
        Case("bounds", "--warmup-steps 1000 --max-steps 4", new_run("--warmup-steps", "1000")),
        Case("bounds", "--vocab-size 1 (bpe)", new_run("--vocab-size", "1")),
        Case("methods", "--lora-targets score (the head)", lambda r, s: from_base(
             "--objective", "sentiment", "--method", "lora", "--lora-targets", "score", "--corpus", str(labelled_corpus(s)))(r, s)),
        Case("methods", "adapter_config.json r edited", lambda r, s: ["inspect", str(r), str(s / "adapter"), "--text", "a"],
             adapter_with_r_edited),
        Case("methods", "lora_alpha edited in run.toml, then --resume", lambda r, s: ["run", "--resume", str(s / "runs" / "lora"),
             "--max-steps", "6"], lora_run_with_alpha_edited),
    ]


def harness_env(workdir: Path) -> dict[str, str]:
    """The tests' subprocess environment with a cache of the harness's own (never the user's)."""
    return {**subprocess_env(), "WORKBENCH_CACHE": str(workdir / "cache")}


# ---------------------------------------------------------------------------- the cases
def cases() -> list[Case]:
    return [
        Case("resume", "extra key in every trainer_state.json", resume, lambda r, s: every_state(r, lambda d: {**d, "x": 1})),
        Case("resume", "step -1", resume, lambda r, s: every_state(r, lambda d: {**d, "step": -1})),
        Case("resume", 'step "abc"', resume, lambda r, s: every_state(r, lambda d: {**d, "step": "abc"})),
        Case("resume", "no scheduler state", resume, lambda r, s: every_state(r, lambda d: {k: v for k, v in d.items() if k != "scheduler"})),
        Case("resume", "trainer_state.json is []", resume, lambda r, s: every_state(r, lambda d: [])),
        Case("resume", "step 10**12", resume, lambda r, s: every_state(r, lambda d: {**d, "step": 10**12})),
        Case("resume", "weights corrupted, same size", resume,
             lambda r, s: [flip_bytes(p) for p in (r / "checkpoints").glob("step-*/model.safetensors")], ok_exits=(0, 2)),
        Case("resume", "newest weights corrupted, same size", resume,
             lambda r, s: flip_bytes(sorted((r / "checkpoints").glob("step-*"))[-1] / "model.safetensors"), ok_exits=(0,)),
        Case("writes", ".model-tmp symlink to a file outside", resume, symlinked_model_tmp, ok_exits=(0, 2)),
        Case("spec", 'seq_len = "abc"', with_config('seq_len = "abc"\n')),
        Case("spec", 'lr = "x"', with_config('lr = "x"\n')),
        Case("spec", "name = 5", with_config("name = 5\n")),
        Case("spec", 'eval_fraction = "0.1"', with_config('eval_fraction = "0.1"\n')),
        Case("spec", "--epochs nan", new_run("--epochs", "nan")),
        Case("spec", "--epochs 0", new_run("--epochs", "0")),
        Case("spec", "--epochs -1", new_run("--epochs", "-1")),
        Case("spec", "--gpus 0", new_run("--gpus", "0")),
        Case("spec", "--gpus -3", new_run("--gpus", "-3")),
        Case("spec", "--out is a file", lambda r, s: ["run", "--out", str(r / "run.toml"), *BASE_FLAGS[:2]]),
        Case("spec", "--out under a file", lambda r, s: ["run", "--out", str(r / "run.toml" / "x"), *BASE_FLAGS[:2]]),
        Case("spec", "--resume with --lr", lambda r, s: [*resume(r, s), "--lr", "1"]),
        Case("spec", 'run.toml seed = "x"', resume, replace_in_run_toml("seed = ", 'seed = "x"\n# was ')),
        Case("spec", "run.toml seq_len = 1.5", resume, replace_in_run_toml("seq_len = ", "seq_len = 1.5\n# was ")),
        Case("spec", 'run.toml time_budget = "fast"', resume, replace_in_run_toml("[spec]\n", '[spec]\ntime_budget = "fast"\n')),
        Case("readers", "binary garbage line in metrics.jsonl", runs_listing, append_line("metrics.jsonl", b"\x00\xff\xfe garbage"), ok_exits=(0,)),
        Case("readers", "a line 42 in metrics.jsonl", runs_listing, append_line("metrics.jsonl", b"42"), ok_exits=(0,)),
        Case("readers", 'status.json pid "abc"', runs_listing, lambda r, s: edit_json(r / "status.json", lambda d: {**d, "pid": "abc"}), ok_exits=(0,)),
        Case("readers", "status.json is []", runs_listing, lambda r, s: (r / "status.json").write_text("[]"), ok_exits=(0,)),
        Case("readers", 'run.toml created = "yesterday"', runs_listing, replace_in_run_toml("created = ", 'created = "yesterday"\n# was '), ok_exits=(0,)),
        Case("readers", 'status.json step "abc"', runs_listing, lambda r, s: edit_json(r / "status.json", lambda d: {**d, "step": "abc"}), ok_exits=(0,)),
        Case("readers", "inspect --probes with a garbage probes line", lambda r, s: ["inspect", str(r), "--probes"],
             append_line("probes.jsonl", b"\xff{not json"), ok_exits=(0,)),
        Case("caches", "schema-invalid tokenizer cache entry", lambda r, s: ["run", "--corpus", str(s.parent / "stories.txt"),
             "--out", str(s / "runs"), *BASE_FLAGS], corrupt_tokenizer_cache, ok_exits=(0,)),
        Case("messages", "a FIFO as the corpus", fifo_corpus),
        Case("messages", "/dev/zero as the corpus", new_run("--corpus", "/dev/zero")),
        Case("messages", "a /proc file as the corpus", new_run("--corpus", "/proc/self/status")),
        Case("messages", "a 5000-digit integer in a JSONL corpus", jsonl_corpus('{"text": "a", "n": ' + "9" * 5000 + "}")),
        Case("messages", "a lone surrogate in a JSONL corpus", jsonl_corpus('{"text": "bad \\ud800 text"}')),
        *size_and_method_cases(),
    ]


# ---------------------------------------------------------------------------- running them
def make_base_run(workdir: Path, corpus: Path) -> Path:
    """One real tiny run with two checkpoints (steps 2 and 4) and a final model."""
    out = workdir / "base-runs"
    subprocess.run(workbench_cmd("run", "--corpus", str(corpus), "--out", str(out), "--name", "base", *BASE_FLAGS),
                   env=harness_env(workdir), capture_output=True, text=True, check=True, timeout=TIMEOUT_S)
    return out / "base"


def fingerprints(run: Path) -> dict[str, str]:
    """Content hash of every checkpoint and model file, keyed by name relative to its folder."""
    found = {}
    for path in list(run.glob("checkpoints/**/*")) + list(run.glob("model/*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(run))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def lost_files(before: dict[str, str], run: Path) -> list[str]:
    """Files that existed before and whose content is nowhere in the run any more."""
    after = set(fingerprints(run).values())
    return sorted(name for name, digest in before.items() if digest not in after)


def run_case(case: Case, base: Path, workdir: Path) -> Outcome:
    scratch = workdir / f"case-{abs(hash(case.name)) % 10**8}"
    scratch.mkdir(parents=True)
    run = scratch / "runs-of-case" / "base"
    shutil.copytree(base, run, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    case.damage(run, scratch)
    before = fingerprints(run)
    try:
        limit = case.memory_limit
        done = subprocess.run(workbench_cmd(*case.command(run, scratch)), env=harness_env(workdir), capture_output=True,
                              text=True, timeout=TIMEOUT_S, cwd=scratch, start_new_session=True,
                              preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))) if limit else None)
        code, stderr, hung = done.returncode, done.stderr, False
    except subprocess.TimeoutExpired as exc:
        code, stderr, hung = None, (exc.stderr or b"").decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or ""), True
    if code == 0:  # a resume that finished rewrites model/ by design; checkpoints must all survive
        before = {name: digest for name, digest in before.items() if not name.startswith("model/")}
    return Outcome(case, code, "Traceback" in stderr, hung, lost_files(before, run), stderr.strip()[-300:])


def signal_cases(base: Path, workdir: Path) -> list[Outcome]:
    """SIGTERM once and SIGHUP under nohup: a checkpoint first, the right exit code, nothing lost."""
    outcomes = []
    for name, ignore_hup, sig, expect in (("SIGTERM once", False, signal.SIGTERM, 143), ("SIGHUP under nohup, then SIGTERM", True, signal.SIGHUP, 143)):
        scratch = workdir / f"signal-{sig}-{ignore_hup}"
        scratch.mkdir()
        corpus = base.parent.parent / "stories.txt"
        flags = ["run", "--corpus", str(corpus), "--out", str(scratch / "runs"), "--name", "sig", "--max-steps", "100000",
                 "--save-interval", "3", "--eval-interval", "100000", "--batch-size", "4", "--seq-len", "32", "--vocab-size", "300",
                 "--eval-batches", "1", "--log-interval", "1", "--json"]
        def nohup() -> None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        proc = subprocess.Popen(workbench_cmd(*flags), env=harness_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, preexec_fn=nohup if ignore_hup else None)
        case = Case("signals", name, lambda r, s: [], ok_exits=(expect,))
        outcomes.append(_signal_outcome(proc, sig, ignore_hup, case, scratch / "runs" / "sig"))
    return outcomes


def _signal_outcome(proc: subprocess.Popen, sig: int, ignore_hup: bool, case: Case, run: Path) -> Outcome:
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"event": "checkpoint"' in line:
            break
    proc.send_signal(sig)
    if ignore_hup:
        time.sleep(2.0)
        still_running = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        hung = True
    code = proc.returncode if not ignore_hup or still_running else -1
    status = json.loads((run / "status.json").read_text(encoding="utf-8")) if (run / "status.json").is_file() else {}
    lost = [] if status.get("status") == "stopped" and any(run.glob("checkpoints/step-*")) else ["no checkpoint or status not stopped"]
    return Outcome(case, code, "Traceback" in stderr, hung, lost, stderr.strip()[-300:])


def two_writers(base: Path, workdir: Path) -> Outcome:
    """`--resume` of a run another live process is writing: refused with one line, the
    writer goes on, and the refused process adds nothing to its metrics."""
    scratch = workdir / "two-writers"
    scratch.mkdir()
    run = scratch / "runs" / "live"
    flags = ["run", "--corpus", str(workdir / "stories.txt"), "--out", str(run.parent), "--name", "live", "--max-steps", "100000",
             "--save-interval", "3", "--eval-interval", "100000", "--batch-size", "4", "--seq-len", "32", "--vocab-size", "300",
             "--eval-batches", "1", "--log-interval", "1", "--json"]
    writer = subprocess.Popen(workbench_cmd(*flags), env=harness_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    assert writer.stdout is not None
    for line in writer.stdout:
        if '"event": "checkpoint"' in line:
            break
    case = Case("processes", "--resume of a run another process writes", lambda r, s: [])
    try:
        second = subprocess.run(workbench_cmd("run", "--resume", str(run), "--out", str(run.parent)), env=harness_env(workdir),
                                capture_output=True, text=True, timeout=TIMEOUT_S)
        code, stderr, hung = second.returncode, second.stderr, False
    except subprocess.TimeoutExpired:
        code, stderr, hung = None, "", True
    writer.send_signal(signal.SIGINT)
    writer.communicate(timeout=TIMEOUT_S)
    starts = (run / "metrics.jsonl").read_text(encoding="utf-8").count('"event": "started"')
    lost = [] if starts == 1 and writer.returncode == 130 else [f"{starts} started events; the writer exited {writer.returncode}"]
    return Outcome(case, code, "Traceback" in stderr, hung, lost, stderr.strip()[-300:])


def run_all(workdir: Path, log: Callable[[str], None] | None = None) -> list[Outcome]:
    """Every case against copies of one base run made in ``workdir``."""
    from conftest import write_story_corpus

    corpus = write_story_corpus(workdir / "stories.txt")
    base = make_base_run(workdir, corpus)
    outcomes = []
    for case in cases():
        outcomes.append(run_case(case, base, workdir))
        if log:
            outcome = outcomes[-1]
            log(f"{'ok  ' if outcome.passed else 'FAIL'} {case.category:9s} {case.name}: exit {outcome.exit_code}"
                + ("" if outcome.passed else f" | {outcome.stderr_tail.splitlines()[-1] if outcome.stderr_tail else ''} {outcome.lost}"))
    outcomes += signal_cases(base, workdir)
    outcomes.append(two_writers(base, workdir))
    return outcomes
