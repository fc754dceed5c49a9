"""Query text: masks, sentence pairs, words, and how a tokenizer cuts them.

Tokenisations are compared through character offsets, which do not depend on the
vocabulary: two tokenizers cut a word the same way exactly when their pieces cover the
same character spans, whatever the pieces are called (``##at``, ``Ġmat``, lower case...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MASK_PATTERN = re.compile(r"\[MASK\]|<mask>|_{3,}")
PAIR_SEPARATOR = "|||"
WORD_PATTERN = re.compile(r"\S+")


def count_masks(text: str) -> int:
    return len(MASK_PATTERN.findall(text))


def split_pair(text: str) -> tuple[str, str] | None:
    """``"A ||| B"`` -> (A, B); None when the text is not a pair."""
    if PAIR_SEPARATOR not in text:
        return None
    first, second = text.split(PAIR_SEPARATOR, 1)
    return first.strip(), second.strip()


def with_mask_token(text: str, mask_token: str) -> str:
    return MASK_PATTERN.sub(mask_token, text)


def fill_masks(text: str, fills: list[str]) -> str:
    """Replace the i-th mask with ``fills[i]``."""
    parts = iter(fills)
    return MASK_PATTERN.sub(lambda _: next(parts), text)


def prefix_before_mask(text: str, index: int, fills: list[str]) -> str:
    """The text before mask ``index``, with earlier masks filled."""
    match = list(MASK_PATTERN.finditer(text))[index]
    return fill_masks(text[: match.start()], fills[:index]).rstrip()


def pieces(tokenizer: Any, text: str) -> list[tuple[str, tuple[int, int]]]:
    """(token string, character span) for each non-special token of ``text``."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    return [(tok, trim_span(text, int(s), int(e))) for tok, (s, e) in zip(tokens, encoded["offset_mapping"])]


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop the leading space a byte-level BPE token's offsets include (``Ġsat``)."""
    while start < end - 1 and text[start].isspace():
        start += 1
    return start, end


def word_spans(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def word_of(spans: list[tuple[str, int, int]], start: int, end: int) -> int | None:
    """Index of the word a token (character span) belongs to."""
    for index, (_, ws, we) in enumerate(spans):
        if ws <= start < we or (start == end == ws):
            return index
    for index, (_, ws, we) in enumerate(spans):  # a leading-space token: its first real char
        if start < we and end > ws:
            return index
    return None


@dataclass
class TokenisationDiff:
    """How two tokenizers cut the same text."""

    a: list[str]
    b: list[str]
    same: bool
    differences: list[dict]  # {"word", "a": [...], "b": [...]}

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "same": self.same, "differences": self.differences}


def compare_tokenisations(tok_a: Any, tok_b: Any, text: str) -> TokenisationDiff:
    a, b = pieces(tok_a, text), pieces(tok_b, text)
    spans = word_spans(text)
    by_word: list[tuple[list, list]] = [([], []) for _ in spans]
    for side, items in ((0, a), (1, b)):
        for token, (start, end) in items:
            index = word_of(spans, start, end)
            if index is not None:
                by_word[index][side].append((token, (start, end)))
    differences = []
    for (word, _, _), (pa, pb) in zip(spans, by_word):
        if [span for _, span in pa] != [span for _, span in pb] or _unknown(tok_a, pa) != _unknown(tok_b, pb):
            differences.append({"word": word, "a": [t for t, _ in pa], "b": [t for t, _ in pb]})
    return TokenisationDiff(a=[t for t, _ in a], b=[t for t, _ in b], same=not differences, differences=differences)


def _unknown(tokenizer: Any, items: list) -> bool:
    unk = getattr(tokenizer, "unk_token", None)
    return unk is not None and any(t == unk for t, _ in items) and unk not in ("<|endoftext|>",)


def token_key(tokenizer: Any, token_id: int) -> str:
    """A vocabulary-independent name for a token: its text without markers or spaces."""
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    if isinstance(token, str) and token.startswith("##"):
        return token[2:]
    text = tokenizer.decode([int(token_id)])
    return text.strip() or token


def token_display(tokenizer: Any, token_id: int) -> str:
    """What to show: ``##at`` stays visibly a word piece; a leading space shows as ``␣``."""
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    if isinstance(token, str) and token.startswith("##"):
        return token
    text = tokenizer.decode([int(token_id)])
    if text.startswith(" "):
        text = "␣" + text[1:]
    return printable(text or str(token))


def token_displays(tokenizer: Any, token_ids: list[int]) -> dict[int, str]:
    """``token_display`` for many ids at once (one batched decode: a passage's top-k lists
    name thousands of tokens)."""
    unique = sorted(set(int(i) for i in token_ids))
    pieces = tokenizer.convert_ids_to_tokens(unique)
    texts = tokenizer.batch_decode([[i] for i in unique])
    out = {}
    for token_id, piece, text in zip(unique, pieces, texts):
        if isinstance(piece, str) and piece.startswith("##"):
            out[token_id] = piece
            continue
        if text.startswith(" "):
            text = "␣" + text[1:]
        out[token_id] = printable(text or str(piece))
    return out


def printable(text: str) -> str:
    """Newlines and control characters as visible symbols, so a table row stays one row."""
    text = text.replace("\n", "⏎").replace("\t", "⇥")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def is_wordlike(key: str) -> bool:
    """A fill-in candidate worth scoring: it has a letter or digit."""
    return any(ch.isalnum() for ch in key)


def token_id_for(tokenizer: Any, key: str, *, leading_space: bool) -> int | None:
    """The single token id whose key is ``key`` (None when it takes several tokens)."""
    tries = [" " + key, key] if leading_space else [key, " " + key]
    for text in tries:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and token_key(tokenizer, ids[0]).lower() == key.lower():
            return int(ids[0])
    return None
