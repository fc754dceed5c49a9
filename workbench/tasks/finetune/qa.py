"""Question answering: extractive spans with encoders, generated answers with decoders.

Two tasks behind one objective (the registry picks by the base): ``ExtractiveQATask``
follows HF's ``run_qa.py``: long contexts become overlapping windows (doc stride), the
offset mapping ties tokens back to characters, and ``best_spans`` turns start/end logits
into text (``utils_qa.py``; the inspector decodes with it too). ``GenerativeQATask`` reads
``Context/Question/Answer:`` prompts, learns only the answer tokens, and answers by greedy
decoding. Both read the same files, split them the same way and score with SQuAD's metric.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import torch
from transformers import DataCollatorWithPadding

from workbench.errors import BaseModelError, SpecError
from workbench.models import fit_to_positions, is_decoder
from workbench.tasks.base import Task, TaskDefaults
from workbench.tasks.finetune.common import LabelledRows, batches, held_out, model_device, require_encoder
from workbench.tasks.finetune.metrics import squad_metrics
from workbench.tasks.finetune.squad import QAExample, read_qa_file

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

N_BEST = 20
MAX_ANSWER_TOKENS = 30
MAX_NEW_TOKENS = 32
QA_DEFAULTS = TaskDefaults(lr=5e-5, batch_size=12, seq_len=384, epochs=2, warmup_ratio=0.1)


# ---------------------------------------------------------------------- data both tasks share
@dataclass
class QACorpus:
    """Train and eval questions, split by article (a held-out split never shares a context)."""

    train: list[QAExample]
    eval: list[QAExample]
    location: str
    eval_source: str
    eval_rows: list[int] = field(default_factory=list)
    """Each eval question's 0-based index among the questions of its file (file order)."""
    eval_file: str = ""
    """That file: ``--eval-corpus``, or ``location`` for a held-out part."""

    @property
    def name(self) -> str:
        return Path(self.location).name


@dataclass(frozen=True)
class QAFacts:
    """What ``check_data`` found: whether some questions have no answer (SQuAD v2)."""

    with_negative: bool


@dataclass
class QARows(LabelledRows):
    """Encoded rows plus the eval questions they came from (for answer-level metrics)."""

    eval_examples: list[QAExample] = field(default_factory=list)
    with_negative: bool = False
    eval_rows: list[int] = field(default_factory=list)
    eval_file: str = ""
    """The file the eval questions are read from; ``eval_rows`` number them in it."""


def load_qa_corpus(spec: ResolvedSpec) -> QACorpus:
    examples = read_qa_file(spec.data.corpus)
    if spec.data.eval_corpus:
        held = read_qa_file(spec.data.eval_corpus)
        return QACorpus(examples, held, spec.data.corpus, spec.data.eval_corpus, eval_rows=list(range(len(held))),
                        eval_file=spec.data.eval_corpus)
    groups = list(dict.fromkeys(e.group for e in examples)) if spec.data.holdout == "tail" else sorted({e.group for e in examples})
    _, eval_groups = held_out(groups, spec.data.eval_fraction, spec.train.seed, spec.data.holdout)
    chosen = set(eval_groups)
    train = [e for e in examples if e.group not in chosen]
    rows = [i for i, e in enumerate(examples) if e.group in chosen]
    evaluation = [examples[i] for i in rows]
    source = (f"the last {spec.data.eval_fraction:.0%} of the articles" if spec.data.holdout == "tail"
              else f"held-out {spec.data.eval_fraction:.0%} of the articles (seed {spec.train.seed})")
    return QACorpus(train or evaluation, evaluation, spec.data.corpus, source, eval_rows=rows)


def examples_table(examples: Sequence[QAExample]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "index": list(range(len(examples))),
        "context": [e.context for e in examples],
        "question": [e.question for e in examples],
        "answers": [e.answers for e in examples],
        "starts": [e.starts for e in examples],
    })


