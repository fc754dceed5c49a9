"""Fine-tuning methods (issue 16): full, lora (through peft) and frozen.

Tiny bases made here in a second (a 2-layer GPT-2 saved as a workbench run directory, so
the forgetting check runs; a 2-layer BERT as a plain model folder), trained a few steps.
Everything written is read back with plain transformers and peft, never with the code
that wrote it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import tiny_overrides, write_story_corpus
from workbench.cli import app
from workbench.config import RunSpec
from workbench.engine.runner import TrainingRun
from workbench.runs.control import RunControl
from workbench.runs.listing import list_runs
from workbench.runs.rundir import RunDir


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import transformers

    from workbench.tokenization import train_tokenizer

    tmp = tmp_path_factory.mktemp("method-bases")
    corpus = write_story_corpus(tmp / "stories.txt", documents=80)
    texts = corpus.read_text().splitlines()
    torch.manual_seed(0)
    bpe = train_tokenizer("bpe", texts, 300, masked=False)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(bpe), n_embd=32, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id, pad_token_id=bpe.pad_token_id))
    run = RunDir(tmp / "clm-base")
    run.path.mkdir()
    run.write_run_toml(RunSpec(objective="clm", corpus=str(corpus), seq_len=32, name="clm-base"), {"created": 0.0})
    gpt2.save_pretrained(run.path / "model")
    bpe.save_pretrained(run.path / "model")
    wordpiece = train_tokenizer("wordpiece", texts + ["good great fine bad awful poor"], 300, masked=True)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=len(wordpiece), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=wordpiece.pad_token_id))
    bert.save_pretrained(tmp / "bert")
    wordpiece.save_pretrained(tmp / "bert")
    reviews = tmp / "reviews.csv"
    rows = ["text,label"] + [f"the {w} film was {w},{'pos' if w in ('good', 'great', 'fine') else 'neg'}"
                             for i in range(20) for w in ("good", "great", "fine", "bad", "awful", "poor")]
    reviews.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"gpt2": run.path, "bert": tmp / "bert", "stories": corpus, "reviews": reviews}


def generation(bases: dict[str, Path], root: Path, name: str, method: str, objective: str = "generation", **extra) -> RunSpec:
    values = tiny_overrides(log_interval=1, eval_interval=10, save_interval=10)
    values.update(extra)
    return RunSpec(objective=objective, base=str(bases["gpt2"]), corpus=str(bases["stories"]), out=str(root), name=name,
                   method=method, device="cpu", probes=[], **values)


def step_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if e["event"] == "step"}


@pytest.fixture(scope="module")
def runs(bases, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Runs several tests read: continued clm pre-training with LoRA (20 steps, its events),
    and generation with the frozen body (4 steps)."""
    root = tmp_path_factory.mktemp("method-runs")
    events: list = []
    lora = TrainingRun(generation(bases, root, "lora", "lora", "clm", max_steps=20, lora_r=4), listeners=[events.append]).run()
    frozen = TrainingRun(generation(bases, root, "frozen", "frozen", max_steps=4, lr=1e-2)).run()
    return {"lora": lora, "lora_events": events, "frozen": frozen, "root": root}


