"""One query, both models: masked fill-in, next token, surprisal, sentence pairs, task heads.

Each side answers with its own head where it has one; where it has none the answer says
how it was approximated (``method``) or that it was skipped (``note``). Every row also
carries where the same token sits on the other side, so rank and probability changes can
be shown and tested without re-deriving them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.inspector import predict
from workbench.inspector.loading import LoadedModel
from workbench.inspector.text import (
    MASK_PATTERN,
    PAIR_SEPARATOR,
    TokenisationDiff,
    compare_tokenisations,
    count_masks,
    fill_masks,
    is_wordlike,
    prefix_before_mask,
    split_pair,
    word_spans,
)

MODES = ("auto", "mask", "next", "surprisal", "pair", "task")


@dataclass
class QueryOptions:
    mode: str = "auto"
    top_k: int = 5
    candidates: list[str] = field(default_factory=list)
    max_new_tokens: int = 12
    sample: bool = False
    seed: int = 0


@dataclass
class Row:
    """One token on one side, and the same token's probability and rank on the other side."""

    token: str
    key: str
    prob: float
    rank: int
    other_prob: float | None = None
    other_rank: int | None = None

    @property
    def rank_change(self) -> int | None:
        """Positive when this side ranks the token higher than the other side does."""
        return None if self.other_rank is None else self.other_rank - self.rank

    @property
    def prob_change(self) -> float | None:
        return None if self.other_prob is None else self.prob - self.other_prob

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), rank_change=self.rank_change, prob_change=self.prob_change)


@dataclass
class SideAnswer:
    method: str = ""
    rows: list[Row] = field(default_factory=list)
    note: str = ""
    approximate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "approximate": self.approximate, "note": self.note,
                "rows": [r.to_json() for r in self.rows]}


@dataclass
class Slot:
    """One position to predict: a mask, or the next token."""

    label: str
    a: SideAnswer
    b: SideAnswer
    candidates: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "a": self.a.to_json(), "b": self.b.to_json(), "candidates": self.candidates}


@dataclass
class QueryResult:
    text: str
    mode: str
    tokenization: TokenisationDiff
    slots: list[Slot] = field(default_factory=list)
    continuation: dict | None = None
    surprisal: dict | None = None
    pair: dict | None = None
    task: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text, "mode": self.mode, "tokenization": self.tokenization.to_json(),
            "slots": [s.to_json() for s in self.slots], "continuation": self.continuation,
            "surprisal": self.surprisal, "pair": self.pair, "task": self.task, "notes": self.notes,
        }


# ---------------------------------------------------------------------------- dispatch
def pick_mode(text: str, a: LoadedModel, b: LoadedModel, requested: str = "auto") -> str:
    if requested not in MODES:
        raise WorkbenchError(f"unknown inspect mode {requested!r}", fix=f"use one of: {', '.join(MODES)}")
    if requested == "mask" and count_masks(text) == 0:
        raise WorkbenchError("a masked query needs at least one [MASK] (or ___) in the text", where=repr(text),
                             fix='write e.g. --text "The cat sat on the [MASK]."')
    if requested == "pair" and split_pair(text) is None:
        raise WorkbenchError("a pair query needs 'A ||| B'", where=repr(text), fix='write --text "A ||| B" or use --pair B')
    if requested == "task" and not (a.task_head or b.task_head):
        raise WorkbenchError("neither model has a task head (classification, tagging or QA)",
                             fix="compare a fine-tuned task run, or use --mode mask, next, surprisal or pair")
    if requested != "auto":
        return requested
    if b.task_head or a.task_head:
        return "task"
    if split_pair(text) is not None:
        return "pair"
    if count_masks(text):
        return "mask"
    return "next"


def run_query(a: LoadedModel, b: LoadedModel, text: str, options: QueryOptions | None = None) -> QueryResult:
    """Answer ``text`` with both models; ``a`` is the base (or first) model."""
    options = options or QueryOptions()
    if not text.strip():
        raise WorkbenchError("the query text is empty", fix='pass --text "..."')
    mode = pick_mode(text, a, b, options.mode)
    plain = " ".join(MASK_PATTERN.sub(" ", text).replace(PAIR_SEPARATOR, " ").split())
    result = QueryResult(text=text, mode=mode, tokenization=compare_tokenisations(a.tokenizer, b.tokenizer, plain))
    if mode == "mask":
        result.slots = masked_query(a, b, text, options)
    elif mode == "next":
        result.slots = [next_token_query(a, b, text, options)]
        if options.max_new_tokens > 0:
            result.continuation = continuation_query(a, b, text, options)
        result.surprisal = surprisal_query(a, b, text, options.top_k)
    elif mode == "surprisal":
        result.surprisal = surprisal_query(a, b, MASK_PATTERN.sub("", text), options.top_k)
    elif mode == "pair":
        result.pair = pair_query(a, b, text)
    elif mode == "task":
        result.task = task_query(a, b, text)
    return result


