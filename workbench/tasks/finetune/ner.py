"""Named-entity recognition (token classification) on CoNLL or JSONL files.

Labels are aligned to sub-words as in HF's ``run_ner.py``: a word's first sub-word carries
its tag, the other sub-words and special tokens get -100 (ignored by the loss). Metrics are
entity-level (conlleval/seqeval), computed on whole words.
"""

from __future__ import annotations

import json
from typing import Any

import datasets
from transformers import DataCollatorForTokenClassification

from workbench.errors import BaseModelError
from workbench.tasks.base import Task
from workbench.tasks.finetune.common import FINETUNE_DEFAULTS, LabelledRows, check_base_early, held_out, predict_rows, require_encoder
from workbench.tasks.finetune.conll import Sentence, ner_files, read_ner_file
from workbench.tasks.finetune.labels import check_known, label_maps
from workbench.tasks.finetune.metrics import entity_counts, entity_metrics


class NERTask(Task):
    loads_corpus = False

    def __init__(self) -> None:
        super().__init__(
            name="ner",
            auto_class_name="AutoModelForTokenClassification",
            masked=True,
            pretraining=False,
            description="token classification needs a model with a token-classification head",
            scratch_defaults=FINETUNE_DEFAULTS,
            base_defaults=FINETUNE_DEFAULTS,
        )
        self.labels: list[str] = []
        self.train_sentences: list[Sentence] = []
        self.eval_sentences: list[Sentence] = []
        self.eval_source = ""

    def mapping_name(self) -> str:
        return "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        require_encoder(config, where, "ner", "tags each word using the words after it too, which a left-to-right model cannot see")
        super().check_base(config, where)

    def build_model(self, size: str, tokenizer: Any, seq_len: int) -> Any:
        raise BaseModelError("ner needs a pre-trained base", fix="pass --base")

    def check_data(self, corpus: Any, spec: Any) -> None:
        """Read the files, build the tag set from training data, reject unknown eval tags."""
        check_base_early(self, spec)
        train_path, eval_path = ner_files(spec.corpus)
        if spec.eval_corpus:
            eval_path, _ = ner_files(spec.eval_corpus)
        sentences = read_ner_file(train_path)
        if eval_path is not None:
            self.train_sentences, self.eval_sentences = sentences, read_ner_file(eval_path)
            self.eval_source = str(eval_path)
        else:
            self.train_sentences, self.eval_sentences = held_out(sentences, spec.eval_fraction, spec.seed)
            self.eval_source = f"held-out {spec.eval_fraction:.0%} of {train_path.name} (seed {spec.seed})"
        # B- and I- for every entity type seen in training (a held-out split shares the file):
        # an eval entity longer than any training one is not an unknown tag.
        seen = self.train_sentences if eval_path is not None else sentences
        types = sorted({t[2:] for s in seen for t in s.tags if t != "O"})
        self.labels = ["O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI")]
        if eval_path is not None:
            for sentence in self.eval_sentences:
                check_known(sentence.tags, self.labels, str(eval_path), "tag", sentence.lines)

    def prepare(self, corpus: Any, tokenizer: Any, spec: Any) -> LabelledRows:
        if not self.labels:
            self.check_data(corpus, spec)
        if not getattr(tokenizer, "is_fast", False):
            raise BaseModelError("ner needs a fast tokenizer (for word alignment)", fix="save the base with a tokenizer.json")
        id2label, label2id = label_maps(self.labels)

        def encode(batch: dict[str, list]) -> dict[str, list]:
            out = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=spec.seq_len)
            labels, word_ids = [], []
            for row, tags in enumerate(batch["tags"]):
                ids = out.word_ids(row)
                previous = None
                aligned = []
                for word in ids:
                    aligned.append(-100 if word is None or word == previous else label2id[tags[word]])
                    previous = word
                labels.append(aligned)
                word_ids.append([-1 if w is None else w for w in ids])
            out["labels"] = labels
            out["word_ids"] = word_ids
            return out

        splits = {}
        for split, sentences in (("train", self.train_sentences), ("eval", self.eval_sentences)):
            ds = datasets.Dataset.from_dict({"tokens": [s.tokens for s in sentences], "tags": [s.tags for s in sentences]})
            splits[split] = ds.map(encode, batched=True, remove_columns=["tokens"], desc="Tokenizing")
        collator = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
        model_keys = {"input_ids", "attention_mask", "token_type_ids", "labels"}

        def collate(rows: list[dict]) -> dict:
            return collator([{k: v for k, v in row.items() if k in model_keys} for row in rows])

        return LabelledRows(
            train=splits["train"], eval=splits["eval"], collate=collate,
            info={"num_labels": len(self.labels), "id2label": id2label, "label2id": label2id},
            meta={"labels": list(self.labels), "ner_eval_source": self.eval_source},
        )

    def model_kwargs(self, data_info: dict[str, Any]) -> dict[str, Any]:
        return dict(data_info)

    def eval_metrics(self, outputs: Any, batch: Any, totals: dict[str, float]) -> None:
        """Entity counts on first sub-words (the eval subset's words within --seq-len)."""
        id2label = dict(enumerate(self.labels))
        predictions = outputs.logits.argmax(-1).tolist()
        for pred_row, gold_row in zip(predictions, batch["labels"].tolist()):
            gold = [id2label[g] for g in gold_row if g != -100]
            pred = [id2label[p] for p, g in zip(pred_row, gold_row) if g != -100]
            for correct, predicted, actual in entity_counts(gold, pred).values():
                totals["correct"] = totals.get("correct", 0.0) + correct
                totals["predicted"] = totals.get("predicted", 0.0) + predicted
                totals["gold"] = totals.get("gold", 0.0) + actual

    def finish_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        correct, predicted, gold = (totals.get(k, 0.0) for k in ("correct", "predicted", "gold"))
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        return {"entity_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}

    def final_report(self, model: Any, tokenizer: Any, data: Any, spec: Any, run_dir: Any) -> dict[str, Any]:
        """Entity P/R/F1 on every eval sentence; words cut off by --seq-len count as ``O``."""
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        word_ids_all = data.eval["word_ids"]
        predicted_tags: list[list[str]] = []

        def each(outputs: Any, batch: dict) -> None:
            for row in outputs.logits.argmax(-1).tolist():
                index = len(predicted_tags)
                sentence = self.eval_sentences[index]
                tags = ["O"] * len(sentence.tokens)
                previous = None
                for position, word in enumerate(word_ids_all[index]):
                    if word >= 0 and word != previous:
                        tags[word] = id2label[row[position]]
                    previous = word
                predicted_tags.append(tags)

        predict_rows(model, data, "eval", spec.batch_size or 16, each)
        gold_tags = [s.tags for s in self.eval_sentences]
        metrics = entity_metrics(gold_tags, predicted_tags)
        with (run_dir.path / "eval_predictions.jsonl").open("w", encoding="utf-8") as handle:
            for sentence, tags in zip(self.eval_sentences, predicted_tags):
                handle.write(json.dumps({"tokens": sentence.tokens, "gold": sentence.tags, "pred": tags}) + "\n")
        return {
            "entity_precision": metrics["precision"],
            "entity_recall": metrics["recall"],
            "entity_f1": metrics["f1"],
            "per_type_f1": metrics["per_type_f1"],
            "eval_sentences": len(gold_tags),
        }
