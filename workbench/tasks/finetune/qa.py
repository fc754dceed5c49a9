"""Question answering: extractive spans with encoders, generated answers with decoders.

Encoders follow HF's ``run_qa.py``: long contexts become overlapping windows (doc stride),
the offset mapping ties tokens back to characters, and ``postprocess`` turns start/end
logits into text (``utils_qa.py``). Decoders read ``Context/Question/Answer:`` prompts,
learn only the answer tokens, and answer by greedy decoding.
"""

from __future__ import annotations

import json
from typing import Any

import datasets
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForQuestionAnswering, DataCollatorWithPadding

from workbench.errors import BaseModelError, SpecError
from workbench.tasks.base import Task, TaskDefaults
from workbench.tasks.finetune.common import LabelledRows, batches, check_base_early, held_out, is_decoder, model_device
from workbench.tasks.finetune.metrics import squad_metrics
from workbench.tasks.finetune.squad import QAExample, read_qa_file

N_BEST = 20
MAX_ANSWER_TOKENS = 30
MAX_NEW_TOKENS = 32


class _QAAutoClass:
    """``from_pretrained`` that picks the QA head for encoders and the LM head for decoders,
    so resuming a checkpoint needs no extra state."""

    def __init__(self, task: "QATask"):
        self.task = task

    def from_pretrained(self, path: str, **kwargs: Any) -> Any:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        self.task.generative = is_decoder(config)
        cls = AutoModelForCausalLM if self.task.generative else AutoModelForQuestionAnswering
        return cls.from_pretrained(path, **kwargs)