def test_lora_resume_is_exact_and_checkpoints_small(bases, runs, tmp_path: Path):
    """10 + 10 steps of a LoRA run (continued clm pre-training from a base) equal 20 steps:
    losses and weights. Checkpoints hold the trainable weights only (and the optimizer state
    for those), not the model."""
    root = tmp_path / "runs"
    whole = runs["lora"]
    control = RunControl()
    TrainingRun(generation(bases, root, "split", "lora", "clm", max_steps=20, lora_r=4), control=control,
                listeners=[lambda e: control.request_stop() if e.kind == "step" and e.step == 10 else None]).run()
    split = TrainingRun(resume=str(root / "split")).run()
    a, b = step_losses(whole.run_dir), step_losses(split.run_dir)
    assert sorted(a) == list(range(1, 21)) and all(step in b for step in range(11, 21))
    assert [a[s] for s in range(11, 21)] == [b[s] for s in range(11, 21)]
    assert a[20] != a[11]  # it trained
    checkpoint = whole.run_dir / "checkpoints" / "step-0000020"
    files = {p.name for p in checkpoint.iterdir()}
    assert "trainable.safetensors" in files and "model.safetensors" not in files
    trainable = load_file(str(checkpoint / "trainable.safetensors"))
    assert trainable and all("lora_" in name for name in trainable)
    full_size = (bases["gpt2"] / "model" / "model.safetensors").stat().st_size
    assert (checkpoint / "trainable.safetensors").stat().st_size < full_size / 4
    optimizer = load_file(str(checkpoint / "optimizer.safetensors"))
    moments = sum(t.numel() for name, t in optimizer.items() if name.endswith(".exp_avg"))
    assert moments == sum(t.numel() for t in trainable.values())  # optimizer state for the trainable weights only
    final_a = load_file(str(whole.run_dir / "adapter" / "adapter_model.safetensors"))
    final_b = load_file(str(split.run_dir / "adapter" / "adapter_model.safetensors"))
    assert final_a.keys() == final_b.keys() and all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_lora_outputs_merged_model_and_adapter(bases, runs, monkeypatch: pytest.MonkeyPatch):
    """``model/`` is a plain GPT-2 with LoRA merged in (loaded with peft blocked from import);
    ``adapter/`` on the base through peft gives the same logits; run.toml has the counts."""
    import transformers
    from peft import PeftModel

    result, events = runs["lora"], runs["lora_events"]
    started = next(e for e in events if e.kind == "started")
    assert started.method == "lora" and 0 < started.trainable_parameters < started.parameters / 5
    messages = [e.text for e in events if e.kind == "message"]
    assert any(m.startswith("Method lora: adapters on c_attn, c_proj, c_fc") for m in messages), messages
    meta = RunDir(result.run_dir).meta()
    assert meta["method"] == "lora" and meta["trainable_parameters"] == started.trainable_parameters
    assert {row.name: row.method for row in list_runs(str(runs["root"]))} == {"lora": "lora", "frozen": "frozen"}
    assert meta["lora_target_modules"] == ["c_attn", "c_proj", "c_fc"]
    spec = RunDir(result.run_dir).spec()
    assert (spec.lora_r, spec.lora_alpha, spec.lora_dropout) == (4, 8.0, 0.05)
    assert not any("lora" in name for name in load_file(str(result.model_dir / "model.safetensors")))
    with monkeypatch.context() as blocked:
        blocked.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
        merged, loading = transformers.AutoModelForCausalLM.from_pretrained(result.model_dir, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
    ids = torch.arange(12)[None]
    with torch.no_grad():
        merged_logits = merged(ids).logits
        base = transformers.AutoModelForCausalLM.from_pretrained(bases["gpt2"] / "model")
        base_logits = base(ids).logits
        config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
        assert Path(config["base_model_name_or_path"]) == (bases["gpt2"] / "model").resolve()
        adapter_logits = PeftModel.from_pretrained(base, str(result.run_dir / "adapter")).eval()(ids).logits
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-5)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_sentiment_head_trains_fully(bases, tmp_path: Path, method: str):
    """The classification head trains with both methods; frozen leaves every body weight the
    base's (a linear probe), lora adds adapters and merges them into model/."""
    import transformers

    spec = RunSpec(objective="sentiment", base=str(bases["bert"]), corpus=str(bases["reviews"]), out=str(tmp_path / "runs"),
                   name=method, method=method, device="cpu", max_steps=8, batch_size=8, eval_batches=2, log_interval=4,
                   lr=5e-3, probes=[])
    result = TrainingRun(spec).run()
    base = transformers.AutoModel.from_pretrained(bases["bert"])
    tuned = transformers.AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    body = {n: p for n, p in tuned.bert.named_parameters()}
    changed = [n for n, p in base.named_parameters() if not torch.equal(p, body[n])]
    if method == "frozen":
        assert changed == [] and not (result.run_dir / "adapter").exists()
    else:
        assert any("attention.self.query" in n for n in changed) and (result.run_dir / "adapter" / "adapter_model.safetensors").is_file()
        saved = load_file(str(result.run_dir / "adapter" / "adapter_model.safetensors"))
        assert any("classifier" in name for name in saved)  # the head is in the adapter (modules_to_save)
    meta = RunDir(result.run_dir).meta()
    assert meta["trained_heads"] == ["classifier"] and meta["trainable_share"] < 0.5
    assert isinstance(result.summary["metrics"].get("accuracy"), float)


