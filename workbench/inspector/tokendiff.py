"""Where fine-tuning changed the model, token by token: both models score every token of a
passage, as plain data (no UI). The CLI and the TUI's Diff view both call ``diff_passage``.

Causal models: ``log p(token | the tokens before it)``, from one forward pass per window.
Masked models: a pseudo-log-likelihood, each token masked in turn (the masked copies run in
batches) and scored from both sides of it. A passage longer than a model's positions is cut
into overlapping windows of the same width on both sides; each token is scored once, in
the window that gives it the most context (causal: the most tokens before it; masked: the
most on its nearer side), and ``PassageDiff.window_note`` says so.

Every number is in nats; ``change`` is tuned minus base, so a positive change means the tuned
model finds the token more likely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.errors import WorkbenchError
from workbench.inspector.loading import LoadedModel
from workbench.inspector.masked_rows import hidden_at
from workbench.inspector.text import token_displays, trim_span
from workbench.models import position_limit

TOP = 5
"""Predictions kept at each position (the TUI's cursor panel shows them; the CLI shows 3)."""
MASKED_BATCH = 16
"""Masked copies per forward pass: bounds memory for a long passage, and is how often Escape
is checked. 16 ran MiniLM's 128-token pseudo-log-likelihood 8% faster than 64 on 2 idle CPU
cores (medians of 8, interleaved; docs/results.md)."""
SMALLEST = 0.005
"""Smaller changes are not listed among the largest gains and losses."""
MAX_WIDTH = 1024
"""Widest window scored, whatever a model's positions allow."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: forward passes done so far."""


class DiffCancelled(Exception):
    """The caller's ``cancelled()`` said stop (the TUI's Escape)."""


@dataclass
class TokenScore:
    """One token of the passage under both models."""

    token: str
    start: int
    end: int
    logprob_a: float | None  # None: not scored (a causal model's first token with no BOS before it)
    logprob_b: float | None
    context: int
    """Tokens the model saw around it when scoring it (causal: before it)."""
    top_a: list[tuple[str, float]] = field(default_factory=list)
    top_b: list[tuple[str, float]] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        if self.logprob_a is None or self.logprob_b is None:
            return None
        return self.logprob_b - self.logprob_a

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "start": self.start, "end": self.end, "logprob_a": self.logprob_a,
                "logprob_b": self.logprob_b, "change": self.change, "context": self.context,
                "top_a": [[t, p] for t, p in self.top_a], "top_b": [[t, p] for t, p in self.top_b]}


@dataclass
class PassageDiff:
    """Every token of one passage, scored by both models the same way."""

    text: str
    family: str  # causal or masked
    method: str
    windows: int
    width: int
    tokens: list[TokenScore]
    label_a: str = "base"
    label_b: str = "tuned"

    @property
    def scored(self) -> list[TokenScore]:
        return [t for t in self.tokens if t.change is not None]

    @property
    def mean_change(self) -> float | None:
        scored = self.scored
        return sum(t.change for t in scored) / len(scored) if scored else None  # type: ignore[misc]

    @property
    def window_note(self) -> str:
        if self.windows <= 1:
            return f"whole passage in one window ({len(self.tokens)} tokens)"
        context = "the most tokens before it" if self.family == "causal" else "the most context on its nearer side"
        return (f"{len(self.tokens)} tokens, longer than one {self.width}-token window: scored in {self.windows} "
                f"overlapping windows, each token once, in the window giving it {context}")

    @property
    def summary(self) -> str:
        """The mean change and what it covers, in one line."""
        mean = self.mean_change
        if mean is None:
            return f"no token scored ({self.method})"
        return (f"mean change {mean:+.3f} nats per token ({self.label_b} − {self.label_a}), over {len(self.scored)} "
                f"tokens, {self.method}")

    def largest(self, n: int = 10, *, gains: bool) -> list[tuple[int, TokenScore]]:
        """The ``n`` largest gains (tuned more confident) or losses, with their token index;
        changes under ``SMALLEST`` nats (which would print as 0.00) are left out."""
        pairs = [(i, t) for i, t in enumerate(self.tokens) if t.change is not None and (t.change > 0) == gains and abs(t.change) >= SMALLEST]
        return sorted(pairs, key=lambda p: -abs(p[1].change))[:n]  # type: ignore[arg-type]

    def context_of(self, index: int, around: int = 30) -> tuple[str, str, str]:
        """(text before, the token, text after) with ``around`` characters either side."""
        token = self.tokens[index]
        return (self.text[max(0, token.start - around):token.start], self.text[token.start:token.end],
                self.text[token.end:token.end + around])

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "family": self.family, "method": self.method, "unit": "nats",
                "labels": {"a": self.label_a, "b": self.label_b}, "windows": self.windows, "width": self.width,
                "window_note": self.window_note, "mean_change": self.mean_change, "scored": len(self.scored),
                "tokens": [t.to_json() for t in self.tokens]}


