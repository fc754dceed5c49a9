"""Bad fine-tuning input through the CLI: exit code 2 and a one-line message, no traceback.

Data errors are caught before the base is loaded, so the bases here are untrained tiny
models saved with ``save_pretrained`` (a config and safetensors weights are all it takes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_line_error
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

from workbench.cli import app


@pytest.fixture(scope="module")
def tiny_bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli-bases")
    small = dict(vocab_size=64)
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **small)).save_pretrained(tmp / "bert")
    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, **small)).save_pretrained(tmp / "gpt2")
    return {"encoder": str(tmp / "bert"), "decoder": str(tmp / "gpt2")}


def run_cli(tmp_path: Path, *args: str):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "runs"), "--device", "cpu", *args])
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return result, lines




def test_finetuning_without_base(tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    for objective in ("sentiment", "ner", "qa", "generation"):
        result, lines = run_cli(tmp_path, "--objective", objective, "--corpus", str(path))
        one_line_error(result, "no --base", "workbench run --objective mlm")


def test_missing_label_column(tiny_bases, tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,stars2\ngood,5\nbad,1\n", encoding="utf-8")
    result, lines = run_cli(tmp_path, "--objective", "sentiment", "--base", tiny_bases["encoder"], "--corpus", str(path))
    one_line_error(result, "reviews.csv", "no label column", "--label-column")
    result, lines = run_cli(tmp_path, "--objective", "sentiment", "--base", tiny_bases["encoder"], "--corpus", str(path), "--label-column", "stars")
    one_line_error(result, "no label column 'stars'")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing written


def test_only_one_class(tiny_bases, tmp_path: Path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"review {i},positive\n" for i in range(10)), encoding="utf-8")
    result, lines = run_cli(tmp_path, "--objective", "sentiment", "--base", tiny_bases["encoder"], "--corpus", str(path))
    one_line_error(result, "only one class (positive)")


def test_unknown_tag_in_eval_file(tiny_bases, tmp_path: Path):
    train = tmp_path / "train.conll"
    train.write_text("Ada\tB-PER\nran\tO\n\nBob\tB-PER\nsat\tO\n", encoding="utf-8")
    evaluation = tmp_path / "eval.conll"
    evaluation.write_text("Ada\tB-PER\n\nin\tO\nParis\tB-LOC\n", encoding="utf-8")
    result, lines = run_cli(tmp_path, "--objective", "ner", "--base", tiny_bases["encoder"], "--corpus", str(train), "--eval-corpus", str(evaluation))
    one_line_error(result, "eval.conll:4", "unknown tag 'B-LOC'")


def test_answer_span_not_in_context(tiny_bases, tmp_path: Path):
    path = tmp_path / "qa.jsonl"
    record = {"context": "Ada lives in Paris.", "question": "Where?", "answers": {"text": ["Paris"], "answer_start": [2]}}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result, lines = run_cli(tmp_path, "--objective", "qa", "--base", tiny_bases["encoder"], "--corpus", str(path))
    one_line_error(result, "qa.jsonl:1", "not at answer_start 2")


@pytest.mark.parametrize(
    "objective, base, fragment",
    [("ner", "decoder", "is a decoder"), ("generation", "encoder", "is an encoder"), ("mlm", "decoder", "no masked-LM head")],
)
def test_base_that_does_not_fit(tiny_bases, tmp_path: Path, objective: str, base: str, fragment: str):
    conll = tmp_path / "train.conll"
    conll.write_text("Ada\tB-PER\nran\tO\n\nBob\tB-PER\nsat\tO\n", encoding="utf-8")
    text = tmp_path / "text.txt"
    text.write_text("one two three.\n\nfour five six.\n", encoding="utf-8")
    corpus = conll if objective == "ner" else text
    result, lines = run_cli(tmp_path, "--objective", objective, "--base", tiny_bases[base], "--corpus", str(corpus))
    one_line_error(result, fragment)
    if objective != "mlm":  # fine-tuning tasks check the base before writing a run dir
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unknown_label_in_eval_file(tiny_bases, tmp_path: Path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\ngood,pos\nbad,neg\nfine,pos\n", encoding="utf-8")
    evaluation = tmp_path / "test.csv"
    evaluation.write_text("text,label\ngreat,pos\nmeh,neutral\n", encoding="utf-8")
    result, lines = run_cli(tmp_path, "--objective", "sentiment", "--base", tiny_bases["encoder"], "--corpus", str(train), "--eval-corpus", str(evaluation))
    one_line_error(result, "test.csv (row 2)", "unknown label 'neutral'")