class QATaskBase(Task):
    """What extractive and generative QA share: input, split, checks, the report."""

    qa_mode = ""

    def __init__(self, auto_class_name: str) -> None:
        super().__init__(
            name="qa",
            auto_class_name=auto_class_name,
            masked=True,
            pretraining=False,
            description="question answering needs an encoder (span extraction) or a decoder (generation)",
            scratch_defaults=QA_DEFAULTS,
            base_defaults=QA_DEFAULTS,
        )

    def base_fix(self) -> str:
        return "use a BERT-family encoder or a GPT-2-family decoder base"

    def load_corpus(self, spec: ResolvedSpec) -> QACorpus:
        return load_qa_corpus(spec)

    def check_data(self, corpus: QACorpus, spec: ResolvedSpec) -> QAFacts:
        """Answer spans are checked as the files are read; this notes unanswerable questions."""
        return QAFacts(with_negative=any(not e.answers for e in corpus.train + corpus.eval))

    def rows(self, corpus: QACorpus, checked: QAFacts, splits: dict[str, Any], collate: Any, **meta: Any) -> QARows:
        return QARows(train=splits["train"], eval=splits["eval"], collate=collate, eval_examples=list(corpus.eval),
                      with_negative=checked.with_negative, eval_rows=list(corpus.eval_rows),
                      eval_file=corpus.eval_file or corpus.location,
                      meta={"qa_mode": self.qa_mode, "qa_eval_source": corpus.eval_source, **meta})

    def run_meta(self, data: Any) -> dict[str, Any]:
        return dict(data.meta)

    def predict_answers(self, model: Any, tokenizer: Any, data: QARows, spec: ResolvedSpec) -> list[str]:
        raise NotImplementedError

    def final_report(self, model: Any, tokenizer: Any, data: QARows, spec: ResolvedSpec, run_dir: Any) -> dict[str, Any]:
        predictions = self.predict_answers(model, tokenizer, data, spec)
        golds = [e.answers for e in data.eval_examples]
        metrics = squad_metrics(predictions, golds)
        rows = data.eval_rows if len(data.eval_rows) == len(predictions) else list(range(len(predictions)))
        places = question_places(data.eval_file, rows) if rows is data.eval_rows else [{} for _ in rows]
        with (run_dir.path / "eval_predictions.jsonl").open("w", encoding="utf-8") as handle:
            for _, place, example, prediction in sorted(zip(rows, places, data.eval_examples, predictions), key=lambda item: item[0]):
                handle.write(json.dumps({**place, "id": example.id, "question": example.question, "gold": example.answers,
                                         "pred": prediction}) + "\n")
        return {"exact_match": metrics["exact_match"], "f1": metrics["f1"], "eval_questions": len(golds), "qa_mode": self.qa_mode}


def question_places(file: str, rows: Sequence[int]) -> list[dict[str, int]]:
    """Where each eval question is in its file, for ``eval_predictions.jsonl``: ``{"line": n}``
    (1-based) in a JSON Lines file, else ``{"row": i}``, its 0-based index among the file's
    questions (SQuAD JSON, where questions nest in articles and paragraphs)."""
    path = Path(file).expanduser()
    if path.suffix.lower() != ".jsonl":
        return [{"row": row} for row in rows]
    try:  # the questions are its non-blank lines, split as ``read_qa_jsonl`` splits them
        lines = [n for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1) if line.strip()]
    except (OSError, UnicodeDecodeError):
        return [{"row": row} for row in rows]
    return [{"line": lines[row]} if row < len(lines) else {"row": row} for row in rows]


# ---------------------------------------------------------------------- extractive
class ExtractiveQATask(QATaskBase):
    """An encoder with a span head: start and end logits over each context window."""

    qa_mode = "extractive"

    def __init__(self) -> None:
        super().__init__("AutoModelForQuestionAnswering")

    def mapping_name(self) -> str:
        return "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        require_encoder(config, where, "qa", "answers by generating text (GenerativeQATask), not by span extraction")
        super().check_base(config, where)

    def prepare(self, corpus: QACorpus, tokenizer: Any, spec: ResolvedSpec, checked: QAFacts | None = None) -> QARows:
        checked = checked or self.check_data(corpus, spec)
        if not getattr(tokenizer, "is_fast", False):
            raise BaseModelError("qa needs a fast tokenizer (offset mapping)", fix="save the base with a tokenizer.json")
        max_len = spec.data.seq_len
        stride = window_stride(max_len)
        splits = {}
        for split, examples in (("train", corpus.train), ("eval", corpus.eval)):
            ds = examples_table(examples)
            try:
                splits[split] = ds.map(lambda batch: encode_windows(tokenizer, batch, max_len, stride), batched=True,
                                       remove_columns=ds.column_names, desc="Tokenizing")
            except BaseException as exc:  # noqa: BLE001 - the tokenizer refuses windows with no room for context
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise  # (its refusal is a Rust panic, which is no Exception, hence BaseException)
                raise SpecError(
                    f"cannot cut the {split} contexts into windows of {max_len} tokens ({' '.join(str(exc).split())[:160]})",
                    where=spec.data.corpus,
                    fix="raise --seq-len (the question and some context must fit in one window), e.g. 256",
                ) from None
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        model_keys = {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}

        def collate(rows: list[dict]) -> dict:
            return collator([{k: v for k, v in row.items() if k in model_keys} for row in rows])

        return self.rows(corpus, checked, splits, collate, doc_stride=stride)

    @torch.no_grad()
    def predict_answers(self, model: Any, tokenizer: Any, data: QARows, spec: ResolvedSpec) -> list[str]:
        device = model_device(model)
        start_all: list[np.ndarray] = []
        end_all: list[np.ndarray] = []
        for indices in batches(data.num_examples("eval"), spec.train.batch_size):
            batch, _ = data.batch("eval", indices)
            outputs = model(**{k: v.to(device) for k, v in batch.items() if k not in ("start_positions", "end_positions")})
            for row in range(len(indices)):
                n = int(batch["attention_mask"][row].sum())
                start_all.append(outputs.start_logits[row, :n].float().cpu().numpy())
                end_all.append(outputs.end_logits[row, :n].float().cpu().numpy())
        return postprocess(data.eval_examples, data.eval["example_index"], data.eval["offsets"], start_all, end_all,
                           with_negative=data.with_negative)