class QATask(Task):
    loads_corpus = False

    def __init__(self) -> None:
        defaults = TaskDefaults(lr=5e-5, batch_size=12, seq_len=384, epochs=2, warmup_ratio=0.1)
        super().__init__(
            name="qa",
            auto_class_name="AutoModelForQuestionAnswering",
            masked=True,
            pretraining=False,
            description="question answering needs an encoder (span extraction) or a decoder (generation)",
            scratch_defaults=defaults,
            base_defaults=defaults,
        )
        self.generative = False
        self.with_negative = False
        self.train_examples: list[QAExample] = []
        self.eval_examples: list[QAExample] = []
        self.eval_source = ""

    @property
    def auto_class(self) -> Any:
        return _QAAutoClass(self)

    def check_base(self, config: Any, where: str) -> None:
        from transformers.models.auto import modeling_auto

        self.generative = is_decoder(config)
        self.auto_class_name = "AutoModelForCausalLM" if self.generative else "AutoModelForQuestionAnswering"
        mapping = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if self.generative else modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES
        if config.model_type not in mapping:
            raise BaseModelError(f"a {config.model_type} model cannot do qa ({self.description})", where=where,
                                 fix="use a BERT-family encoder or a GPT-2-family decoder base")

    def build_model(self, size: str, tokenizer: Any, seq_len: int) -> Any:
        raise BaseModelError("qa needs a pre-trained base", fix="pass --base")

    def check_data(self, corpus: Any, spec: Any) -> None:
        check_base_early(self, spec)
        examples = read_qa_file(spec.corpus)
        if spec.eval_corpus:
            self.train_examples, self.eval_examples = examples, read_qa_file(spec.eval_corpus)
            self.eval_source = spec.eval_corpus
        else:
            groups = sorted({e.group for e in examples})
            _, eval_groups = held_out(groups, spec.eval_fraction, spec.seed)
            chosen = set(eval_groups)
            self.train_examples = [e for e in examples if e.group not in chosen]
            self.eval_examples = [e for e in examples if e.group in chosen]
            if not self.train_examples:
                self.train_examples = self.eval_examples
            self.eval_source = f"held-out {spec.eval_fraction:.0%} of the articles (seed {spec.seed})"
        self.with_negative = any(not e.answers for e in self.train_examples + self.eval_examples)

    def prepare(self, corpus: Any, tokenizer: Any, spec: Any) -> LabelledRows:
        if not self.train_examples:
            self.check_data(corpus, spec)
        if self.generative:
            return self._prepare_generative(tokenizer, spec)
        return self._prepare_extractive(tokenizer, spec)

    # ------------------------------------------------------------------ extractive
    def _prepare_extractive(self, tokenizer: Any, spec: Any) -> LabelledRows:
        if not getattr(tokenizer, "is_fast", False):
            raise BaseModelError("qa needs a fast tokenizer (offset mapping)", fix="save the base with a tokenizer.json")
        max_len = spec.seq_len
        stride = min(128, max_len // 4)

        def encode(batch: dict[str, list]) -> dict[str, list]:
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
                context_id = 1  # the question comes first, the context second
                sample = samples[i]
                answer_starts, texts = batch["starts"][sample], batch["answers"][sample]
                start_pos = end_pos = cls
                if answer_starts:
                    start_char = answer_starts[0]
                    end_char = start_char + len(texts[0])
                    first = 0
                    while sequence[first] != context_id:
                        first += 1
                    last = len(ids) - 1
                    while sequence[last] != context_id:
                        last -= 1
                    if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                        while first < len(offsets) and offsets[first][0] <= start_char:
                            first += 1
                        start_pos = first - 1
                        while offsets[last][1] >= end_char:
                            last -= 1
                        end_pos = last + 1
                starts.append(start_pos)
                ends.append(end_pos)
                offsets_out.append([list(o) if sequence[k] == context_id else [-1, -1] for k, o in enumerate(offsets)])
                example_ids.append(batch["index"][sample])
            out["start_positions"], out["end_positions"] = starts, ends
            out["offsets"], out["example_index"] = offsets_out, example_ids
            del out["offset_mapping"]
            return out

        splits = {}
        for split, examples in (("train", self.train_examples), ("eval", self.eval_examples)):
            ds = _examples_table(examples)
            try:
                splits[split] = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
            except Exception as exc:  # noqa: BLE001 - the tokenizer refuses windows with no room for context
                raise SpecError(
                    f"cannot cut the {split} contexts into windows of {max_len} tokens ({' '.join(str(exc).split())[:160]})",
                    where=spec.corpus,
                    fix="raise --seq-len (the question and some context must fit in one window), e.g. 256",
                ) from None
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        model_keys = {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}

        def collate(rows: list[dict]) -> dict:
            return collator([{k: v for k, v in row.items() if k in model_keys} for row in rows])

        return LabelledRows(train=splits["train"], eval=splits["eval"], collate=collate,
                            meta={"qa_mode": "extractive", "qa_eval_source": self.eval_source, "doc_stride": stride})

    # ------------------------------------------------------------------ generative
    def _prepare_generative(self, tokenizer: Any, spec: Any) -> LabelledRows:
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        max_len = spec.seq_len

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
        for split, examples in (("train", self.train_examples), ("eval", self.eval_examples)):
            ds = _examples_table(examples)
            splits[split] = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")

        def collate(rows: list[dict]) -> dict:
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

        return LabelledRows(train=splits["train"], eval=splits["eval"], collate=collate,
                            info={"pad_token_id": pad},
                            meta={"qa_mode": "generative", "qa_eval_source": self.eval_source})

    def model_kwargs(self, data_info: dict[str, Any]) -> dict[str, Any]:
        return dict(data_info)

    # ------------------------------------------------------------------ report
    def final_report(self, model: Any, tokenizer: Any, data: Any, spec: Any, run_dir: Any) -> dict[str, Any]:
        if self.generative:
            predictions = self._generate_answers(model, tokenizer, data)
        else:
            predictions = self._extract_answers(model, data, spec)
        golds = [e.answers for e in self.eval_examples]
        metrics = squad_metrics(predictions, golds)
        with (run_dir.path / "eval_predictions.jsonl").open("w", encoding="utf-8") as handle:
            for example, prediction in zip(self.eval_examples, predictions):
                handle.write(json.dumps({"id": example.id, "question": example.question, "gold": example.answers, "pred": prediction}) + "\n")
        return {"exact_match": metrics["exact_match"], "f1": metrics["f1"], "eval_questions": len(golds),
                "qa_mode": "generative" if self.generative else "extractive"}

    def _extract_answers(self, model: Any, data: LabelledRows, spec: Any) -> list[str]:
        device = model_device(model)
        start_all: list[np.ndarray] = []
        end_all: list[np.ndarray] = []
        for indices in batches(data.num_examples("eval"), spec.batch_size or 12):
            batch, _ = data.batch("eval", indices)
            outputs = model(**{k: v.to(device) for k, v in batch.items() if k not in ("start_positions", "end_positions")})
            for row in range(len(indices)):
                n = int(batch["attention_mask"][row].sum())
                start_all.append(outputs.start_logits[row, :n].float().cpu().numpy())
                end_all.append(outputs.end_logits[row, :n].float().cpu().numpy())
        return postprocess(self.eval_examples, data.eval["example_index"], data.eval["offsets"], start_all, end_all,
                           with_negative=self.with_negative)

    def _generate_answers(self, model: Any, tokenizer: Any, data: LabelledRows) -> list[str]:
        device = model_device(model)
        eos = tokenizer.eos_token_id
        answers = []
        for prompt in data.eval["prompt_ids"]:
            ids = torch.tensor([prompt], device=device)
            output = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                    pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else eos,
                                    eos_token_id=eos)
            text = tokenizer.decode(output[0, len(prompt):], skip_special_tokens=True)
            answers.append(text.split("\n")[0].strip())
        return answers


