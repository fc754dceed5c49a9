"""Each fine-tuning objective trains a tiny model a few steps on small files and reports its
metrics; the final ``model/`` loads with the matching ``AutoModelFor*``.

Bases are real workbench runs (a few ``mlm`` / ``clm`` steps on the story corpus), so base
resolution from a run dir, the base identity in run.toml and the forgetting hook are
exercised too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import transformers

from tests.conftest import tiny_overrides
from workbench.config import ResolvedSpec, RunSpec
from workbench.engine.runner import run_spec
from workbench.runs.rundir import RunDir

STEPS = dict(max_steps=4, eval_interval=2, eval_batches=1)
PEOPLE = ["Ada", "Bob", "Cleo", "Dan", "Eve", "Finn"]
PLACES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi"]


def train(tmp: Path, **fields) -> dict:
    spec = RunSpec(**{**tiny_overrides(**STEPS), "out": str(tmp / "runs"), "device": "cpu", **fields})
    return run_spec(spec).summary


@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> dict[str, str]:
    """A tiny encoder (mlm) and a tiny decoder (clm), each pre-trained 4 steps on 32-token
    blocks, with room for 64-token inputs when fine-tuned."""
    tmp = tmp_path_factory.mktemp("bases")
    return {
        objective: train(tmp, objective=objective, corpus=str(story_corpus), name=f"{objective}-base", eval_interval=4,
                         max_position=64)["run_dir"]
        for objective in ("mlm", "clm")
    }


def sentiment_rows(n: int = 48) -> list[tuple[str, str]]:
    rng = random.Random(0)
    good, bad = ["great", "lovely", "superb"], ["awful", "dull", "bad"]
    return [(f"the film was {rng.choice(good if i % 2 else bad)} today", "positive" if i % 2 else "negative") for i in range(n)]


def test_sentiment_encoder_csv(bases, tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in sentiment_rows()), encoding="utf-8")
    summary = train(tmp_path, objective="sentiment", base=bases["mlm"], corpus=str(path), lr=1e-3)
    metrics = summary["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert metrics["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == metrics["eval_examples"]
    run = RunDir(Path(summary["run_dir"]))
    assert run.meta()["base_kind"] == "run" and len(run.meta()["base_config_sha256"]) == 64
    assert run.spec().lr == 1e-3 and run.spec().objective == "sentiment"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(summary["model_dir"])
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert [e["event"] for e in run.events()].count("eval") >= 2


def test_sentiment_decoder_jsonl_int_labels(bases, tmp_path: Path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": int(y == "positive")}) + "\n" for t, y in sentiment_rows()), encoding="utf-8")
    summary = train(tmp_path, objective="sentiment", base=bases["clm"], corpus=str(path))
    assert "accuracy" in summary["metrics"]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(summary["model_dir"])
    assert type(model).__name__ == "GPT2ForSequenceClassification"
    assert model.config.pad_token_id is not None
    assert model.config.label2id == {"0": 0, "1": 1}


def write_conll(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    blocks = []
    for _ in range(n):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        blocks.append(f"{person}\tB-PER\nSmith\tI-PER\nwent\tO\nto\tO\n{place}\tB-LOC\n.\tO\n")
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def test_ner_entity_metrics_match_seqeval(bases, tmp_path: Path):
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    train_file = write_conll(tmp_path / "train.conll", 40, 1)
    eval_file = write_conll(tmp_path / "eval.conll", 12, 2)
    summary = train(tmp_path, objective="ner", base=bases["mlm"], corpus=str(train_file), eval_corpus=str(eval_file), lr=3e-3)
    metrics = summary["metrics"]
    rows = [json.loads(line) for line in (Path(summary["run_dir"]) / "eval_predictions.jsonl").read_text().splitlines()]
    gold, pred = [r["gold"] for r in rows], [r["pred"] for r in rows]
    assert len(rows) == metrics["eval_sentences"] == 12
    assert metrics["entity_f1"] == pytest.approx(seqeval_metrics.f1_score(gold, pred, zero_division=0))
    assert metrics["entity_precision"] == pytest.approx(seqeval_metrics.precision_score(gold, pred, zero_division=0))
    assert metrics["entity_recall"] == pytest.approx(seqeval_metrics.recall_score(gold, pred, zero_division=0))
    model = transformers.AutoModelForTokenClassification.from_pretrained(summary["model_dir"])
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # I-LOC: never seen, still known


def write_qa(path: Path, n: int, seed: int, unanswerable: bool = False) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        context = f"{person} lives in {place}. The sky was blue that day."
        lines.append({"id": f"q{i}", "title": f"doc{i}", "context": context, "question": f"Where does {person} live?",
                      "answers": {"text": [place], "answer_start": [context.index(place)]}})
        if unanswerable and i % 4 == 0:
            lines.append({"id": f"u{i}", "title": f"doc{i}", "context": context, "question": "Who painted it?", "answers": []})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_qa_extractive_encoder_squad_v2(bases, tmp_path: Path):
    path = write_qa(tmp_path / "qa.jsonl", 30, 3, unanswerable=True)
    summary = train(tmp_path, objective="qa", base=bases["mlm"], corpus=str(path), eval_fraction=0.2, seq_len=24, lr=3e-3)
    metrics = summary["metrics"]
    assert metrics["qa_mode"] == "extractive"
    assert 0.0 <= metrics["exact_match"] <= metrics["f1"] <= 100.0
    assert RunDir(Path(summary["run_dir"])).meta()["qa_mode"] == "extractive"
    transformers.AutoModelForQuestionAnswering.from_pretrained(summary["model_dir"])
    predictions = (Path(summary["run_dir"]) / "eval_predictions.jsonl").read_text().splitlines()
    assert len(predictions) == metrics["eval_questions"] > 0


def test_qa_generative_decoder(bases, tmp_path: Path):
    train_file, eval_file = write_qa(tmp_path / "train.jsonl", 24, 4), write_qa(tmp_path / "eval.jsonl", 6, 5)
    summary = train(tmp_path, objective="qa", base=bases["clm"], corpus=str(train_file), eval_corpus=str(eval_file), seq_len=48)
    assert summary["metrics"]["qa_mode"] == "generative"
    assert summary["metrics"]["eval_questions"] == 6
    assert RunDir(Path(summary["run_dir"])).meta()["task_auto_class"] == "AutoModelForCausalLM"
    transformers.AutoModelForCausalLM.from_pretrained(summary["model_dir"])


def test_generation_samples_and_forgetting(bases, tmp_path: Path):
    domain = tmp_path / "domain.txt"
    domain.write_text("\n\n".join(f"The parser reads token {i} and the lexer emits symbol {i % 7}." for i in range(80)), encoding="utf-8")
    summary = train(tmp_path, objective="generation", base=bases["clm"], corpus=str(domain))
    run = RunDir(Path(summary["run_dir"]))
    base_evals = [e for e in run.events() if e["event"] == "eval" and e["split"] == "base_eval"]
    domain_evals = [e for e in run.events() if e["event"] == "eval" and e["split"] == "eval"]
    assert [e["step"] for e in base_evals] == [e["step"] for e in domain_evals] == [0, 2, 4]
    metrics = summary["metrics"]
    assert metrics["base_eval_loss_before"] == pytest.approx(base_evals[0]["eval_loss"])
    assert metrics["base_eval_loss_after"] == pytest.approx(base_evals[-1]["eval_loss"])
    assert "base_perplexity_change" in metrics and metrics["domain_perplexity"] > 1
    samples = [json.loads(line) for line in (run.path / "samples.jsonl").read_text().splitlines()]
    assert samples and {"prompt", "completion", "temperature", "top_k", "top_p", "seed"} <= set(samples[0])
    transformers.AutoModelForCausalLM.from_pretrained(summary["model_dir"])


def test_continued_mlm_from_run_reports_forgetting(bases, tmp_path: Path):
    domain = tmp_path / "domain.txt"
    domain.write_text("\n\n".join(f"The compiler folds constant {i} into register {i % 5}." for i in range(80)), encoding="utf-8")
    summary = train(tmp_path, objective="mlm", base=bases["mlm"], corpus=str(domain), max_steps=2, eval_interval=2)
    assert summary["metrics"]["base_eval_loss_before"] > 0
    assert summary["metrics"]["base_eval_corpus"].endswith("stories.txt")


def test_ner_stop_and_resume_uses_the_same_run_format(bases, tmp_path: Path):
    """Stopped mid-run, a fine-tuning run resumes from its checkpoint like a pre-training run."""
    from workbench.engine import TrainingRun, resume_run
    from workbench.runs import RunControl, StepLogged

    train_file = write_conll(tmp_path / "train.conll", 40, 1)
    control = RunControl()

    def stop_at_two(event) -> None:
        if isinstance(event, StepLogged) and event.step >= 2:
            control.request_stop("test")

    spec = RunSpec(**{**tiny_overrides(**STEPS), "log_interval": 1, "out": str(tmp_path / "runs"), "device": "cpu",
                      "objective": "ner", "base": bases["mlm"], "corpus": str(train_file)})
    first = TrainingRun(spec, listeners=[stop_at_two], control=control).run()
    assert first.status == "stopped" and first.step == 2
    second = resume_run(first.run_dir, out=str(tmp_path / "runs"))
    assert second.status == "finished" and second.step == 4
    assert "entity_f1" in second.summary["metrics"]
    assert transformers.AutoModelForTokenClassification.from_pretrained(second.model_dir).config.num_labels == 5


# ---------------------------------------------------------------------------- the tasks, called directly
# No engine: load_corpus -> check_data -> prepare / model_kwargs / run_meta, as the engine calls
# them, on tokenizers trained on the test text. Tasks keep no state: what check_data finds is
# returned and passed on.


def encoder_tokenizer(texts: list[str]):
    from workbench.tokenization import train_tokenizer

    return train_tokenizer("wordpiece", texts, 300, masked=True)


def decoder_tokenizer(texts: list[str]):
    from workbench.tokenization import train_tokenizer

    return train_tokenizer("bpe", texts, 300, masked=False)


def tiny_bert(auto_class, tokenizer, **kwargs):
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, **kwargs)
    return auto_class.from_config(config)


def spec_for(**fields) -> ResolvedSpec:
    from workbench.engine.spec_resolution import resolve_spec

    return resolve_spec(RunSpec(**{"base": "unused-base", "seq_len": 32, **fields}))[0]


def test_sentiment_check_data_returns_the_labels_prepare_uses(tmp_path: Path):
    from workbench.errors import CorpusError
    from workbench.tasks import get_task

    path = tmp_path / "reviews.csv"
    path.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in sentiment_rows()), encoding="utf-8")
    spec = spec_for(objective="sentiment", corpus=str(path), eval_fraction=0.25)
    task = get_task("sentiment")
    state = dict(vars(task))
    corpus = task.load_corpus(spec)
    checked = task.check_data(corpus, spec)
    assert (checked.column, checked.names) == ("sentiment", ("negative", "positive"))
    tokenizer = encoder_tokenizer(corpus.texts())
    data = task.prepare(corpus, tokenizer, spec, checked)
    assert vars(task) == state  # nothing stored on the task
    assert set(data.train["labels"]) == {0, 1} and data.num_examples("eval") == len(corpus.eval)
    assert task.run_meta(data) == {"labels": ["negative", "positive"], "label_column": "sentiment"}
    kwargs = task.model_kwargs(checked, tokenizer)
    assert kwargs["id2label"] == {0: "negative", 1: "positive"} and kwargs["label2id"] == {"negative": 0, "positive": 1}
    assert kwargs["num_labels"] == 2 and kwargs["pad_token_id"] == tokenizer.pad_token_id
    model = tiny_bert(transformers.AutoModelForSequenceClassification, tokenizer, **task.model_kwargs(checked))
    batch, _ = data.batch("eval", [0, 1, 2])
    totals: dict[str, float] = {}
    assert task.eval_step(model, batch, totals) is not None and totals["count"] == 3
    assert 0 <= task.finish_metrics(totals)["accuracy"] <= 1
    bad = tmp_path / "eval.csv"
    bad.write_text("review,sentiment\nfine film,neutral\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="unknown label 'neutral'"):
        task.check_data(task.load_corpus(spec_for(objective="sentiment", corpus=str(path), eval_corpus=str(bad))), spec)


def test_ner_loads_its_own_corpus_and_checks_tags(tmp_path: Path):
    from workbench.errors import CorpusError
    from workbench.tasks import get_task
    from workbench.tasks.finetune.ner import NERCorpus

    train_file = write_conll(tmp_path / "train.conll", 40, 1)
    eval_file = write_conll(tmp_path / "eval.conll", 12, 2)
    task = get_task("ner")
    state = dict(vars(task))
    spec = spec_for(objective="ner", corpus=str(train_file), eval_corpus=str(eval_file))
    corpus = task.load_corpus(spec)
    assert isinstance(corpus, NERCorpus) and (len(corpus.train), len(corpus.eval)) == (40, 12)
    assert corpus.eval_source == str(eval_file)
    checked = task.check_data(corpus, spec)
    assert checked.labels == ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")  # I-LOC: never seen, still known
    tokenizer = encoder_tokenizer([" ".join(s.tokens) for s in corpus.train])
    data = task.prepare(corpus, tokenizer, spec, checked)
    assert vars(task) == state
    assert task.run_meta(data) == {"labels": list(checked.labels), "ner_eval_source": str(eval_file)}
    assert task.model_kwargs(checked)["id2label"] == dict(enumerate(checked.labels))
    model = tiny_bert(transformers.AutoModelForTokenClassification, tokenizer, **task.model_kwargs(checked))
    batch, _ = data.batch("eval", list(range(4)))
    totals: dict[str, float] = {}
    task.eval_step(model, batch, totals)
    assert totals["gold"] == 4 * 2  # two entities per sentence
    assert 0 <= task.finish_metrics(totals)["entity_f1"] <= 1

    held = task.load_corpus(spec_for(objective="ner", corpus=str(train_file), eval_fraction=0.25))
    assert (len(held.train), len(held.eval)) == (30, 10) and held.eval_source.startswith("held-out 25% of train.conll")
    odd = tmp_path / "odd.conll"
    odd.write_text("Ada\tB-PER\nwent\tO\nhome\tB-MISC\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"odd.conll:3: unknown tag 'B-MISC'"):
        task.check_data(task.load_corpus(spec_for(objective="ner", corpus=str(train_file), eval_corpus=str(odd))), spec)


def long_qa_file(tmp_path: Path) -> tuple[Path, str]:
    filler = " ".join(f"The cat number {i} sat on the mat." for i in range(12))
    path = tmp_path / "long.jsonl"
    records = [
        {"context": f"{filler} Ada lives in Paris. {filler}", "question": "Where does Ada live?", "answers": ["Paris"]},
        {"context": f"Bob was born in Rome. {filler}", "question": "Where was Bob born?", "answers": ["Rome"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, filler


def test_qa_windows_and_postprocess_recover_the_gold_text(tmp_path: Path):
    """Long contexts split into strided windows; logits peaked at the labelled start/end
    positions must post-process back into exactly the gold answer text."""
    import numpy as np

    from workbench.tasks.finetune.qa import ExtractiveQATask, postprocess

    path, filler = long_qa_file(tmp_path)
    task = ExtractiveQATask()
    spec = spec_for(objective="qa", corpus=str(path), eval_corpus=str(path), seq_len=32)
    corpus = task.load_corpus(spec)
    checked = task.check_data(corpus, spec)
    assert checked.with_negative is False and corpus.eval_source == str(path)
    tokenizer = encoder_tokenizer([filler, "Ada lives in Paris. Bob was born in Rome. Where does Ada live?"])
    data = task.prepare(corpus, tokenizer, spec, checked)
    table = data.eval
    assert len(table) > 2 * len(corpus.eval)  # several windows per example
    assert task.run_meta(data) == {"qa_mode": "extractive", "qa_eval_source": str(path), "doc_stride": 8}
    starts, ends = [], []
    for row in range(len(table)):
        n = len(table[row]["input_ids"])
        s, e = np.full(n, -5.0), np.full(n, -5.0)
        s[table[row]["start_positions"]] += 10
        e[table[row]["end_positions"]] += 10
        starts.append(s)
        ends.append(e)
    answers = postprocess(data.eval_examples, table["example_index"], table["offsets"], starts, ends, with_negative=False)
    assert answers == ["Paris", "Rome"]


def test_qa_is_two_tasks_picked_by_the_base(tmp_path: Path):
    from workbench.errors import BaseModelError
    from workbench.tasks import get_task
    from workbench.tasks.finetune.qa import MAX_NEW_TOKENS, ExtractiveQATask, GenerativeQATask

    encoder, decoder = transformers.BertConfig(), transformers.GPT2Config()
    extractive, generative = get_task("qa", encoder), get_task("qa", decoder)
    assert type(extractive) is ExtractiveQATask and type(generative) is GenerativeQATask
    assert extractive.auto_class is transformers.AutoModelForQuestionAnswering
    assert generative.auto_class is transformers.AutoModelForCausalLM
    extractive.check_base(encoder, where="b")
    generative.check_base(decoder, where="b")
    with pytest.raises(BaseModelError, match="is a decoder"):
        extractive.check_base(decoder, where="b")
    with pytest.raises(BaseModelError, match="not a decoder"):
        generative.check_base(encoder, where="b")

    train_file, eval_file = write_qa(tmp_path / "train.jsonl", 8, 4, unanswerable=True), write_qa(tmp_path / "eval.jsonl", 3, 5)
    spec = spec_for(objective="qa", corpus=str(train_file), eval_corpus=str(eval_file), seq_len=48)
    corpus = generative.load_corpus(spec)
    checked = generative.check_data(corpus, spec)
    assert checked.with_negative is True
    tokenizer = decoder_tokenizer([e.context + " " + e.question for e in corpus.train])
    data = generative.prepare(corpus, tokenizer, spec, checked)
    assert generative.run_meta(data) == {"qa_mode": "generative", "qa_eval_source": str(eval_file)}
    assert generative.model_kwargs(checked, tokenizer) == {"pad_token_id": tokenizer.pad_token_id}
    row = data.eval[0]
    answer = [t for t in row["labels"] if t != -100]
    assert row["input_ids"][: len(row["prompt_ids"])] == row["prompt_ids"]  # only the answer is learnt
    assert answer[-1] == tokenizer.eos_token_id and 1 < len(answer) <= MAX_NEW_TOKENS
    assert tokenizer.decode(answer[:-1]).strip() == corpus.eval[0].answers[0]
    batch, _ = data.batch("train", [0, 1])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape


def test_lm_tasks_name_their_forgetting_objective():
    from workbench.objectives import OBJECTIVES
    from workbench.tasks import get_task

    expected = {"mlm": "mlm", "clm": "clm", "generation": "clm"}
    assert {name: get_task(name).forgetting_objective for name in OBJECTIVES} == {name: expected.get(name) for name in OBJECTIVES}


def test_qa_question_longer_than_a_window_is_a_one_line_error(bases, tmp_path: Path):
    """The tokenizer's refusal is a Rust panic (a BaseException): still one line, naming the fix."""
    from workbench.errors import SpecError

    path = write_qa(tmp_path / "qa.jsonl", 12, 3)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["question"] = " ".join(["where"] * 40) + "?"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(SpecError, match="cannot cut the .* contexts into windows of 16 tokens"):
        train(tmp_path, objective="qa", base=bases["mlm"], corpus=str(path), eval_fraction=0.2, seq_len=16)
