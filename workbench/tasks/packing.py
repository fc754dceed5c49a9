"""Tokenize documents and pack them into fixed-length blocks (``run_clm.py``'s group_texts).

Tokenizing goes through ``datasets.map(batched=True)``, so it is cached by fingerprint;
packing leaves no padding, so every token in a batch is trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workbench.corpora import Corpus
from workbench.errors import CorpusError


def tokenize_split(ds: Any, column: str, tokenizer: Any, *, append_eos: bool) -> Any:
    eos = tokenizer.eos_token_id

    def encode(batch: dict[str, list]) -> dict[str, list]:
        ids = tokenizer(batch[column], add_special_tokens=not append_eos, return_attention_mask=False)["input_ids"]
        if append_eos:
            ids = [row + [eos] for row in ids]
        return {"input_ids": ids}

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")


def pack(token_rows: Any, seq_len: int) -> torch.Tensor:
    """Concatenate all rows and cut into ``seq_len`` blocks, dropping the remainder."""
    flat = np.fromiter((t for row in token_rows for t in row), dtype=np.int64)
    usable = (len(flat) // seq_len) * seq_len
    return torch.from_numpy(flat[:usable].reshape(-1, seq_len).copy())


def packed_blocks(corpus: Corpus, tokenizer: Any, seq_len: int, *, append_eos: bool) -> tuple[torch.Tensor, torch.Tensor]:
    splits = {}
    for split, ds in (("train", corpus.train), ("eval", corpus.eval)):
        tokens = tokenize_split(ds, corpus.text_column, tokenizer, append_eos=append_eos)
        blocks = pack(tokens["input_ids"], seq_len)
        if blocks.shape[0] == 0:
            total = sum(len(r) for r in tokens["input_ids"])
            raise CorpusError(
                f"the {split} split has {total} tokens, fewer than one sequence of {seq_len}",
                where=corpus.source.location,
                fix="use a larger corpus or a smaller --seq-len",
            )
        splits[split] = blocks
    return splits["train"], splits["eval"]
