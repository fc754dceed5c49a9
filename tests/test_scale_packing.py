"""Large-corpus packing: one ``datasets.map`` tokenizes and packs into a cached Arrow
dataset of fixed-length blocks, read by index; the engine switches to it by size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

from workbench.config import RunSpec
from workbench.corpora import load_corpus
from workbench.engine import TrainingRun
from workbench.tasks import packing
from workbench.tasks.base import BlockData
from workbench.tokenization import train_tokenizer

SEQ = 16


@pytest.fixture(scope="module")
def corpus_and_tokenizer(story_corpus: Path):
    corpus = load_corpus(str(story_corpus))
    return corpus, train_tokenizer("bpe", corpus.texts("train"), 300, masked=False)


def test_pack_rows_appends_eos_and_drops_the_remainder() -> None:
    blocks = packing.pack_rows([[1, 2, 3], [4, 5]], 3, eos=9)
    assert blocks.dtype == np.int32
    assert blocks.tolist() == [[1, 2, 3], [9, 4, 5]]  # the final eos (one token) is the dropped remainder
    assert packing.pack_rows([[1, 2]], 3, eos=None).shape == (0, 3)


def test_arrow_blocks_equal_the_in_memory_blocks_and_are_cached(corpus_and_tokenizer) -> None:
    corpus, tokenizer = corpus_and_tokenizer
    in_memory = packing.pack(packing.tokenize_split(corpus.train, "text", tokenizer, append_eos=True)["input_ids"], SEQ)
    first = packing.packed_block_dataset(corpus.train, "text", tokenizer, SEQ, append_eos=True)
    # One map batch holds the whole small corpus, so the blocks are exactly the tensor path's.
    blocks = packing.ArrowBlocks(first, SEQ)
    assert blocks.shape == tuple(in_memory.shape)
    picked = [5, 0, len(blocks) - 1]
    assert torch.equal(blocks[picked], in_memory[picked])
    assert blocks[picked].dtype == torch.int64
    again = packing.packed_block_dataset(corpus.train, "text", tokenizer, SEQ, append_eos=True)
    assert first.cache_files and again.cache_files == first.cache_files  # the datasets fingerprint cache


def test_size_threshold_switches_to_arrow_blocks(corpus_and_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, tokenizer = corpus_and_tokenizer
    train, _ = packing.packed_blocks(corpus, tokenizer, SEQ, append_eos=True)
    assert isinstance(train, torch.Tensor)
    monkeypatch.setenv(packing.ARROW_THRESHOLD_ENV, "0")
    train, evaluation = packing.packed_blocks(corpus, tokenizer, SEQ, append_eos=True)
    assert isinstance(train, packing.ArrowBlocks) and isinstance(evaluation, packing.ArrowBlocks)
    data = BlockData(train=train, eval=evaluation, transform=lambda b: {"input_ids": b, "labels": b})
    batch, tokens = data.batch("train", [0, 1])
    assert batch["input_ids"].shape == (2, SEQ) and tokens == 2 * SEQ


def test_engine_trains_from_arrow_blocks(story_corpus: Path, run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(packing.ARROW_THRESHOLD_ENV, "0")
    spec = RunSpec(**tiny_overrides(corpus=str(story_corpus), objective="mlm", out=str(run_root), max_steps=4,
                                     device="cpu", probes=[], eval_interval=100))
    run = TrainingRun(spec)
    result = run.run()
    assert isinstance(run.state.data.train, packing.ArrowBlocks)
    assert result.status == "finished" and np.isfinite(result.summary["eval_loss_after"])