def window_stride(max_len: int) -> int:
    """Tokens two consecutive windows of one context share."""
    return min(128, max_len // 4)


def answer_positions(sequence: list[int | None], offsets: list[tuple[int, int]], answer_starts: list[int],
                     texts: list[str], cls: int) -> tuple[int, int]:
    """Token positions of the first answer in one window, or (cls, cls) when it is not inside."""
    if not answer_starts:
        return cls, cls
    start_char = answer_starts[0]
    end_char = start_char + len(texts[0])
    context_id = 1  # the question comes first, the context second
    first = 0
    while sequence[first] != context_id:
        first += 1
    last = len(sequence) - 1
    while sequence[last] != context_id:
        last -= 1
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls, cls
    while first < len(offsets) and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def encode_windows(tokenizer: Any, batch: dict[str, list], max_len: int, stride: int) -> dict[str, list]:
    """Question + context windows of ``max_len`` tokens (a batch of ``examples_table`` rows).

    Each window gets its answer's token positions (the [CLS] position when the answer is not
    in it), ``offsets`` (character spans of context tokens, [-1, -1] elsewhere) and the
    ``example_index`` it came from.
    """
    out = tokenizer(
        [q.lstrip() for q in batch["question"]], batch["context"],
        truncation="only_second", max_length=max_len, stride=stride,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    samples = out.pop("overflow_to_sample_mapping")
    starts, ends, offsets_out, example_ids = [], [], [], []
    for i, offsets in enumerate(out["offset_mapping"]):
        ids = out["input_ids"][i]
        cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        sequence = out.sequence_ids(i)
        sample = samples[i]
        start, end = answer_positions(sequence, offsets, batch["starts"][sample], batch["answers"][sample], cls)
        starts.append(start)
        ends.append(end)
        offsets_out.append([list(o) if sequence[k] == 1 else [-1, -1] for k, o in enumerate(offsets)])
        example_ids.append(batch["index"][sample])
    out["start_positions"], out["end_positions"] = starts, ends
    out["offsets"], out["example_index"] = offsets_out, example_ids
    del out["offset_mapping"]
    return dict(out)


@dataclass
class Span:
    """The best answer of one example: its text and characters, the window it was read from
    (``feature``, -1 for none) with its token positions, and its score (start + end logit)."""

    text: str = ""
    start: int = 0
    end: int = 0
    score: float = -np.inf
    feature: int = -1
    start_token: int = -1
    end_token: int = -1


def best_spans(examples: Sequence[QAExample], feature_example: Sequence[int], feature_offsets: Sequence[Sequence[Sequence[int]]],
               start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], *, with_negative: bool,
               max_answer_tokens: int = MAX_ANSWER_TOKENS) -> list[Span]:
    """Best span per example over all its windows (``utils_qa.postprocess_qa_predictions``).

    Among the ``N_BEST`` top starts and ends of each window, spans must lie in the context,
    end after they start and be at most ``max_answer_tokens`` long; with SQuAD v2 data the
    empty answer wins when the [CLS] score beats the best span.
    """
    by_example: dict[int, list[int]] = {}
    for feature, example in enumerate(feature_example):
        by_example.setdefault(example, []).append(feature)
    answers = []
    for index, example in enumerate(examples):
        best, null_score = Span(), np.inf
        for feature in by_example.get(index, []):
            starts, ends, offsets = start_logits[feature], end_logits[feature], feature_offsets[feature]
            null_score = min(null_score, float(starts[0] + ends[0]))
            for s in np.argsort(starts)[-1 : -N_BEST - 1 : -1]:
                for e in np.argsort(ends)[-1 : -N_BEST - 1 : -1]:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s][0] < 0 or offsets[e][0] < 0:
                        continue
                    if e < s or e - s + 1 > max_answer_tokens:
                        continue
                    score = float(starts[s] + ends[e])
                    if score > best.score:
                        first, last = offsets[s][0], offsets[e][1]
                        best = Span(example.context[first:last], first, last, score, feature, int(s), int(e))
        answers.append(Span() if with_negative and null_score > best.score else best)
    return answers