# ---------------------------------------------------------------------------- what can be compared
def check_comparable(a: LoadedModel, b: LoadedModel, labels: tuple[str, str] = ("base", "tuned")) -> str:
    """The family both sides score in (causal or masked); one-line errors otherwise."""
    for side, label in ((a, labels[0]), (b, labels[1])):
        if side.family == "encoder":
            raise WorkbenchError(f"{label} ({side.architecture}) has no language-model head, so its tokens cannot be scored",
                                 where=side.ref.given, fix="compare models with a masked-LM or causal-LM head")
    if a.family != b.family:
        raise WorkbenchError(f"{labels[0]} is a {a.family} model and {labels[1]} a {b.family} one: their token scores "
                             "mean different things", fix="compare two causal or two masked models")
    if a.tokenizer is not b.tokenizer and a.tokenizer.get_vocab() != b.tokenizer.get_vocab():
        raise WorkbenchError(f"the two models' tokenizers differ ({len(a.tokenizer)} vs {len(b.tokenizer)} tokens), "
                             "and a token-level diff needs the same tokens on both sides", where=b.ref.given,
                             fix="compare a fine-tune with its own base, or use --mode surprisal (compares by word)")
    return a.family


# ---------------------------------------------------------------------------- windows
def plan_windows(n: int, width: int, *, causal: bool) -> list[tuple[int, list[int]]]:
    """Windows over ``n`` positions, each ``min(n, width)`` wide: ``(start, positions it scores)``.

    Starts step by half a window, the last one flush with the end. Causal: a position is
    scored in the first window holding it (the most tokens before it). Masked: in the window
    where it sits furthest from an edge.
    """
    width = max(2, min(n, width))
    if n <= width:
        return [(0, list(range(n)))]
    stride = max(1, width // 2)
    starts = list(range(0, n - width, stride)) + [n - width]
    owned: dict[int, list[int]] = {s: [] for s in starts}
    for position in range(n):
        holding = [s for s in starts if s <= position < s + width]
        if causal:
            best = holding[0]
        else:
            best = max(holding, key=lambda s: min(position - s, s + width - 1 - position))
        owned[best].append(position)
    return [(s, owned[s]) for s in starts if owned[s]]


def _width(a: LoadedModel, b: LoadedModel, specials: int) -> int:
    """Tokens of passage per window: the narrower model's positions, less its special tokens."""
    limit = min(position_limit(a.model.config), position_limit(b.model.config), MAX_WIDTH)
    return limit - specials


# ---------------------------------------------------------------------------- scoring one side
@dataclass
class _Scores:
    logprobs: list[float | None]
    tops: list[list[tuple[str, float]]]
    context: list[int]


def _tops(side: LoadedModel, logp: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
    if k <= 0:
        return [[] for _ in range(len(logp))]
    values, ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
    id_rows = ids.tolist()
    names = token_displays(side.tokenizer, [i for row in id_rows for i in row])
    return [[(names[i], v) for v, i in zip(row_v, row_i)] for row_v, row_i in zip(values.exp().tolist(), id_rows)]


@torch.no_grad()
def causal_scores(side: LoadedModel, ids: list[int], plan: list[tuple[int, list[int]]], width: int, top: int,
                  hooks: tuple[Progress | None, Callable[[], bool] | None] = (None, None)) -> _Scores:
    """``ids`` with BOS first when the tokenizer has one; position 0 is never scored. One
    batched forward pass over every window (each ``width`` wide)."""
    progress, cancelled = hooks
    batch = torch.tensor([ids[s:s + width] for s, _ in plan], dtype=torch.long, device=side.device)
    if cancelled is not None and cancelled():
        raise DiffCancelled
    logits = side.model(input_ids=batch).logits.float()
    n = len(ids)
    out = _Scores([None] * n, [[] for _ in range(n)], [0] * n)
    rows, cols, targets, where = [], [], [], []
    for row, (start, positions) in enumerate(plan):
        for position in positions:
            if position == 0:
                continue  # nothing before it to predict it from
            rows.append(row)
            cols.append(position - start - 1)
            targets.append(ids[position])
            where.append((position, position - start))
    if rows:
        logp = logits[torch.tensor(rows), torch.tensor(cols)].log_softmax(-1).cpu()
        scores = logp.gather(-1, torch.tensor(targets)[:, None])[:, 0].tolist()
        for (position, context), score, best in zip(where, scores, _tops(side, logp, top)):
            out.logprobs[position], out.tops[position], out.context[position] = score, best, context
    if progress is not None:
        progress(len(plan), len(plan))
    return out


def mlm_head(model: Any) -> tuple[Any, Any] | None:
    """(encoder, head) of a masked LM whose head can read hidden states directly (BERT's
    ``cls.predictions``, RoBERTa's ``lm_head``), so logits are computed at the masked
    positions only; None for another class (the whole model runs instead)."""
    cls = getattr(model, "cls", None)
    head = getattr(cls, "predictions", None) if cls is not None else getattr(model, "lm_head", None)
    encoder = getattr(model, "base_model", None)
    if head is None or encoder is None or encoder is model:
        return None
    return encoder, head


@torch.no_grad()
def masked_scores(side: LoadedModel, ids: list[int], plan: list[tuple[int, list[int]]], width: int, top: int,
                  hooks: tuple[Progress | None, Callable[[], bool] | None] = (None, None)) -> _Scores:
    """Pseudo-log-likelihood: one copy of its window per token, that token masked."""
    progress, cancelled = hooks
    tok = side.tokenizer
    prefix, suffix = special_frame(tok)
    copies: list[tuple[list[int], int, int]] = []  # (window with specials, masked index in it, passage position)
    for start, positions in plan:
        window = prefix + ids[start:start + width] + suffix
        for position in positions:
            copies.append((window, position - start + len(prefix), position))
    n = len(ids)
    out = _Scores([None] * n, [[] for _ in range(n)], [0] * n)
    split = mlm_head(side.model)
    for first in range(0, len(copies), MASKED_BATCH):
        if cancelled is not None and cancelled():
            raise DiffCancelled
        chunk = copies[first:first + MASKED_BATCH]
        batch = torch.tensor([window for window, _, _ in chunk], dtype=torch.long)
        rows, cols = torch.arange(len(chunk)), torch.tensor([index for _, index, _ in chunk])
        batch[rows, cols] = tok.mask_token_id
        batch = batch.to(side.device)
        if split is not None:
            encoder, head = split
            hidden = hidden_at(encoder, batch, cols.to(batch.device))
            if hidden is None:
                hidden = encoder(input_ids=batch).last_hidden_state[rows, cols]
            logits = head(hidden)
        else:
            outputs = side.model(input_ids=batch)
            logits = getattr(outputs, "prediction_logits", None)
            logits = (outputs.logits if logits is None else logits)[rows, cols]
        logp = logits.float().log_softmax(-1).cpu()
        targets = torch.tensor([ids[p] for _, _, p in chunk])
        scores = logp.gather(-1, targets[:, None])[:, 0].tolist()
        for (window, _, position), score, best in zip(chunk, scores, _tops(side, logp, top)):
            out.logprobs[position], out.tops[position], out.context[position] = score, best, len(window) - 1
        if progress is not None:
            progress(min(first + MASKED_BATCH, len(copies)), len(copies))
    return out


def special_frame(tok: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS], [SEP])."""
    probe = "a"
    bare = tok(probe, add_special_tokens=False)["input_ids"]
    full = tok(probe)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


# ---------------------------------------------------------------------------- the diff
def tokenize_passage(side: LoadedModel, text: str) -> tuple[list[int], list[tuple[int, int]], bool]:
    """Passage token ids and character spans; for a causal model with a BOS token, the BOS
    first (span (0, 0)) so the first word is scored. The flag says whether a BOS leads."""
    tok = side.tokenizer
    encoded = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    spans = [trim_span(text, int(s), int(e)) for s, e in encoded["offset_mapping"]]
    lead = side.family == "causal" and tok.bos_token_id is not None
    if lead:
        return [tok.bos_token_id] + ids, [(0, 0)] + spans, True
    return ids, spans, False


def diff_passage(a: LoadedModel, b: LoadedModel, text: str, *, labels: tuple[str, str] = ("base", "tuned"), top: int = TOP,
                 progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> PassageDiff:
    """Score every token of ``text`` under ``a`` and ``b`` (same tokenizer, same family)."""
    family = check_comparable(a, b, labels)
    if not text.strip():
        raise WorkbenchError("the passage is empty", fix="give a passage with some text in it")
    ids, spans, lead = tokenize_passage(a, text)
    causal = family == "causal"
    width = _width(a, b, 0 if causal else sum(map(len, special_frame(a.tokenizer))))
    plan = plan_windows(len(ids), width, causal=causal)
    width = min(len(ids), width)
    score = causal_scores if causal else masked_scores
    sides = []
    for index, side in enumerate((a, b)):
        step = None if progress is None else (lambda done, total, i=index: progress(i * total + done, 2 * total))
        sides.append(score(side, ids, plan, width, top, (step, cancelled)))
    sa, sb = sides
    skip = 1 if lead else 0
    names = token_displays(a.tokenizer, ids)
    tokens = [TokenScore(names[ids[i]], *spans[i], sa.logprobs[i], sb.logprobs[i], sa.context[i],
                         sa.tops[i], sb.tops[i]) for i in range(skip, len(ids))]
    if causal:
        method = "causal LM: log p(token | the tokens before it)"
        if not lead:
            method += "; the first token has nothing before it and is not scored"
    else:
        method = "masked LM pseudo-log-likelihood: each token masked in turn and scored from both sides"
    return PassageDiff(text, family, method, len(plan), width, tokens, *labels)
