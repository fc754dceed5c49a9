"""The masked-positions-only twin is BERT's masked-LM and pre-training models with the
vocabulary head run on the masked tokens only: the same parameters, loss and gradients, the
same training losses through the engine, and standard checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_overrides
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.errors import SpecError
from workbench.sparse_mlm import SparseMaskedLM
from workbench.tasks.mlm import MaskedLMTask
from workbench.tasks.nsp import NextSentenceTask


def bert(cls: type = BertForMaskedLM, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=24, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return cls(config)


def masked_batch(vocab: int = 101, batch: int = 6, length: int = 20) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape, generator=generator) < 0.2
    labels[chosen] = ids[chosen]
    ids[chosen] = 4
    mask = torch.ones_like(ids)
    mask[0, -5:] = 0  # padding in one row, as the pair collator makes
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_shares_every_parameter_object_in_the_same_order() -> None:
    for cls in (BertForMaskedLM, BertForPreTraining):
        hf = bert(cls)
        twin = SparseMaskedLM.sharing(hf)
        assert [n for n, _ in twin.named_parameters()] == [n for n, _ in hf.named_parameters()]
        assert all(a is b for a, b in zip(twin.parameters(), hf.parameters()))
        assert twin.state_dict().keys() == hf.state_dict().keys()


@pytest.mark.parametrize("cls", [BertForMaskedLM, BertForPreTraining])
def test_loss_and_gradients_equal_transformers(cls: type) -> None:
    hf = bert(cls)
    batch = masked_batch()
    if cls is BertForPreTraining:
        batch["next_sentence_label"] = torch.tensor([0, 1, 0, 1, 1, 0])
    reference = hf(**batch)
    reference.loss.backward()
    expected = gradients(hf)
    hf.zero_grad()
    twin = SparseMaskedLM.sharing(hf)
    out = twin(**batch)
    out.loss.backward()
    torch.testing.assert_close(out.loss, reference.loss, rtol=1e-6, atol=1e-6)
    got = gradients(hf)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    if cls is BertForPreTraining:  # nsp accuracy reads these
        torch.testing.assert_close(out.seq_relationship_logits, reference.seq_relationship_logits)


def test_training_module_choice() -> None:
    mlm, nsp = MaskedLMTask(), NextSentenceTask()
    auto, off, on = (SimpleNamespace(base=None, runtime=SimpleNamespace(lean_model=value)) for value in ("auto", "off", "on"))
    hf = bert()
    assert isinstance(mlm.training_module(hf, auto), SparseMaskedLM)
    assert mlm.training_module(hf, off) is hf
    assert isinstance(nsp.training_module(bert(BertForPreTraining), auto), SparseMaskedLM)
    classifier = bert(BertForSequenceClassification)
    assert mlm.training_module(classifier, auto) is classifier  # auto falls back
    with pytest.raises(SpecError, match="lean_model"):
        mlm.training_module(classifier, on)
    with pytest.raises(TypeError, match="labels"):
        SparseMaskedLM.sharing(hf)(input_ids=masked_batch()["input_ids"])


def step_losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["event"] == "step"]


def test_an_mlm_run_trains_the_same_losses_and_saves_a_standard_model(story_corpus: Path, run_root: Path) -> None:
    values = tiny_overrides(corpus=str(story_corpus), objective="mlm", out=str(run_root), max_steps=8, log_interval=1,
                            eval_interval=4, probes=["The cat sat on the [MASK]."])
    sparse = TrainingRun(RunSpec(name="sparse", **values)).run()
    plain = TrainingRun(RunSpec(name="plain", lean_model="off", **values)).run()
    assert "Scoring masked positions only" in (sparse.run_dir / "metrics.jsonl").read_text()
    assert "Scoring masked positions only" not in (plain.run_dir / "metrics.jsonl").read_text()
    assert step_losses(sparse.run_dir) == pytest.approx(step_losses(plain.run_dir), rel=1e-4)
    assert sparse.summary["eval_loss_after"] == pytest.approx(plain.summary["eval_loss_after"], rel=1e-4)
    model = AutoModelForMaskedLM.from_pretrained(sparse.model_dir)
    assert type(model).__name__ == "BertForMaskedLM"
    reference = AutoModelForMaskedLM.from_pretrained(plain.model_dir)
    ids = torch.randint(5, 100, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-3, atol=1e-3)
