"""The same spec and seed give bitwise-identical initial weights and step-0 eval loss.

For every objective in the registry: from scratch (clm, mlm, nsp) and from a tiny base
(the fine-tuning ones, whose new task head is initialised from the global generator). Set-up
runs twice, with the global random state disturbed in between, on CPU; every tensor of the
model (task heads included) is compared with ``torch.equal``, and the eval loss of the fixed
eval batches before the first step with ``==``. A different seed must change a from-scratch
model (and a new task head), or the comparison would prove nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from conftest import tiny_overrides, write_story_corpus
from safetensors.torch import load_file

from workbench.config import RunSpec
from workbench.engine.evaluation import Evaluator
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.setup import set_up
from workbench.objectives import get_objective, objective_names
from workbench.runs.events import EvalDone
from workbench.tokenization import train_tokenizer, wordpiece_model

PEOPLE = ["Ada", "Bob", "Cleo", "Dan", "Eve", "Finn"]
PLACES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi"]

CASES: dict[str, tuple[str | None, str]] = {
    # case: (base kind, or None from scratch; corpus)
    "clm": (None, "stories"),
    "mlm": (None, "stories"),
    "nsp": (None, "stories"),
    "sentiment": ("encoder", "reviews"),
    "ner": ("encoder", "conll"),
    "qa": ("encoder", "qa"),
    "generation": ("decoder", "domain"),
    "sentiment-decoder": ("decoder", "reviews"),
    "qa-decoder": ("decoder", "qa"),
}
"""Every registered objective (``test_every_objective_has_a_case``), and the decoder
variants of the fine-tuning heads that exist for both kinds of base."""

NEW_HEAD = {"sentiment", "ner", "qa", "sentiment-decoder"}
"""Cases whose model gets a freshly initialised head on top of the base's weights (the
generative ones keep the base's own LM head)."""


def write_corpora(folder: Path, stories: Path) -> dict[str, Path]:
    rng = random.Random(0)
    reviews = folder / "reviews.csv"
    good, bad = ["great", "lovely", "superb"], ["awful", "dull", "bad"]
    rows = [(f"the film was {rng.choice(good if i % 2 else bad)} today", "positive" if i % 2 else "negative") for i in range(48)]
    reviews.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in rows), encoding="utf-8")
    conll = folder / "train.conll"
    conll.write_text("\n".join(f"{rng.choice(PEOPLE)}\tB-PER\nSmith\tI-PER\nwent\tO\nto\tO\n{rng.choice(PLACES)}\tB-LOC\n.\tO\n"
                               for _ in range(40)), encoding="utf-8")
    qa = folder / "qa.jsonl"
    records = []
    for i in range(30):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        context = f"{person} lives in {place}. The sky was blue that day."
        records.append({"id": f"q{i}", "title": f"doc{i}", "context": context, "question": f"Where does {person} live?",
                        "answers": {"text": [place], "answer_start": [context.index(place)]}})
    qa.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    domain = folder / "domain.txt"
    domain.write_text("\n\n".join(f"The parser reads token {i} and the lexer emits symbol {i % 7}." for i in range(80)), encoding="utf-8")
    return {"stories": stories, "reviews": reviews, "conll": conll, "qa": qa, "domain": domain}


