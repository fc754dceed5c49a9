"""Tiny models with known predictions for the inspector tests (built once per session).

A helper module, not tests: ``test_inspector*.py`` import ``built_models`` from here.

A word-level tokenizer over a 20-word vocabulary and 1-layer, 32-wide BERT/GPT-2 models
trained for a few dozen steps on one sentence pattern: the "base" models learn that the
cat sits on the *rug*, the "tuned" ones on the *mat*. Training takes about a second.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

WORDS = ["the", "cat", "dog", "fox", "sat", "on", "mat", "rug", "bed", "wagged", "its", "tail", ".", "i", "have", "a",
         "it", "loves", "to", "purr", "who"]
ANIMALS = ["cat", "dog", "fox"]
MASKED_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EOS = "<|endoftext|>"


def word_tokenizer(masked: bool) -> PreTrainedTokenizerFast:
    specials = MASKED_SPECIALS if masked else [EOS]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials[1] if masked else EOS))
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if masked:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)


def bert_config(tokenizer: PreTrainedTokenizerFast, **extra) -> BertConfig:
    return BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **extra)


def train_masked(tokenizer: PreTrainedTokenizerFast, place: str, steps: int = 40) -> BertForMaskedLM:
    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config(tokenizer, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    texts = [f"the {a} sat on the [MASK] ." for a in ANIMALS]
    batch = tokenizer(texts, return_tensors="pt")
    labels = torch.full_like(batch["input_ids"], -100)
    labels[batch["input_ids"] == tokenizer.mask_token_id] = tokenizer.convert_tokens_to_ids(place)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def train_causal(tokenizer: PreTrainedTokenizerFast, place: str, steps: int = 40) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_inner=64, n_positions=64,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    rows = [[tokenizer.bos_token_id] + tokenizer(f"the {a} sat on the {place} .")["input_ids"] for a in ANIMALS]
    ids = torch.tensor(rows)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_all(root: Path) -> dict[str, Path]:
    """Every model the inspector tests use, saved as safetensors folders under ``root``."""
    masked_tok, causal_tok = word_tokenizer(True), word_tokenizer(False)
    out = {
        "mlm_base": save(train_masked(masked_tok, "rug"), masked_tok, root / "mlm_base"),
        "mlm_tuned": save(train_masked(masked_tok, "mat"), masked_tok, root / "mlm_tuned"),
        "clm_base": save(train_causal(causal_tok, "rug"), causal_tok, root / "clm_base"),
        "clm_tuned": save(train_causal(causal_tok, "mat"), causal_tok, root / "clm_tuned"),
    }
    torch.manual_seed(0)
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    out["nsp"] = save(BertForPreTraining(bert_config(masked_tok)), masked_tok, root / "nsp")
    out["classify"] = save(BertForSequenceClassification(bert_config(masked_tok, **labels)), masked_tok, root / "classify")
    tags = {"id2label": {0: "O", 1: "B-ANIMAL", 2: "I-ANIMAL"}, "label2id": {"O": 0, "B-ANIMAL": 1, "I-ANIMAL": 2}}
    out["tag"] = save(BertForTokenClassification(bert_config(masked_tok, **tags)), masked_tok, root / "tag")
    out["qa"] = save(BertForQuestionAnswering(bert_config(masked_tok)), masked_tok, root / "qa")
    pickled = root / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((out["mlm_base"] / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not really a pickle")
    out["pickled"] = pickled
    return out


_BUILT: dict[str, Path] = {}


def built_models(tmp_path_factory) -> dict[str, Path]:
    """``build_all`` once per test session, shared by every inspector test module."""
    if not _BUILT:
        _BUILT.update(build_all(tmp_path_factory.mktemp("inspector-models")))
    return _BUILT