def _no_head(side: LoadedModel, what: str) -> str:
    return f"no {what} head ({side.architecture})"


def _dedupe(keys: list[str]) -> list[str]:
    seen, out = set(), []
    for key in keys:
        if key and key.lower() not in seen:
            seen.add(key.lower())
            out.append(key)
    return out


def _rows(dist: Any, other: Any, k: int) -> list[Row]:
    rows = []
    for choice in dist.top(k):
        found = other.lookup(choice.key) if other is not None else None
        rows.append(Row(choice.display, choice.key, choice.prob, choice.rank,
                        found[0] if found else None, found[1] if found else None))
    return rows


# ---------------------------------------------------------------------------- masked fill-in
def masked_query(a: LoadedModel, b: LoadedModel, text: str, options: QueryOptions) -> list[Slot]:
    """Masked sides answer natively; causal sides rank a shared candidate list by the
    likelihood of the whole sentence with each candidate filled in.

    Candidates for a mask are the masked sides' top-k, each causal side's top-k next
    tokens after the text before the mask, and ``--candidates``. Other masks in the
    sentence are filled with their first candidate while one mask is scored.
    """
    n = count_masks(text)
    k = options.top_k
    dists: dict[int, list[Any]] = {}
    for index, side in enumerate((a, b)):
        if side.family == "masked":
            found = predict.masked_slots(side, text)
            if len(found) != n:
                raise WorkbenchError(f"the {side.architecture} tokenizer found {len(found)} masks, the text has {n}",
                                     where=repr(text), fix="write masks as [MASK] with spaces around them")
            dists[index] = found
    causal = [i for i, side in enumerate((a, b)) if side.family == "causal"]
    slot_candidates: list[list[str] | None] = [None] * n
    if causal:
        fills: list[str] = []
        for m in range(n):
            keys = [c.key for i in dists for c in dists[i][m].top(k, skip_pieces=True)]
            for i in causal:
                prefix = prefix_before_mask(text, m, fills)
                side = (a, b)[i]
                if prefix or side.tokenizer.bos_token_id is not None:
                    keys += [c.key for c in predict.next_token(side, prefix).top(k)]
            keys = [key for key in _dedupe(keys) if is_wordlike(key)] + list(options.candidates)
            keys = _dedupe(keys)
            slot_candidates[m] = keys
            fills.append(keys[0] if keys else "")
        for i in causal:
            side = (a, b)[i]
            dists[i] = []
            for m in range(n):
                keys = slot_candidates[m] or []
                sentences = [fill_masks(text, fills[:m] + [key] + fills[m + 1:]) for key in keys]
                dists[i].append(predict.CandidateRanking(keys, predict.sentence_logprobs(side, sentences) if keys else []))
    slots = []
    for m in range(n):
        answers = []
        for i, side in enumerate((a, b)):
            other = dists.get(1 - i, [None] * n)[m]
            if i not in dists:
                answers.append(SideAnswer(note=_no_head(side, "language-model")))
                continue
            dist = dists[i][m]
            if side.family == "causal":
                method = f"full-sentence likelihood over {len(slot_candidates[m] or [])} candidates"
                answers.append(SideAnswer(method=method, rows=_rows(dist, other, k), approximate=True))
            else:
                answers.append(SideAnswer(method="masked LM", rows=_rows(dist, other, k)))
        slots.append(Slot(f"mask {m + 1}" if n > 1 else "mask", answers[0], answers[1], slot_candidates[m]))
    return slots


# ---------------------------------------------------------------------------- next token
def next_token_query(a: LoadedModel, b: LoadedModel, prompt: str, options: QueryOptions) -> Slot:
    dists = [predict.next_token(s, prompt) if s.family != "encoder" else None for s in (a, b)]
    answers = []
    for i, side in enumerate((a, b)):
        dist = dists[i]
        if dist is None:
            answers.append(SideAnswer(note=_no_head(side, "language-model")))
            continue
        answers.append(SideAnswer(method=dist.method, rows=_rows(dist, dists[1 - i], options.top_k),
                                  approximate=side.family == "masked"))
    return Slot("next token", answers[0], answers[1])


