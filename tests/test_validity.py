"""Settings that cannot work are refused before anything is spent (issue 22, items 3-5).

Model sizes are counted on the meta device and compared with the device's memory; the huge
ones run the real CLI in a subprocess under an address-space limit, so a missed check fails
the test instead of taking the machine down. Bounds on steps, budgets, warmup and
vocabulary; LoRA targets on the head; adapters and resumed LoRA settings that no longer
match their weights.
"""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import pytest
import torch
import transformers
from typer.testing import CliRunner

from tests.conftest import tiny_overrides, write_story_corpus
from tests.faults_helpers import subprocess_env, workbench_cmd
from workbench import feasibility, methods
from workbench.cli import app
from workbench.config import RunSpec
from workbench.engine import memory
from workbench.engine.runner import TrainingRun
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import BaseModelError, RunDirError, SpecError
from workbench.models import scratch_parameters

ADDRESS_SPACE = 6 * 1024**3
"""Under this limit a model of several GB cannot be allocated: the process fails instead of the machine."""


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def cli(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, [line for line in result.output.strip().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_story_corpus(tmp_path_factory.mktemp("validity") / "stories.txt", documents=60)


# ---------------------------------------------------------------------- item 3: sizes
@pytest.mark.parametrize("shape", [["--d-model", "8192", "--n-layer", "16"], ["--d-model", "65536", "--n-layer", "256"]])
@pytest.mark.slow  # a process under a memory limit
def test_a_model_too_big_is_refused_before_the_tokenizer_or_a_run_folder(shape: list[str], corpus: Path, tmp_path: Path):
    env = {**subprocess_env(), "WORKBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(workbench_cmd("run", "--corpus", str(corpus), "--out", str(tmp_path / "runs"), "--device", "cpu", *shape),
                          env=env, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "needs about" in lines[0] and "the largest that fits" in lines[0] and f"d_model {shape[1]}" in lines[0]
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache" / "tokenizers").exists()  # refused before the tokenizer trained


def test_the_meta_count_is_exact_and_the_suggestion_fits(monkeypatch: pytest.MonkeyPatch, corpus: Path):
    for tie in ("on", "off"):
        spec, task = resolve_spec(RunSpec(corpus=str(corpus), d_model=64, n_layer=3, n_head=4, tie_embeddings=tie))
        count = memory.scratch_counter(task, spec, spec.model.vocab_size)
        assert count(64, 3) == scratch_parameters(spec, task)
    untied = spec  # the last one: tie_embeddings off
    tied, _ = resolve_spec(RunSpec(corpus=str(corpus), d_model=64, n_layer=3, n_head=4, tie_embeddings="on"))
    assert memory.scratch_counter(task, untied, untied.model.vocab_size)(64, 3) > memory.scratch_counter(task, tied, tied.model.vocab_size)(64, 3)
    count = memory.scratch_counter(task, spec, 100)
    available = int(16 * count(64, 3) * 0.9)  # a quarter of it left for activations: one layer fits, two do not
    monkeypatch.setattr(memory, "available_memory", lambda device: (available, "a test's memory"))
    with pytest.raises(SpecError) as refused:
        memory.check_scratch(task, spec, 100, "cpu")
    line, room = str(refused.value), available * feasibility.SUGGESTION_SHARE
    assert "a test's memory" in line and "n_layer 1 at d_model 64" in line and 16 * count(64, 1) <= room < 16 * count(64, 2), line
    width = int(line.split("or d_model ")[-1].split(" with n_layer 3")[0])
    assert width % 4 == 0 and 16 * count(width, 3) <= room < 16 * count(width + 4, 3)


def test_the_search_finds_the_largest_shape_of_a_known_count():
    def count(d_model: int, n_layer: int) -> int:  # a GPT-like count: embeddings + 12 d^2 per layer
        return 1000 * d_model + n_layer * 12 * d_model * d_model

    shape = feasibility.Shape(d_model=1024, n_layer=8, n_head=8)
    limit = count(1024, 3)
    assert feasibility.layers_that_fit(count, 1024, limit, 8) == 3
    width = feasibility.width_that_fits(count, shape, limit)
    assert count(width, 8) <= limit < count(width + 64, 8) and width % 64 == 0
    assert "nothing of this shape fits" in feasibility.largest_fitting(count, shape, 10)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> dict[str, Path]:
    """A tiny GPT-2 run directory (a base for clm, generation and LoRA) and a tiny BERT folder."""
    from workbench.runs.rundir import RunDir
    from workbench.tokenization import train_tokenizer

    tmp = tmp_path_factory.mktemp("validity-bases")
    texts = corpus.read_text().splitlines()
    bpe = train_tokenizer("bpe", texts, 300, masked=False)
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(bpe), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=bpe.bos_token_id,
        eos_token_id=bpe.eos_token_id, pad_token_id=bpe.pad_token_id))
    run = RunDir(tmp / "clm-base")
    run.path.mkdir()
    run.write_run_toml(RunSpec(objective="clm", corpus=str(corpus), seq_len=32, name="clm-base"), {"created": 0.0})
    gpt2.save_pretrained(run.path / "model")
    bpe.save_pretrained(run.path / "model")
    return {"gpt2": run.path, "tmp": tmp}


def test_a_config_edited_away_from_its_weights_names_the_mismatch(bases: dict[str, Path], corpus: Path, tmp_path: Path):
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(bases["gpt2"] / "model", folder)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 10**11
    (folder / "config.json").write_text(json.dumps(config))
    code, lines = cli("run", "--objective", "generation", "--base", str(folder), "--corpus", str(corpus),
                      "--out", str(tmp_path / "runs"), "--device", "cpu", "--max-steps", "1")
    assert code == 2 and len(lines) == 1, lines
    assert "config.json does not match the weights" in lines[0] and "100000000000 x 32" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_base_too_big_for_the_device_is_refused_before_its_weights(bases: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    config = transformers.AutoConfig.from_pretrained(bases["gpt2"] / "model")
    monkeypatch.setattr(memory, "available_memory", lambda device: (1000, "a test's memory"))
    with pytest.raises(BaseModelError, match=r"describes a model of .* parameters \(vocab_size \d+.*a test's memory has 1 KB"):
        memory.check_base(config, transformers.AutoModelForCausalLM, str(bases["gpt2"] / "model"), "cpu", True, "the base")
    monkeypatch.setattr(memory, "available_memory", lambda device: (10**9, "a test's memory"))
    memory.check_base(config, transformers.AutoModelForCausalLM, str(bases["gpt2"] / "model"), "cpu", True, "the base")


# ---------------------------------------------------------------------- item 4: values that cannot work
@pytest.mark.parametrize("flags, fragments", [
    (["--vocab-size", "100000000"], ["--vocab-size", "1000000"]),
    (["--vocab-size", "1"], ["257", "byte-level BPE"]),
    (["--max-steps", "9223372036854775807"], ["--max-steps", "1000000000"]),
    (["--time-budget", "100000000h"], ["--time-budget", "longer than a year", "8784h"]),
    (["--warmup-steps", "1000", "--max-steps", "2"], ["warmup_steps 1000", "2 steps", "never reach its peak"]),
])
def test_values_that_cannot_work_are_one_line_errors(flags: list[str], fragments: list[str], corpus: Path, tmp_path: Path):
    code, lines = cli("run", "--corpus", str(corpus), "--out", str(tmp_path / "runs"), "--device", "cpu", *flags)
    assert code == 2 and len(lines) == 1 and all(f in lines[0] for f in fragments), lines
    assert not (tmp_path / "runs").exists()


def test_a_toml_time_budget_beyond_a_year_is_refused(tmp_path: Path):
    with pytest.raises(SpecError, match="time_budget of .* longer than a year"):
        RunSpec.from_dict({"time_budget": 1e9}, source="spec.toml")


def test_warmup_longer_than_the_epochs_is_refused_once_steps_are_known(corpus: Path, tmp_path: Path):
    spec = RunSpec(corpus=str(corpus), out=str(tmp_path / "runs"), name="w", device="cpu", epochs=1, warmup_steps=100000,
                   **tiny_overrides())
    with pytest.raises(SpecError, match=r"warmup_steps 100000 is not shorter than the run \(\d+ steps from epochs 1\)"):
        TrainingRun(spec).run()
    assert not (tmp_path / "runs" / "w").exists()  # a refused start leaves no run folder


def test_a_vocabulary_the_tokenizer_cannot_honour_is_said_and_recorded(corpus: Path, tmp_path: Path):
    """WordPiece keeps every character it saw: vocab 10 becomes its alphabet, said once, and
    run.toml records the size the model was built with."""
    import tomllib

    messages: list[str] = []
    spec = RunSpec(corpus=str(corpus), objective="mlm", out=str(tmp_path / "runs"), name="v", device="cpu",
                   probes=[], **tiny_overrides(vocab_size=10, max_steps=1, eval_batches=1))
    result = TrainingRun(spec, listeners=[lambda e: messages.append(e.text) if e.kind == "message" else None]).run()
    recorded = tomllib.loads((result.run_dir / "run.toml").read_text())["spec"]["vocab_size"]
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert recorded == config["vocab_size"] > 10
    assert any(f"{recorded} tokens, not the 10 asked for" in m for m in messages), messages


# ---------------------------------------------------------------------- item 5: methods
@pytest.mark.parametrize("model_class, config, target", [
    (transformers.BertForSequenceClassification, transformers.BertConfig, "classifier"),
    (transformers.BertForQuestionAnswering, transformers.BertConfig, "qa_outputs"),
    (transformers.BertForMaskedLM, transformers.BertConfig, "cls"),
    (transformers.GPT2ForSequenceClassification, transformers.GPT2Config, "score"),
    (transformers.GPT2LMHeadModel, transformers.GPT2Config, "lm_head"),
])
def test_a_lora_target_on_the_head_is_one_line(model_class, config, target: str):
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100) \
        if config is transformers.BertConfig else dict(n_embd=32, n_layer=1, n_head=2, vocab_size=100, pad_token_id=0)
    with torch.device("meta"):
        model = model_class(config(**small))
    with pytest.raises(SpecError, match=rf"lora_targets names '{target}'(, part of \w+)?: the (task|language-modelling) head"):
        methods.lora_targets(model, ("query", target) if config is transformers.BertConfig else ("c_attn", target))
    assert methods.lora_targets(model, ("query",) if config is transformers.BertConfig else ("c_attn",))[1]


@pytest.fixture(scope="module")
def lora_run(bases: dict[str, Path], corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("validity-lora")
    spec = RunSpec(objective="clm", base=str(bases["gpt2"]), corpus=str(corpus), out=str(root), name="lora", method="lora",
                   lora_r=4, device="cpu", probes=[], **tiny_overrides(max_steps=2, save_interval=1, eval_interval=1, eval_batches=1))
    return TrainingRun(spec).run().run_dir


def test_an_adapter_whose_r_was_edited_is_refused(bases: dict[str, Path], lora_run: Path, tmp_path: Path):
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_run / "adapter", adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert methods.read_adapter_config(adapter)["r"] == 4
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))
    with pytest.raises(BaseModelError, match=r"says r = 8, but .*lora_A.* has rank 4"):
        methods.read_adapter_config(adapter)
    code, lines = cli("inspect", str(bases["gpt2"]), str(adapter), "--text", "a")
    assert code == 2 and len(lines) == 1 and "r = 8" in lines[0], lines


