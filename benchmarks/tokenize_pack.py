"""Tokenize-and-pack throughput: the workbench's large-corpus path vs ``run_clm.py``'s.

The baseline is transformers' ``examples/pytorch/language-modeling/run_clm.py`` pipeline,
written out below as it is there: a batched ``map`` that tokenizes (input ids and attention
masks), then a second batched ``map`` with ``group_texts`` (Python ``chain`` and slicing,
plus a ``labels`` copy). The workbench's path (``packing.packed_block_dataset``) does both in
one batched ``map`` with NumPy and stores only int32 blocks. The in-memory path used for
small corpora (``tokenize_split`` + ``pack``) is timed too. Every pipeline runs on the same
corpus and tokenizer with the datasets cache off, alternating, ``--repeats`` times; the
median MB/s and tokens/s are printed. Goal: the workbench at least as fast as the baseline.

    python benchmarks/tokenize_pack.py                            # ../shared/data/peps/train.txt
    python benchmarks/tokenize_pack.py --corpus general --repeats 5 --num-proc 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import chain
from pathlib import Path
from typing import Any, Callable

import datasets

from workbench.corpora import load_corpus
from workbench.quiet import quiet_libraries
from workbench.tasks import packing
from workbench.tokenization import train_tokenizer

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "peps" / "train.txt"


def run_clm_pipeline(ds: Any, column: str, tokenizer: Any, block_size: int, num_proc: int | None) -> int:
    """``run_clm.py``'s tokenize_function + group_texts, as written there; returns blocks."""

    def tokenize_function(examples: dict[str, list]) -> Any:
        return tokenizer(examples[column])

    tokenized = ds.map(tokenize_function, batched=True, num_proc=num_proc, remove_columns=ds.column_names,
                       desc="run_clm tokenize")

    def group_texts(examples: dict[str, list]) -> dict[str, list]:
        concatenated_examples = {k: list(chain(*examples[k])) for k in examples.keys()}
        total_length = len(concatenated_examples[list(examples.keys())[0]])
        total_length = (total_length // block_size) * block_size
        result = {
            k: [t[i : i + block_size] for i in range(0, total_length, block_size)]
            for k, t in concatenated_examples.items()
        }
        result["labels"] = result["input_ids"].copy()
        return result

    grouped = tokenized.map(group_texts, batched=True, num_proc=num_proc, desc="run_clm group_texts")
    return len(grouped)


def workbench_arrow(ds: Any, column: str, tokenizer: Any, block_size: int, num_proc: int | None) -> int:
    return len(packing.packed_block_dataset(ds, column, tokenizer, block_size, append_eos=True, num_proc=num_proc))


def workbench_in_memory(ds: Any, column: str, tokenizer: Any, block_size: int, num_proc: int | None) -> int:
    tokens = packing.tokenize_split(ds, column, tokenizer, append_eos=True)
    return int(packing.pack(tokens["input_ids"], block_size).shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="Corpus name or path (default: the PEPs).")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-proc", type=int, default=None, help="datasets.map processes, for every pipeline.")
    args = parser.parse_args()
    quiet_libraries()
    if args.corpus == str(DEFAULT_CORPUS) and not DEFAULT_CORPUS.is_file():
        args.corpus = "general"
        print(f"{DEFAULT_CORPUS} is absent: using the built-in general corpus")
    datasets.disable_caching()  # time the work, not a cache hit (both pipelines alike)
    corpus = load_corpus(args.corpus)
    ds, column = corpus.train, corpus.text_column
    tokenizer = train_tokenizer("bpe", corpus.texts("train"), args.vocab_size, masked=False)
    texts = list(ds[column])
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    total_tokens = sum(len(row) for row in tokenizer(texts, add_special_tokens=False)["input_ids"])
    print(f"corpus {args.corpus}: {len(ds):,} rows, {megabytes:.1f} MB, {total_tokens:,} tokens; "
          f"blocks of {args.seq_len}; num_proc {args.num_proc or 1}; {args.repeats} repeats")

    pipelines: dict[str, Callable[..., int]] = {
        "run_clm.py (map + group_texts)": run_clm_pipeline,
        "workbench arrow (one map)": workbench_arrow,
        "workbench in-memory": workbench_in_memory,
    }
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    blocks: dict[str, int] = {}
    for repeat in range(args.repeats):
        for name, pipeline in pipelines.items():
            start = time.perf_counter()
            blocks[name] = pipeline(ds, column, tokenizer, args.seq_len, args.num_proc)
            seconds[name].append(time.perf_counter() - start)
        print(f"repeat {repeat + 1}: " + "  ".join(f"{name} {seconds[name][-1]:.2f}s" for name in pipelines), flush=True)
    baseline = statistics.median(seconds["run_clm.py (map + group_texts)"])
    for name in pipelines:
        median = statistics.median(seconds[name])
        print(f"{name:32s} median {median:6.2f}s  {megabytes / median:6.2f} MB/s  {total_tokens / median:10,.0f} tok/s  "
              f"{blocks[name]:,} blocks  speed vs run_clm {baseline / median:.2f}x")


if __name__ == "__main__":
    main()