def prompt_ids(tokenizer: Any, context: str, question: str, budget: int) -> list[int]:
    """``Context: ...\\nQuestion: ...\\nAnswer:``, the context cut to fit ``budget`` tokens."""
    head = tokenizer("Context:", add_special_tokens=False)["input_ids"]
    tail = tokenizer(f"\nQuestion: {question.strip()}\nAnswer:", add_special_tokens=False)["input_ids"]
    body = tokenizer(" " + context.strip(), add_special_tokens=False)["input_ids"]
    room = max(0, budget - len(head) - len(tail))
    return head + body[:room] + tail[-max(1, budget - len(head)) :]


def _examples_table(examples: list[QAExample]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "index": list(range(len(examples))),
        "context": [e.context for e in examples],
        "question": [e.question for e in examples],
        "answers": [e.answers for e in examples],
        "starts": [e.starts for e in examples],
    })


def postprocess(examples: list[QAExample], feature_example: list[int], feature_offsets: list[list[list[int]]],
                start_logits: list[np.ndarray], end_logits: list[np.ndarray], *, with_negative: bool) -> list[str]:
    """Best answer text per example over all its windows (``utils_qa.postprocess_qa_predictions``).

    Spans must lie in the context, end after they start and be at most 30 tokens; with SQuAD
    v2 data the empty answer wins when the [CLS] score beats the best span.
    """
    by_example: dict[int, list[int]] = {}
    for feature, example in enumerate(feature_example):
        by_example.setdefault(example, []).append(feature)
    answers = []
    for index, example in enumerate(examples):
        best_text, best_score = "", -np.inf
        null_score = np.inf
        for feature in by_example.get(index, []):
            starts, ends, offsets = start_logits[feature], end_logits[feature], feature_offsets[feature]
            null_score = min(null_score, float(starts[0] + ends[0]))
            for s in np.argsort(starts)[-1 : -N_BEST - 1 : -1]:
                for e in np.argsort(ends)[-1 : -N_BEST - 1 : -1]:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s][0] < 0 or offsets[e][0] < 0:
                        continue
                    if e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                        continue
                    score = float(starts[s] + ends[e])
                    if score > best_score:
                        best_score, best_text = score, example.context[offsets[s][0] : offsets[e][1]]
        if with_negative and null_score > best_score:
            best_text = ""
        answers.append(best_text)
    return answers
