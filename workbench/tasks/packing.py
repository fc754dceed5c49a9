"""Tokenize documents and pack them into fixed-length blocks (``run_clm.py``'s group_texts).

Tokenizing goes through ``datasets.map(batched=True)``, so it is cached by fingerprint;
packing leaves no padding, so every token in a batch is trained on.

Two paths, chosen by the corpus's size:

- small corpora (the usual case): all blocks in one in-memory tensor, the cheapest batch;
- corpora above ``arrow_threshold_bytes()`` (default 512 MB of text): one ``datasets.map``
  tokenizes *and* packs each batch of rows into fixed-length blocks, in ``num_proc``
  processes, into a memory-mapped Arrow dataset cached by the datasets fingerprint; training
  reads only the blocks each step asks for (``ArrowBlocks``), so a corpus of tens of GB never
  sits in RAM. Each map batch drops its own remainder (under ``seq_len`` tokens per
  ``PACK_BATCH_ROWS`` rows), as ``run_clm.py``'s ``group_texts`` does.

Both maps heal their cache (``corpora.cache.healing``): a cached token file that no longer
loads is discarded and rebuilt with a one-line notice, not a crash on every later run.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import torch

from workbench.corpora import Corpus, cache, progress
from workbench.corpora.progress import advance
from workbench.errors import CorpusError

ARROW_THRESHOLD_ENV = "WORKBENCH_ARROW_PACK_MB"
DEFAULT_ARROW_THRESHOLD_MB = 512
NUM_PROC_ENV = "WORKBENCH_NUM_PROC"
PACK_BATCH_ROWS = 2000
PARALLEL_MIN_ROWS = 50_000
"""Below this many rows, starting worker processes costs more than it saves."""


def tokenize_split(ds: Any, column: str, tokenizer: Any, *, append_eos: bool) -> Any:
    eos = tokenizer.eos_token_id

    def encode(batch: dict[str, list]) -> dict[str, list]:
        ids = tokenizer(batch[column], add_special_tokens=not append_eos, return_attention_mask=False)["input_ids"]
        if append_eos:
            ids = [row + [eos] for row in ids]
        advance(len(ids))
        return {"input_ids": ids}

    return cache.healing(ds, lambda: ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing"))


def pack(token_rows: Any, seq_len: int) -> torch.Tensor:
    """Concatenate all rows and cut into ``seq_len`` blocks, dropping the remainder."""
    flat = np.fromiter((t for row in token_rows for t in row), dtype=np.int64)
    usable = (len(flat) // seq_len) * seq_len
    return torch.from_numpy(flat[:usable].reshape(-1, seq_len).copy())


# ---------------------------------------------------------------------- large corpora
def arrow_threshold_bytes() -> int:
    return int(float(os.environ.get(ARROW_THRESHOLD_ENV, DEFAULT_ARROW_THRESHOLD_MB)) * (1 << 20))


def table_bytes(ds: Any) -> int:
    """Size of a split's Arrow buffers (memory-mapped tables are not read to measure it)."""
    return int(ds.data.nbytes)


def default_num_proc(rows: int) -> int | None:
    if NUM_PROC_ENV in os.environ:
        wanted = int(os.environ[NUM_PROC_ENV])
        return wanted if wanted > 1 else None
    if rows < PARALLEL_MIN_ROWS:
        return None
    return min(8, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else None


def pack_rows(ids: list[list[int]], seq_len: int, eos: int | None) -> np.ndarray:
    """One map batch's token rows -> ``(blocks, seq_len)`` int32, remainder dropped."""
    rows = ((*row, eos) for row in ids) if eos is not None else ids
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32)
    usable = (len(flat) // seq_len) * seq_len
    return flat[:usable].reshape(-1, seq_len)


def packed_block_dataset(ds: Any, column: str, tokenizer: Any, seq_len: int, *, append_eos: bool,
                         num_proc: int | None = None) -> Any:
    """Tokenize and pack in one ``datasets.map`` into a dataset of fixed-length int32 blocks.

    One pass (no intermediate tokenized table, no attention masks or label copies) is what
    makes it at least as fast as ``run_clm.py``'s tokenize-then-``group_texts``.
    """
    import datasets  # datasets: loaded on first use

    eos = tokenizer.eos_token_id if append_eos else None

    def tokenize_and_pack(batch: dict[str, list]) -> dict[str, np.ndarray]:
        ids = tokenizer(batch[column], add_special_tokens=not append_eos, return_attention_mask=False)["input_ids"]
        advance(len(ids))  # a no-op in map's worker processes
        return {"input_ids": pack_rows(ids, seq_len, eos)}

    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32"), length=seq_len)})
    return cache.healing(ds, lambda: ds.map(
        tokenize_and_pack,
        batched=True,
        batch_size=PACK_BATCH_ROWS,
        remove_columns=ds.column_names,
        features=features,
        num_proc=num_proc if num_proc is not None else default_num_proc(len(ds)),
        desc="Tokenizing and packing",
    ))


class ArrowBlocks:
    """Blocks in a (memory-mapped) Arrow dataset, indexed like the in-memory tensor.

    ``BlockData`` only does ``blocks[indices]`` and ``blocks.shape[0]``; this answers both by
    reading just the rows asked for, as int64 like the tensor path.
    """

    def __init__(self, dataset: Any, seq_len: int):
        self.dataset = dataset.with_format("numpy", columns=["input_ids"])
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.dataset), self.seq_len)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        rows = self.dataset[indices]["input_ids"]
        return torch.from_numpy(np.asarray(rows, dtype=np.int64).reshape(len(indices), self.seq_len))


# ---------------------------------------------------------------------- both paths
def packed_blocks(corpus: Corpus, tokenizer: Any, seq_len: int, *, append_eos: bool) -> tuple[Any, Any]:
    """Train and eval blocks: tensors for small corpora, ``ArrowBlocks`` above the threshold."""
    large = table_bytes(corpus.train) + table_bytes(corpus.eval) >= arrow_threshold_bytes()
    splits = {}
    with progress.stage("tokenizing", len(corpus.train) + len(corpus.eval)):  # advanced by the rows of both splits
        for split, ds in (("train", corpus.train), ("eval", corpus.eval)):
            if large:
                blocks: Any = ArrowBlocks(packed_block_dataset(ds, corpus.text_column, tokenizer, seq_len,
                                                               append_eos=append_eos), seq_len)
            else:
                tokens = tokenize_split(ds, corpus.text_column, tokenizer, append_eos=append_eos)
                blocks = pack(tokens["input_ids"], seq_len)
            if blocks.shape[0] == 0:
                raise CorpusError(
                    f"the {split} split has fewer tokens than one sequence of {seq_len}",
                    where=corpus.source.location,
                    fix="use a larger corpus or a smaller --seq-len",
                )
            splits[split] = blocks
    return splits["train"], splits["eval"]