def test_frozen_generation_trains_the_output_layer_only(bases, runs):
    import transformers

    result = runs["frozen"]
    base = transformers.AutoModelForCausalLM.from_pretrained(bases["gpt2"] / "model")
    tuned = transformers.AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert all(torch.equal(p, dict(tuned.transformer.named_parameters())[n]) for n, p in base.transformer.named_parameters())
    assert not torch.equal(tuned.lm_head.weight, base.lm_head.weight)
    assert result.summary["metrics"]["base_eval_loss_after"] != result.summary["metrics"]["base_eval_loss_before"]


def run_cli(*args: str):
    result = CliRunner().invoke(app, ["run", "--device", "cpu", *args])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return result, lines


@pytest.mark.parametrize("args, fragment", [
    (["--objective", "clm", "--method", "lora"], "method lora adapts a pre-trained model"),
    (["--objective", "clm", "--method", "frozen"], "method frozen adapts a pre-trained model"),
    (["--objective", "clm", "--lora-r", "4"], "lora_r is a LoRA setting, but method is full"),
    (["--objective", "clm", "--method", "frozen", "--lora-targets", "c_attn"], "lora_targets is a LoRA setting"),
    (["--objective", "clm", "--method", "lora", "--lora-targets", "c attn"], "not a comma-separated list"),
])
def test_method_settings_refused_in_one_line(tmp_path: Path, args: list[str], fragment: str):
    result, lines = run_cli("--out", str(tmp_path / "runs"), *args)
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_lora_with_fsdp_and_unknown_target_refused(bases, tmp_path: Path):
    common = ["--out", str(tmp_path / "runs"), "--objective", "generation", "--base", str(bases["gpt2"]), "--corpus", str(bases["stories"])]
    result, lines = run_cli(*common, "--method", "lora", "--parallel", "fsdp")
    assert result.exit_code == 2 and len(lines) == 1 and "FSDP" in lines[0], result.output
    result, lines = run_cli(*common, "--method", "lora", "--lora-targets", "query", "--max-steps", "1")
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "'query', which is no linear module" in lines[0] and "c_attn" in lines[0]


def test_adapter_configs_refused(bases, tmp_path: Path):
    """Adapters are read with safetensors only; remote code or another base is refused."""
    from workbench.errors import BaseModelError
    from workbench.methods import read_adapter_config

    folder = tmp_path / "adapter"
    folder.mkdir()
    good = {"peft_type": "LORA", "base_model_name_or_path": str(bases["gpt2"] / "model"), "r": 4}
    (folder / "adapter_config.json").write_text(json.dumps(good))
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(BaseModelError, match="adapter_model.bin, which are pickles"):
        read_adapter_config(folder)
    (folder / "adapter_model.bin").unlink()
    from safetensors.torch import save_file

    save_file({"base_model.model.h.0.attn.c_attn.lora_A.weight": torch.zeros(4, 32)}, str(folder / "adapter_model.safetensors"))
    assert read_adapter_config(folder, str(bases["gpt2"]))["r"] == 4  # a run dir counts as its model/
    with pytest.raises(BaseModelError, match="adapter was trained on base"):
        read_adapter_config(folder, str(bases["bert"]))
    (folder / "adapter_config.json").write_text(json.dumps(dict(good, auto_map={"AutoModel": "evil.Model"})))
    with pytest.raises(BaseModelError, match="auto_map"):
        read_adapter_config(folder)


