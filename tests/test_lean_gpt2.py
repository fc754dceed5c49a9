"""The lean GPT-2 is GPT2LMHeadModel with less code per step: the same parameter objects, the
same outputs and gradients, the same training losses, and standard checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_overrides
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.errors import SpecError
from workbench.lean_gpt2 import LeanGPT2
from workbench.tasks.clm import CausalLMTask
from workbench.tasks.finetune.generation import GenerationTask
from workbench.tasks.mlm import MaskedLMTask


def gpt2(**config: object) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    values = dict(vocab_size=97, n_embd=48, n_layer=2, n_head=4, n_positions=40, bos_token_id=0, eos_token_id=0)
    values.update(config)
    return GPT2LMHeadModel(GPT2Config(**values))


def test_shares_every_parameter_object_in_the_same_order() -> None:
    hf = gpt2()
    lean = LeanGPT2.sharing(hf)
    assert [n for n, _ in lean.named_parameters()] == [n for n, _ in hf.named_parameters()]
    assert all(a is b for a, b in zip(lean.parameters(), hf.parameters()))
    assert lean.transformer.wte.weight is hf.lm_head.weight  # tied, as in GPT-2
    lean.to(torch.float64)  # a device or dtype move of one moves the other
    assert hf.transformer.h[0].attn.c_attn.weight.dtype == torch.float64


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_logits_loss_and_gradients_equal_transformers(dropout: float) -> None:
    hf = gpt2(resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout).eval()
    lean = LeanGPT2.sharing(hf)
    assert not lean.training
    ids = torch.randint(0, 97, (3, 33))
    labels = ids.clone()
    labels[0, :5] = -100  # ignored positions, as a prompt mask would give
    expected = hf(input_ids=ids, labels=labels)
    expected.loss.backward()
    expected_grads = [p.grad.clone() for p in hf.parameters()]
    hf.zero_grad()
    got = lean(input_ids=ids, labels=labels)
    got.loss.backward()
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-6, atol=1e-6)
    for grad, p in zip(expected_grads, lean.parameters()):
        torch.testing.assert_close(p.grad, grad, rtol=1e-4, atol=1e-6)


def test_refuses_what_it_does_not_implement() -> None:
    assert "gelu" in (LeanGPT2.supports(gpt2(activation_function="relu")) or "")
    with pytest.raises(ValueError, match="reorder_and_upcast_attn"):
        LeanGPT2.sharing(gpt2(reorder_and_upcast_attn=True))
    lean = LeanGPT2.sharing(gpt2())
    with pytest.raises(TypeError, match="attention_mask"):
        lean(input_ids=torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="n_positions"):
        lean(input_ids=torch.zeros(1, 41, dtype=torch.long))


def lean_spec(lean_model: str = "auto", base: str | None = None) -> SimpleNamespace:
    """The two settings a task's ``training_module`` reads from a resolved spec."""
    return SimpleNamespace(base=base, runtime=SimpleNamespace(lean_model=lean_model))


def test_training_module_choice() -> None:
    """The clm task picks the module the loop trains; no other task takes the lean GPT-2."""
    clm, generation, mlm = CausalLMTask(), GenerationTask(), MaskedLMTask()
    hf = gpt2()
    assert isinstance(clm.training_module(hf, lean_spec()), LeanGPT2)
    assert clm.training_module(hf, lean_spec(base="some-base")) is hf
    assert clm.training_module(hf, lean_spec("off")) is hf
    assert generation.training_module(hf, lean_spec()) is hf
    odd = gpt2(activation_function="relu")
    assert clm.training_module(odd, lean_spec()) is odd  # auto falls back
    with pytest.raises(SpecError, match="lean_model"):
        clm.training_module(odd, lean_spec("on"))
    with pytest.raises(SpecError, match="lean_model"):
        generation.training_module(hf, lean_spec("on"))
    with pytest.raises(SpecError, match="lean_model"):
        mlm.training_module(hf, lean_spec("on"))
    with pytest.raises(SpecError, match="lean_model"):
        RunSpec(lean_model="maybe").validate()


def step_losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["event"] == "step"]


def test_a_lean_run_trains_the_same_losses_and_saves_a_standard_model(story_corpus: Path, run_root: Path) -> None:
    values = tiny_overrides(corpus=str(story_corpus), objective="clm", out=str(run_root), max_steps=10, log_interval=1,
                            eval_interval=5, probes=["The cat sat on the"])
    lean = TrainingRun(RunSpec(name="lean", **values)).run()
    plain = TrainingRun(RunSpec(name="plain", lean_model="off", **values)).run()
    metrics = (lean.run_dir / "metrics.jsonl").read_text()
    assert "Training with the lean GPT-2" in metrics
    assert "Training with the lean GPT-2" not in (plain.run_dir / "metrics.jsonl").read_text()
    assert step_losses(lean.run_dir) == pytest.approx(step_losses(plain.run_dir), rel=1e-4)
    assert (lean.run_dir / "probes.jsonl").is_file()  # probes ran on the shared transformers model

    model = AutoModelForCausalLM.from_pretrained(lean.model_dir)
    assert type(model).__name__ == "GPT2LMHeadModel"
    reference = AutoModelForCausalLM.from_pretrained(plain.model_dir)
    ids = torch.randint(0, 100, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-3, atol=1e-3)


def test_bf16_autocast_matches_transformers_and_keeps_the_loss_in_float32() -> None:
    """The GPU path's mixed precision, on CPU: the same autocast rules apply to both models."""
    hf = gpt2().eval()
    lean = LeanGPT2.sharing(hf)
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = hf(input_ids=ids, labels=ids), lean(input_ids=ids, labels=ids)
    assert got.loss.dtype == torch.float32 and got.logits.dtype == expected.logits.dtype == torch.bfloat16
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(got.logits.float(), expected.logits.float(), rtol=5e-2, atol=5e-2)
