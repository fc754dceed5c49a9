"""The default tiny models learn the seed examples from the built-in general corpus.

Each test is exactly `workbench run --objective X` with default settings (only the run root
differs), then the saved model is queried with plain transformers. Slow (a minute or two
each on 2 cores), and CI runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer
from typer.testing import CliRunner

from workbench.cli import app
from workbench.corpora import load_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def grad_mode_restored():
    """The queries turn gradients off; later tests in this process must get them back."""
    yield
    torch.set_grad_enabled(True)


def default_run(objective: str, root: Path) -> Path:
    """Train with the defaults (gradients on: the queries below run under no_grad)."""
    result = CliRunner().invoke(app, ["run", "--objective", objective, "--out", str(root), "--name", objective, "--json"])
    assert result.exit_code == 0, result.output[-2000:]
    return root / objective / "model"


def test_probe_sentences_are_not_in_the_eval_split() -> None:
    corpus = load_corpus("general")
    eval_text = "\n".join(corpus.texts("eval"))
    for probe in ("The cat sat on the mat.", "The dog wagged its tail.", "I have a cat.\nIt loves to purr."):
        assert probe not in eval_text


def test_mlm_predicts_mat(tmp_path: Path) -> None:
    model_dir = default_run("mlm", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.set_grad_enabled(False)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    inputs = tokenizer("The cat sat on the [MASK].", return_tensors="pt")
    position = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
    top = model(**inputs).logits[0, position].topk(5).indices.tolist()
    assert tokenizer.convert_ids_to_tokens(top)[0] == "mat", tokenizer.convert_ids_to_tokens(top)


def test_clm_continues_with_tail(tmp_path: Path) -> None:
    model_dir = default_run("clm", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    inputs = tokenizer("The dog wagged its", return_tensors="pt")
    next_id = model(input_ids=inputs["input_ids"]).logits[0, -1].argmax().item()
    assert tokenizer.decode([next_id]).strip() == "tail"


def test_nsp_prefers_the_true_next_sentence(tmp_path: Path) -> None:
    model_dir = default_run("nsp", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.set_grad_enabled(False)
    model = AutoModelForPreTraining.from_pretrained(model_dir).eval()

    def p_next(a: str, b: str) -> float:
        logits = model(**tokenizer(a, b, return_tensors="pt")).seq_relationship_logits[0]
        return logits.softmax(-1)[0].item()  # label 0 = "B follows A"

    true_next = p_next("I have a cat.", "It loves to purr.")
    for unrelated in ("The train to the city was late again.", "Add the flour and stir the soup slowly."):
        assert true_next > p_next("I have a cat.", unrelated)
