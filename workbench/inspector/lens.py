"""The layer where a prediction forms (the logit lens), as plain data (no UI).

For one slot (the first ``[MASK]`` of the text; with no mask, the next token after it), each
layer's hidden state at that position is read through the model's own output head: GPT-2's
final norm ``transformer.ln_f`` then ``lm_head``; BERT's masked-LM head ``cls.predictions``
(its transform, with its own layer norm, then the decoder). The hidden states come from
``output_hidden_states``: row 0 is the embeddings, row i the output of block i. A causal
model's last hidden state already has the final norm applied (transformers does it before
returning it), so the norm is applied to every row but the last, and the last row equals
the model's own output. A model without an LM head (a classifier) is left out, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import torch

from workbench.inspector.loading import LoadedModel
from workbench.inspector.text import MASK_PATTERN, token_display, with_mask_token


@dataclass
class LensSide:
    """One model's top-1 at each layer, or the reason it has none."""

    rows: list[tuple[str, float]] = field(default_factory=list)  # (token, probability), embeddings first
    note: str = ""
    method: str = ""
    position: str = ""


@dataclass
class LensResult:
    text: str
    a: LensSide
    b: LensSide
    label_a: str = "base"
    label_b: str = "tuned"

    @property
    def changed_from(self) -> int | None:
        """The first layer from which the two top-1 tokens differ at every later layer too."""
        pairs = list(zip_longest(self.a.rows, self.b.rows))
        if not pairs or self.a.note or self.b.note:
            return None
        first = None
        for index, (ra, rb) in enumerate(pairs):
            same = ra is not None and rb is not None and ra[0] == rb[0]
            first = None if same else (index if first is None else first)
        return first

    def to_json(self) -> dict[str, Any]:
        def side(s: LensSide) -> dict[str, Any]:
            return {"note": s.note, "method": s.method, "position": s.position,
                    "layers": [{"layer": i, "top1": t, "prob": p} for i, (t, p) in enumerate(s.rows)]}

        return {"text": self.text, "labels": {"a": self.label_a, "b": self.label_b}, "a": side(self.a), "b": side(self.b),
                "changed_from": self.changed_from}


def final_norm(model: Any) -> Any | None:
    """A causal model's final norm: GPT-2's ``transformer.ln_f``, Llama-style ``model.norm``."""
    for outer, name in (("transformer", "ln_f"), ("model", "norm"), ("gpt_neox", "final_layer_norm")):
        norm = getattr(getattr(model, outer, None), name, None)
        if norm is not None:
            return norm
    return None


def _masked_head(model: Any) -> Any | None:
    cls = getattr(model, "cls", None)
    return getattr(cls, "predictions", None) if cls is not None else getattr(model, "lm_head", None)


def _position(side: LoadedModel, text: str) -> tuple[torch.Tensor, int, str]:
    """Input ids and the slot's index: the first mask, or the next token after the text."""
    tok = side.tokenizer
    match = MASK_PATTERN.search(text)
    if side.family == "causal":
        prompt = text[: match.start()].rstrip() if match else text
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        if tok.bos_token_id is not None:
            ids = [tok.bos_token_id] + ids
        return torch.tensor([ids]), len(ids) - 1, f"next token after {prompt!r}"
    query = with_mask_token(text, tok.mask_token) if match else f"{text} {tok.mask_token}"
    ids = tok(query)["input_ids"]
    where = "the first mask" if match else "an appended mask (approximation)"
    return torch.tensor([ids]), ids.index(tok.mask_token_id), where


@torch.no_grad()
def lens_side(side: LoadedModel, text: str) -> LensSide:
    """Top-1 and its probability at each layer for one model."""
    if side.family == "encoder":
        return LensSide(note=f"{side.architecture} has no language-model head to read the layers through")
    model = side.model
    if side.family == "causal":
        norm, head = final_norm(model), model.get_output_embeddings()
        if norm is None or head is None:
            return LensSide(note=f"{side.architecture}: no final norm and output head known to read the layers through")
        method = "final norm + LM head (the last hidden state is already normed)"
    else:
        norm, head = None, _masked_head(model)
        if head is None:
            return LensSide(note=f"{side.architecture}: no masked-LM head known to read the layers through")
        method = "masked-LM head (transform + decoder)"
    ids, index, where = _position(side, text)
    outputs = model(input_ids=ids.to(side.device), output_hidden_states=True)
    states = outputs.hidden_states
    rows = []
    for layer, hidden in enumerate(states):
        h = hidden[0, index]
        if norm is not None and layer < len(states) - 1:
            h = norm(h)
        probs = head(h[None]).float()[0].softmax(-1)
        prob, token_id = probs.max(-1)
        rows.append((token_display(side.tokenizer, int(token_id)), float(prob)))
    return LensSide(rows=rows, method=method, position=where)


def logit_lens(a: LoadedModel, b: LoadedModel, text: str, labels: tuple[str, str] = ("base", "tuned")) -> LensResult:
    return LensResult(text, lens_side(a, text), lens_side(b, text), *labels)