@pytest.mark.parametrize("edit, key", [
    (("lora_alpha = 8.0", "lora_alpha = 0.5"), "lora_alpha"),
    (("lora_dropout = 0.05", "lora_dropout = 0.3"), "lora_dropout"),
])
def test_every_lora_setting_is_checked_on_resume(lora_run: Path, tmp_path: Path, edit: tuple[str, str], key: str):
    import shutil

    run = tmp_path / "runs" / "lora"
    shutil.copytree(lora_run, run, ignore=shutil.ignore_patterns(".lock"))
    text = (run / "run.toml").read_text()
    assert edit[0] in text, text
    (run / "run.toml").write_text(text.replace(edit[0], edit[1]))
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    code, lines = cli("run", "--resume", str(run), "--max-steps", "4")
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and f"the checkpoint was trained with {key} = " in errors[0], lines
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_a_method_record_mismatch_names_the_setting():
    saved = {"method": "lora", "lora_r": "4", "lora_alpha": "8", "lora_targets": "a,b"}
    feasibility.check_method_record(saved, dict(saved), "x")
    feasibility.check_method_record({}, dict(saved), "x")  # an older checkpoint: shapes are still checked
    with pytest.raises(SpecError, match="lora_targets is a now, but the checkpoint was trained with lora_targets = a,b"):
        feasibility.check_method_record(saved, {**saved, "lora_targets": "a"}, "x")
    with pytest.raises(RunDirError.__base__):  # WorkbenchError: one line, exit 2
        feasibility.check_method_record(saved, {"method": "frozen"}, "x")