def continuation_query(a: LoadedModel, b: LoadedModel, prompt: str, options: QueryOptions) -> dict:
    out: dict[str, Any] = {"seed": options.seed, "sampled": options.sample, "max_new_tokens": options.max_new_tokens}
    for name, side in (("a", a), ("b", b)):
        if side.family == "encoder":
            out[name] = {"text": "", "method": "", "note": _no_head(side, "language-model")}
            continue
        text, method = predict.continuation(side, prompt, max_new_tokens=options.max_new_tokens,
                                            sample=options.sample, seed=options.seed)
        out[name] = {"text": text, "method": method, "note": ""}
    return out


# ---------------------------------------------------------------------------- surprisal
def surprisal_query(a: LoadedModel, b: LoadedModel, text: str, top: int) -> dict:
    """Per-token surprisal on both sides and the units whose surprisal changed most.

    Units are tokens when both tokenizers cut the text identically, otherwise words
    (a word's surprisal is the sum over its tokens), so different vocabularies compare.
    """
    out: dict[str, Any] = {}
    scored = {}
    for name, side in (("a", a), ("b", b)):
        if side.family == "encoder":
            out[name] = {"method": "", "tokens": [], "mean_bits": None, "note": _no_head(side, "language-model")}
            continue
        tokens, method = predict.surprisal(side, text)
        values = [t.bits for t in tokens if t.bits is not None]
        out[name] = {"method": method, "note": "", "mean_bits": sum(values) / len(values) if values else None,
                     "tokens": [{"token": t.token, "start": t.start, "end": t.end, "bits": t.bits} for t in tokens]}
        scored[name] = tokens
    changes: list[dict] = []
    unit = "token"
    if len(scored) == 2:
        ta, tb = scored["a"], scored["b"]
        if [(t.start, t.end) for t in ta] == [(t.start, t.end) for t in tb]:
            pairs = [(text[x.start:x.end] or x.token, x.bits, y.bits) for x, y in zip(ta, tb)]
        else:
            unit = "word"
            pairs = [(word, wa, wb) for word, wa, wb in zip(*_by_word(text, ta, tb))]
        changes = [{"unit": u, "a_bits": x, "b_bits": y, "change": y - x} for u, x, y in pairs if x is not None and y is not None]
        changes.sort(key=lambda c: -abs(c["change"]))
        changes = changes[:top]
    out["unit"] = unit
    out["changes"] = changes
    return out


def _by_word(text: str, ta: list, tb: list) -> tuple[list[str], list, list]:
    spans = word_spans(text)

    def sums(tokens: list) -> list:
        totals: list[float | None] = [0.0] * len(spans)
        for t in tokens:
            for w, (_, ws, we) in enumerate(spans):
                if t.start < we and t.end > ws:
                    totals[w] = None if t.bits is None or totals[w] is None else totals[w] + t.bits
                    break
        return totals

    return [w for w, _, _ in spans], sums(ta), sums(tb)


# ---------------------------------------------------------------------------- pairs and tasks
def pair_query(a: LoadedModel, b: LoadedModel, text: str) -> dict:
    pair = split_pair(text)
    assert pair is not None
    first, second = pair
    out: dict[str, Any] = {"first": first, "second": second}
    for name, side in (("a", a), ("b", b)):
        if "nsp" in side.heads:
            out[name] = {"prob_next": predict.next_sentence_prob(side, first, second), "gain": None,
                         "method": "next-sentence head", "note": ""}
        elif side.family == "causal":
            out[name] = {"prob_next": None, "gain": predict.continuation_gain(side, first, second),
                         "method": "causal LM: log-prob gain per token of B after A (nats; approximation, not a probability)",
                         "note": ""}
        else:
            out[name] = {"prob_next": None, "gain": None, "method": "", "note": _no_head(side, "next-sentence")}
    return out


TASK_NAMES = {"classify": "sequence-classification", "tag": "token-classification", "qa": "question-answering"}


def task_query(a: LoadedModel, b: LoadedModel, text: str) -> dict:
    head = b.task_head or a.task_head
    assert head is not None
    out: dict[str, Any] = {"head": head}
    if head == "qa" and split_pair(text) is None:
        raise WorkbenchError("a question-answering model needs 'QUESTION ||| CONTEXT'", where=repr(text),
                             fix='write --text "Who sat? ||| The cat sat on the mat."')
    for name, side in (("a", a), ("b", b)):
        if head not in side.heads:
            out[name] = {"note": _no_head(side, TASK_NAMES[head])}
            continue
        if head == "classify":
            out[name] = {"labels": [{"label": lab, "prob": p} for lab, p in predict.classify(side, text)], "note": ""}
        elif head == "tag":
            out[name] = {"words": [{"word": w, "tag": t, "prob": p} for w, t, p in predict.tag(side, text)], "note": ""}
        else:
            question, context = split_pair(text)  # type: ignore[misc]
            out[name] = dict(predict.answer(side, question, context), note="")
    return out