def inspect_cli(*args: str):
    result = CliRunner().invoke(app, ["inspect", *args], terminal_width=200)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return result, lines


def test_inspector_three_models_and_adapter(bases, runs, tmp_path: Path):
    """base vs LoRA vs frozen: three columns and each run's forgetting numbers; an adapter/
    folder on its base answers as its run's merged model/ does; a foreign adapter is refused."""
    base, lora, frozen = str(bases["gpt2"]), str(runs["lora"].run_dir), str(runs["frozen"].run_dir)
    result, _ = inspect_cli(base, lora, frozen, "--text", "The cat sat on the", "--max-new-tokens", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [report["models"][k]["label"] for k in "abc"] == ["base", "lora", "frozen"]
    assert report["more"][0]["label"] == "frozen" and report["more"][0]["queries"][0]["slots"]
    forgetting = report["forgetting_by_model"]
    assert set(forgetting) == {"base", "lora", "frozen"} and forgetting["frozen"]["curves"]["eval_loss"]["change"] != 0
    result, _ = inspect_cli(base, lora, frozen, "--text", "The cat sat on the", "--max-new-tokens", "0")
    header = next(line for line in result.output.splitlines() if "base" in line and "lora" in line and "frozen" in line and "Δp" in line)
    assert header.index("base") < header.index("lora") < header.index("frozen")
    assert "forgetting of lora" in result.output and "forgetting of frozen" in result.output

    def top(*models: str) -> list[tuple[str, float]]:
        out, _ = inspect_cli(*models, "--text", "The cat sat on the", "--max-new-tokens", "0", "--json")
        assert out.exit_code == 0, out.output
        return [(row["token"], round(row["prob"], 6)) for row in json.loads(out.output)["queries"][0]["slots"][0]["b"]["rows"]]

    assert top(base, str(Path(lora) / "adapter")) == top(base, str(Path(lora) / "model"))
    result, lines = inspect_cli(str(bases["bert"]), str(Path(lora) / "adapter"), "--text", "a")
    assert result.exit_code == 2 and len(lines) == 1 and "adapter was trained on base" in lines[0], result.output


def test_counts_previewed_from_the_base_config_and_form_fields(bases):
    """The TUI's defaults line counts what a method trains from the base's config alone (meta
    device); the Objective pane's form has the method and LoRA fields (from RunSpec)."""
    from workbench.engine.spec_resolution import resolve_spec
    from workbench.methods import preview
    from workbench.tui.panes.objective import MAIN_FIELDS, form_fields

    counts = {}
    for method in ("full", "lora", "frozen"):
        spec, task = resolve_spec(RunSpec(objective="sentiment", base=str(bases["bert"]), corpus="x.csv", method=method, name="p"))
        counts[method] = preview(spec, task)
    hidden, labels = 32, 2
    assert counts["frozen"].trainable == hidden * labels + labels and counts["frozen"].heads == ["classifier"]
    assert counts["full"].trainable == counts["full"].total == counts["frozen"].total
    per_layer = 8 * (4 * (hidden + hidden) + 2 * (hidden + 64))  # r 8: q, k, v, attention output; intermediate, output
    assert counts["lora"].trainable == 2 * per_layer + hidden * labels + labels
    assert counts["lora"].targets == ["query", "key", "value", "dense"]
    fields = form_fields()
    assert "method" in MAIN_FIELDS and fields["method"].choices == ("full", "lora", "frozen")
    assert {"lora_r", "lora_alpha", "lora_dropout", "lora_targets"} <= set(fields)
