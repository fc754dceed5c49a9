"""Shared fixtures: small real corpora written to tmp, the shared data folder, run roots."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="workbench-test-cache-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores: one torch thread each (and in the processes the tests
    # start), or their thread pools fight over the cores and every test slows down.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
else:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

LONG_TESTS = {
    "test_seed_examples.py::test_clm": 250, "test_seed_examples.py::test_mlm": 200,
    "test_seed_examples.py::test_nsp": 135, "test_faults_kill.py": 100, "test_two_nodes.py": 57,
    "test_scale_ddp_failures.py::test_oom": 43, "test_run_lock.py::test_a_second_writer": 37,
    "test_sweep_postgres.py": 31, "test_scale_fsdp.py::test_fsdp_clm": 29, "test_tui_real.py::test_a_two_process": 29,
    "test_scale_ddp.py::test_two_processes_share": 28, "test_export.py::test_report_to_trackio": 28,
    "test_scale_fsdp.py::test_fsdp_mlm": 26, "test_scale_ddp.py::test_two_processes_match": 26,
    "test_scale_ddp_failures.py::test_bad_input": 24, "test_scale_ddp_failures.py::test_ctrl_c": 23,
    "test_sweep_processes.py::test_two_worker": 23, "test_faults_signals.py::test_sighup_waits": 22,
    "test_experiment_spec.py::test_a_time_budget_alone": 20, "test_faults_corpora.py::test_corpus_loader": 19,
}
"""Seconds each of the longest tests took on one xdist worker of CI's 2 cores (2026-12-07):
only to spread them over the workers (``pytest_collection_modifyitems``)."""


def seconds(item: pytest.Item) -> int:
    name = item.nodeid.split("/")[-1]
    return next((s for prefix, s in LONG_TESTS.items() if name.startswith(prefix)), 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, each worker's share starts with its part of the longest tests.

    xdist's ``--dist worksteal`` gives worker i the i-th contiguous slice of the list, and an
    idle worker later takes the tail of a busy one's queue. Left in file order, the 2-4 minute
    seed examples sat in one slice and ran one after another at the end. The long tests are
    dealt out longest first to the worker with the least so far, each slice starts with its
    own, and the short tests fill the slices to the sizes xdist cuts (a stable order, the same
    in every worker, as xdist requires)."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers < 2:
        return
    long_ones = sorted((item for item in items if seconds(item)), key=seconds, reverse=True)
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for item in long_ones:
        least = loads.index(min(loads))
        shares[least].append(item)
        loads[least] += seconds(item)
    rest = [item for item in items if not seconds(item)]
    ordered, left = [], len(items)
    for index, share in enumerate(shares):
        size = left // (workers - index)  # the slice xdist hands this worker
        take = max(0, size - len(share))
        ordered += share + rest[:take]
        rest, left = rest[take:], left - size
    items[:] = ordered + rest


ANIMALS = ["cat", "dog", "bird", "fox", "cow", "pig", "hen", "owl"]
PLACES = ["mat", "rug", "bed", "box", "log", "hill", "road", "sofa"]


def write_story_corpus(path: Path, documents: int = 120) -> Path:
    """Small varied English: documents of 3-4 sentences separated by blank lines."""
    lines = []
    for i in range(documents):
        a, p = ANIMALS[i % len(ANIMALS)], PLACES[(i * 3) % len(PLACES)]
        lines += [
            f"The {a} sat on the {p}.",
            f"It was a {['quiet', 'sunny', 'cold', 'long'][i % 4]} day number {i}.",
            f"Then the {a} walked to the {PLACES[(i + 1) % len(PLACES)]}.",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def story_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_story_corpus(tmp_path_factory.mktemp("corpus") / "stories.txt")


@pytest.fixture
def run_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def tiny_overrides(**extra):
    """RunSpec fields for a fast tiny run in tests."""
    values = dict(batch_size=8, seq_len=32, vocab_size=300, eval_batches=2, log_interval=2, keep_checkpoints=2)
    values.update(extra)
    return values


def one_line_error(result, *needles: str, fix: bool = False) -> str:
    """The one error line of a failed command: exit code 2, one non-blank line, no traceback,
    each of ``needles`` in it (and, with ``fix``, the ``error: ... Fix: ...`` shape). ``result``
    is a CliRunner result or a finished subprocess (its stderr is the error's place)."""
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    text = result.output if hasattr(result, "exit_code") else (result.stderr or "")
    everything = text if hasattr(result, "exit_code") else text + (result.stdout or "")
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2, everything[-2000:]
    assert "Traceback" not in everything and len(lines) == 1, everything[-2000:]
    if fix:
        assert lines[0].startswith("error:") and "Fix:" in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


async def wait_until(pilot, condition, timeout: float = 30.0, every: float = 0.05) -> None:
    """Let a Pilot-driven app run until ``condition()`` holds, failing after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await pilot.pause(every)


@pytest.fixture(scope="session")
def parts(story_corpus: Path):
    """A tiny real model, tokenizer, optimizer (with state) and scheduler to checkpoint."""
    import torch
    import transformers

    from workbench.tokenization import train_tokenizer

    tokenizer = train_tokenizer("bpe", story_corpus.read_text().splitlines(), 300, masked=False)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]])).loss.backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, tokenizer, optimizer, scheduler