def postprocess(examples: Sequence[QAExample], feature_example: Sequence[int], feature_offsets: Sequence[Sequence[Sequence[int]]],
                start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], *, with_negative: bool) -> list[str]:
    """The answer text per example (see ``best_spans``)."""
    return [span.text for span in best_spans(examples, feature_example, feature_offsets, start_logits, end_logits,
                                             with_negative=with_negative)]


# ---------------------------------------------------------------------- generative
class GenerativeQATask(QATaskBase):
    """A decoder that reads a prompt and writes the answer (its LM head, no span head)."""

    qa_mode = "generative"

    def __init__(self) -> None:
        super().__init__("AutoModelForCausalLM")

    def mapping_name(self) -> str:
        return "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        if not is_decoder(config):
            raise BaseModelError(f"a {config.model_type} model is not a decoder, so it cannot generate answers",
                                 where=where, fix="use a GPT-2-family base for generated answers, or an encoder for extractive qa")
        super().check_base(config, where)

    def prepare(self, corpus: QACorpus, tokenizer: Any, spec: ResolvedSpec, checked: QAFacts | None = None) -> QARows:
        checked = checked or self.check_data(corpus, spec)
        eos = tokenizer.eos_token_id
        pad = pad_id(tokenizer)
        max_len = spec.data.seq_len

        def encode(batch: dict[str, list]) -> dict[str, list]:
            input_ids, labels, prompts = [], [], []
            for context, question, answers in zip(batch["context"], batch["question"], batch["answers"]):
                prompt = prompt_ids(tokenizer, context, question, max_len - MAX_NEW_TOKENS)
                target = tokenizer(" " + answers[0], add_special_tokens=False)["input_ids"][: MAX_NEW_TOKENS - 1] if answers else []
                target = target + [eos]
                input_ids.append(prompt + target)
                labels.append([-100] * len(prompt) + target)
                prompts.append(prompt)
            return {"input_ids": input_ids, "labels": labels, "prompt_ids": prompts}

        splits = {}
        for split, examples in (("train", corpus.train), ("eval", corpus.eval)):
            ds = examples_table(examples)
            splits[split] = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
        return self.rows(corpus, checked, splits, lambda rows: pad_rows(rows, pad))

    def model_kwargs(self, checked: Any, tokenizer: Any = None) -> dict[str, Any]:
        """The pad id (end-of-text when the tokenizer has none), so ``generate`` needs no guess."""
        return {"pad_token_id": pad_id(tokenizer)} if tokenizer is not None else {}

    @torch.no_grad()
    def predict_answers(self, model: Any, tokenizer: Any, data: QARows, spec: ResolvedSpec) -> list[str]:
        device = model_device(model)
        eos = tokenizer.eos_token_id
        answers = []
        for prompt in data.eval["prompt_ids"]:
            ids, room = fit_to_positions(torch.tensor([prompt], device=device), model.config, MAX_NEW_TOKENS)
            output = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=room, do_sample=False,
                                    pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else eos,
                                    eos_token_id=eos)
            text = tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)
            answers.append(text.split("\n")[0].strip())
        return answers


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def pad_rows(rows: list[dict], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask``."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def prompt_ids(tokenizer: Any, context: str, question: str, budget: int) -> list[int]:
    """``Context: ...\\nQuestion: ...\\nAnswer:``, the context cut to fit ``budget`` tokens."""
    head = tokenizer("Context:", add_special_tokens=False)["input_ids"]
    tail = tokenizer(f"\nQuestion: {question.strip()}\nAnswer:", add_special_tokens=False)["input_ids"]
    body = tokenizer(" " + context.strip(), add_special_tokens=False)["input_ids"]
    room = max(0, budget - len(head) - len(tail))
    return head + body[:room] + tail[-max(1, budget - len(head)) :]