def all_text(corpora: dict[str, Path]) -> list[str]:
    return [line for path in corpora.values() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def inputs(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpora, and two tiny untrained bases saved with ``save_pretrained``: a BERT
    (encoder) and a GPT-2 (decoder), each with a tokenizer trained on all the corpora."""
    folder = tmp_path_factory.mktemp("reproducible")
    corpora = write_corpora(folder, story_corpus)
    texts = all_text(corpora)
    torch.manual_seed(0)
    encoder_tok = train_tokenizer("wordpiece", texts, 300, masked=True)
    encoder = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(encoder_tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, pad_token_id=encoder_tok.pad_token_id))
    decoder_tok = train_tokenizer("bpe", texts, 300, masked=False)
    decoder = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(decoder_tok), n_embd=32, n_layer=1, n_head=2, n_positions=128,
        bos_token_id=decoder_tok.bos_token_id, eos_token_id=decoder_tok.eos_token_id))
    for name, model, tokenizer in (("encoder", encoder, encoder_tok), ("decoder", decoder, decoder_tok)):
        model.save_pretrained(folder / name, safe_serialization=True)
        tokenizer.save_pretrained(folder / name)
    return {**corpora, "encoder": folder / "encoder", "decoder": folder / "decoder", "out": folder / "runs"}


def spec_for(case: str, inputs: dict[str, Path], seed: int) -> RunSpec:
    base, corpus = CASES[case]
    objective = case.split("-")[0]
    fields: dict[str, Any] = tiny_overrides(max_steps=2, eval_batches=2, seed=seed)
    if objective == "qa":
        fields["seq_len"] = 48
    return RunSpec(**fields, objective=objective, corpus=str(inputs[corpus]), base=str(inputs[base]) if base else None,
                   out=str(inputs["out"]), device="cpu")


def start(spec: RunSpec) -> tuple[dict[str, torch.Tensor], EvalDone]:
    """Set up a new run: its initial weights, and the step-0 eval the runner would report."""
    events: list = []
    state = set_up(spec, None, spec.out, events.append, on_run_dir=lambda run_dir, is_main: None)
    try:
        weights = {name: tensor.detach().to("cpu").clone() for name, tensor in state.model.state_dict().items()}
        guard = NonFiniteGuard(state.spec, state.accelerator.device, False, 0, 0, events.append)
        Evaluator(state, guard, [], events.append)(state.start_step)
    finally:
        if state.lock is not None:
            state.lock.release()
    (evaluated,) = [e for e in events if isinstance(e, EvalDone)]
    assert evaluated.step == 0 and math.isfinite(evaluated.eval_loss)
    return weights, evaluated


def disturb_global_random_state() -> None:
    """Set-up must seed what it draws from, whatever ran before it."""
    torch.manual_seed(987654321)
    torch.rand(1000)
    random.seed(4321)


def different(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [name for name in a if not torch.equal(a[name], b[name])]


def test_every_objective_has_a_case():
    assert set(objective_names()) <= {case.split("-")[0] for case in CASES}
    assert {case for case, (base, _) in CASES.items() if base is None} == set(objective_names("pretrain"))
    assert all(get_objective(case.split("-")[0]).needs_base == (base is not None) for case, (base, _) in CASES.items())


@pytest.mark.parametrize("case", list(CASES))
def test_same_spec_and_seed_same_start(case: str, inputs: dict[str, Path]):
    first, evaluated = start(spec_for(case, inputs, seed=7))
    disturb_global_random_state()
    again, evaluated_again = start(spec_for(case, inputs, seed=7))
    assert not different(first, again), f"{case}: tensors differ with the same seed: {different(first, again)[:5]}"
    assert evaluated.eval_loss == evaluated_again.eval_loss and evaluated.metrics == evaluated_again.metrics
    if CASES[case][0] is None or case in NEW_HEAD:
        other, _ = start(spec_for(case, inputs, seed=8))
        changed = different(first, other)
        assert changed, f"{case}: another seed gave the same weights, so the comparison proves nothing"
        if CASES[case][0] is not None:  # from a base, only the new head may change with the seed
            saved = set(load_file(str(inputs[CASES[case][0]] / "model.safetensors")))
            assert not [name for name in changed if name in saved], "weights loaded from the base changed with the seed"


WORDPIECE_IN_A_FRESH_PROCESS = """
import hashlib, json, sys
from workbench.tokenization import wordpiece_model
texts = open(sys.argv[1], encoding="utf-8").read().splitlines()
print(hashlib.sha256(json.dumps(wordpiece_model(texts, 300).get_vocab(), sort_keys=True).encode()).hexdigest())
"""


def test_wordpiece_learns_the_same_vocabulary_in_every_process(tmp_path: Path) -> None:
    """The tokenizers library's WordPiece trainer learned one of two vocabularies on this
    corpus, about half the time each, depending on the process's hash seed
    (huggingface/tokenizers#1794): same corpus and seed, different ids and losses."""
    corpus = write_story_corpus(tmp_path / "stories.txt")
    here = wordpiece_model(corpus.read_text(encoding="utf-8").splitlines(), 300).get_vocab()
    workers = [subprocess.Popen([sys.executable, "-c", WORDPIECE_IN_A_FRESH_PROCESS, str(corpus)], stdout=subprocess.PIPE, text=True)
               for _ in range(3)]
    digests = {worker.communicate(timeout=120)[0].strip() for worker in workers}
    assert digests == {hashlib.sha256(json.dumps(here, sort_keys=True).encode()).hexdigest()}
    assert "quiet" in here and "##y" in here and len(here) < 300  # a real vocabulary, not a seeded list
