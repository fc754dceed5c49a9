"""What one model says about one input, as plain numbers. No comparison, no UI.

Every function takes a ``LoadedModel`` in eval mode and runs under ``torch.no_grad``.
The masked-model continuation and pseudo-likelihood are hand-written because
transformers has no ``generate`` or scoring helper for masked LMs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from workbench.inspector.loading import LoadedModel
from workbench.inspector.text import split_pair, token_display, token_id_for, token_key, trim_span, with_mask_token, word_of, word_spans
from workbench.models import fit_to_positions, position_limit

LN2 = math.log(2.0)
MAX_TOKENS = 256
"""Longest input scored: the inspector is for sentences and short passages."""


@dataclass
class Choice:
    key: str  # vocabulary-independent name (for matching across tokenizers)
    display: str
    prob: float
    rank: int


class Distribution:
    """A full-vocabulary distribution at one position (masked slot or next token)."""

    def __init__(self, side: LoadedModel, probs: torch.Tensor, *, leading_space: bool):
        self.side = side
        self.probs = probs.float().cpu()
        self.leading_space = leading_space
        self.method = ""

    def top(self, k: int, *, skip_pieces: bool = False) -> list[Choice]:
        """The k most likely tokens, leaving out special tokens ([MASK], [CLS]...; a causal
        model's end-of-text stays) and, with ``skip_pieces``, word continuations (``##s``)."""
        tok = self.side.tokenizer
        skip = set(tok.all_special_ids) - ({tok.eos_token_id} if self.leading_space else set())
        values, ids = self.probs.topk(min(len(self.probs), 3 * k + len(skip)))
        out = []
        for value, token_id in zip(values.tolist(), ids.tolist()):
            if token_id in skip:
                continue
            if skip_pieces and str(tok.convert_ids_to_tokens(token_id)).startswith("##"):
                continue
            out.append(Choice(token_key(self.side.tokenizer, token_id), token_display(self.side.tokenizer, token_id), value, 0))
            if len(out) == k:
                break
        for choice in out:
            choice.rank = self.rank_of_prob(choice.prob)
        return out

    def rank_of_prob(self, prob: float) -> int:
        return int((self.probs > prob).sum()) + 1

    def lookup(self, key: str) -> tuple[float, int] | None:
        token_id = token_id_for(self.side.tokenizer, key, leading_space=self.leading_space)
        if token_id is None or token_id >= len(self.probs):
            return None
        prob = float(self.probs[token_id])
        return prob, self.rank_of_prob(prob)


class CandidateRanking:
    """A distribution over a candidate list from full-sentence likelihoods (causal fill-in)."""

    def __init__(self, keys: list[str], logprobs: list[float]):
        self.keys = keys
        self.logprobs = logprobs
        probs = torch.tensor(logprobs, dtype=torch.float64).softmax(0) if keys else torch.zeros(0)
        self.probs = probs.tolist()
        order = sorted(range(len(keys)), key=lambda i: -self.probs[i])
        self.rank = {keys[i]: r + 1 for r, i in enumerate(order)}
        self.order = order

    def top(self, k: int, **_: Any) -> list[Choice]:
        return [Choice(self.keys[i], self.keys[i], self.probs[i], self.rank[self.keys[i]]) for i in self.order[:k]]

    def lookup(self, key: str) -> tuple[float, int] | None:
        for i, candidate in enumerate(self.keys):
            if candidate.lower() == key.lower():
                return self.probs[i], self.rank[candidate]
        return None


def _to(side: LoadedModel, encoded: Any) -> dict[str, torch.Tensor]:
    return {k: v.to(side.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def _lm_logits(outputs: Any) -> torch.Tensor:
    return outputs.prediction_logits if hasattr(outputs, "prediction_logits") else outputs.logits


@torch.no_grad()
def masked_slots(side: LoadedModel, text: str) -> list[Distribution]:
    """One distribution per mask, all masks predicted at once (as the fill-mask pipeline does)."""
    tok = side.tokenizer
    encoded = tok(with_mask_token(text, tok.mask_token), return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    logits = _lm_logits(side.model(**_to(side, encoded)))[0]
    positions = (encoded["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
    out = []
    for position in positions:
        dist = Distribution(side, logits[position].softmax(-1), leading_space=False)
        dist.method = "masked LM"
        out.append(dist)
    return out


@torch.no_grad()
def next_token(side: LoadedModel, prompt: str) -> Distribution:
    """Causal: the real next-token distribution. Masked: an appended mask (approximation)."""
    tok = side.tokenizer
    if side.family == "causal":
        ids = _causal_ids(side, prompt)
        logits = side.model(input_ids=ids.to(side.device)).logits[0, -1]
        dist = Distribution(side, logits.softmax(-1), leading_space=True)
        dist.method = "next token"
        return dist
    (dist,) = masked_slots(side, f"{prompt} {tok.mask_token}")
    dist.method = "appended [MASK] (approximation)"
    return dist


def _causal_ids(side: LoadedModel, text: str) -> torch.Tensor:
    """Token ids with BOS prepended when the tokenizer has one, so the first word is scored."""
    tok = side.tokenizer
    limit = min(MAX_TOKENS, position_limit(side.model.config))
    ids = tok(text, add_special_tokens=False)["input_ids"][: limit - 1]
    if tok.bos_token_id is not None:
        ids = [tok.bos_token_id] + ids
    return torch.tensor([ids], dtype=torch.long)


@torch.no_grad()
def sentence_logprobs(side: LoadedModel, texts: list[str]) -> list[float]:
    """Total log-probability (nats) of each text under a causal model, in one batch."""
    tok = side.tokenizer
    rows = [_causal_ids(side, t)[0].tolist() for t in texts]
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    logits = side.model(input_ids=ids.to(side.device), attention_mask=mask.to(side.device)).logits.float().cpu()
    logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logp * mask[:, 1:]).sum(-1).tolist()


@dataclass
class TokenSurprisal:
    token: str
    start: int
    end: int
    bits: float | None


@torch.no_grad()
def surprisal(side: LoadedModel, text: str) -> tuple[list[TokenSurprisal], str]:
    """Per-token surprisal in bits, and how it was computed.

    Causal: -log2 p(token | everything before). Masked: pseudo-likelihood, each token
    masked in turn (all copies in one batch).
    """
    tok = side.tokenizer
    if side.family == "causal":
        encoded = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"][: MAX_TOKENS - 1], encoded["offset_mapping"][: MAX_TOKENS - 1]
        if not ids:
            return [], "empty"
        full = _causal_ids(side, text)[0]
        logits = side.model(input_ids=full[None].to(side.device)).logits[0].float().cpu()
        logp = logits[:-1].log_softmax(-1).gather(-1, full[1:, None])[:, 0]
        scored: list[float | None] = logp.tolist()
        if tok.bos_token_id is None:  # the first token has no context to be scored from
            scored = [None] + scored
        bits = [None if v is None else -v / LN2 for v in scored][-len(ids):]
        method = "causal LM: -log2 p(token | prefix)"
    else:
        encoded = tok(text, return_special_tokens_mask=True, return_offsets_mapping=True, truncation=True, max_length=MAX_TOKENS)
        full = encoded["input_ids"]
        positions = [i for i, special in enumerate(encoded["special_tokens_mask"]) if not special]
        if not positions:
            return [], "empty"
        ids = [full[i] for i in positions]
        offsets = [encoded["offset_mapping"][i] for i in positions]
        batch = torch.tensor([full] * len(positions), dtype=torch.long)
        rows, cols = torch.arange(len(positions)), torch.tensor(positions)
        batch[rows, cols] = tok.mask_token_id
        logits = _lm_logits(side.model(input_ids=batch.to(side.device)))[rows, cols].float().cpu()
        logp = logits.log_softmax(-1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
        bits = (-logp / LN2).tolist()
        method = "masked LM pseudo-likelihood: each token masked in turn"
    tokens = tok.convert_ids_to_tokens(ids)
    return [TokenSurprisal(t, *trim_span(text, int(s), int(e)), b) for t, (s, e), b in zip(tokens, offsets, bits)], method


@torch.no_grad()
def next_sentence_prob(side: LoadedModel, first: str, second: str) -> float:
    """P(B follows A) from a BERT next-sentence head (label 0 = is next)."""
    encoded = side.tokenizer(first, second, return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    outputs = side.model(**_to(side, encoded))
    logits = getattr(outputs, "seq_relationship_logits", None)
    if logits is None:
        logits = outputs.logits
    return float(logits[0].softmax(-1)[0])


def continuation_gain(side: LoadedModel, first: str, second: str) -> float:
    """Causal stand-in for NSP: mean log-prob gain per token of B when A precedes it (nats)."""
    together, alone, context = sentence_logprobs(side, [f"{first} {second}", second, first])
    n_tokens = max(1, len(side.tokenizer(" " + second, add_special_tokens=False)["input_ids"]))
    return ((together - context) - alone) / n_tokens


@torch.no_grad()
def continuation(side: LoadedModel, prompt: str, *, max_new_tokens: int, sample: bool, seed: int) -> tuple[str, str]:
    """Greedy or sampled continuation; the same seed on both sides. Returns (text, method)."""
    tok = side.tokenizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if side.family == "causal":
            ids, room = fit_to_positions(_causal_ids(side, prompt).to(side.device), side.model.config, max_new_tokens)
            out = side.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=room,
                do_sample=sample, top_k=50 if sample else None, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), "generate (" + ("sampled" if sample else "greedy") + ")"
        text = prompt
        for _ in range(max_new_tokens):  # masked LM: append a mask, fill it, repeat
            dist = next_token(side, text)
            if sample:
                token_id = int(torch.multinomial(dist.probs, 1))
            else:
                token_id = int(dist.probs.argmax())
            if token_id in (tok.sep_token_id, tok.pad_token_id, tok.cls_token_id):
                break
            piece = tok.convert_ids_to_tokens(token_id)
            text = text + piece[2:] if piece.startswith("##") else f"{text} {tok.decode([token_id])}"
        return text[len(prompt):], "repeated appended [MASK] (approximation)"


@torch.no_grad()
def classify(side: LoadedModel, text: str) -> list[tuple[str, float]]:
    pair = split_pair(text)
    args = pair if pair else (text,)
    encoded = side.tokenizer(*args, return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    probs = side.model(**_to(side, encoded)).logits[0].float().softmax(-1).tolist()
    labels = _id2label(side)
    return sorted(((labels.get(i, str(i)), p) for i, p in enumerate(probs)), key=lambda x: -x[1])


@torch.no_grad()
def tag(side: LoadedModel, text: str) -> list[tuple[str, str, float]]:
    """(word, tag, prob) per word, labelled by its first piece (as run_ner.py trains)."""
    tok = side.tokenizer
    encoded = tok(text, return_tensors="pt", return_offsets_mapping=True, truncation=True, max_length=MAX_TOKENS)
    offsets = encoded.pop("offset_mapping")[0].tolist()
    probs = side.model(**_to(side, encoded)).logits[0].float().softmax(-1)
    labels = _id2label(side)

    spans = word_spans(text)
    seen: set[int] = set()
    out = []
    for position, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        index = word_of(spans, start, end)
        if index is None or index in seen:
            continue
        seen.add(index)
        p, label = probs[position].max(-1)
        out.append((spans[index][0], labels.get(int(label), str(int(label))), float(p)))
    return out


@torch.no_grad()
def answer(side: LoadedModel, question: str, context: str, max_answer_tokens: int = 30) -> dict[str, Any]:
    """The best span of ``context``, decoded exactly as the qa task's metric decodes it.

    The context is cut into the same overlapping windows as in training (at most
    ``MAX_TOKENS`` or the model's positions each), and ``qa.best_spans`` picks the span;
    ``score`` is its probability within the window it was read from.
    """
    from workbench.tasks.finetune.qa import (  # loads datasets: only when used
        QAExample,
        best_spans,
        encode_windows,
        examples_table,
        window_stride,
    )

    max_len = min(MAX_TOKENS, position_limit(side.model.config))
    example = QAExample(id="", context=context, question=question)
    windows = encode_windows(side.tokenizer, examples_table([example])[:], max_len, window_stride(max_len))
    starts, ends = [], []
    for i in range(len(windows["input_ids"])):
        inputs = {k: torch.tensor([windows[k][i]], device=side.device)
                  for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows}
        outputs = side.model(**inputs)
        starts.append(outputs.start_logits[0].float().cpu().numpy())
        ends.append(outputs.end_logits[0].float().cpu().numpy())
    (span,) = best_spans([example], windows["example_index"], windows["offsets"], starts, ends,
                         with_negative=False, max_answer_tokens=max_answer_tokens)
    if span.feature < 0:
        return {"answer": "", "start": 0, "end": 0, "score": 0.0}
    start_logp = torch.from_numpy(starts[span.feature]).log_softmax(-1)[span.start_token]
    end_logp = torch.from_numpy(ends[span.feature]).log_softmax(-1)[span.end_token]
    return {"answer": span.text, "start": span.start, "end": span.end, "score": float((start_logp + end_logp).exp())}


def _id2label(side: LoadedModel) -> dict[int, str]:
    raw = getattr(side.model.config, "id2label", None) or {}
    return {int(k): str(v) for k, v in raw.items()}
