"""The CLI through typer's CliRunner: the commands and every bad-input case (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_line_error
from typer.testing import CliRunner

from tests.conftest import tiny_overrides
from workbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)




def tiny_flags(run_root: Path) -> list[str]:
    o = tiny_overrides()
    return ["--batch-size", str(o["batch_size"]), "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]), "--out", str(run_root)]


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 saved with save_pretrained: a real decoder base with no masked-LM head."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from workbench.tokenization import train_bpe

    folder = tmp_path_factory.mktemp("gpt2-base")
    tokenizer = train_bpe(["a small text about cats and dogs"] * 20, 300)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_run_json_events_and_runs_listing(story_corpus: Path, run_root: Path) -> None:
    result = invoke("run", "--corpus", str(story_corpus), "--max-steps", "6", "--name", "cli-run", "--json", *tiny_flags(run_root))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kinds = [line["event"] for line in lines]
    assert kinds[0] in ("message", "started") and kinds[-1] == "finished"
    finished = lines[-1]
    assert finished["summary"]["eval_loss_after"] < finished["summary"]["eval_loss_before"]
    listing = invoke("runs", "--out", str(run_root))
    assert "cli-run" in listing.output and "finished" in listing.output


def test_run_rich_summary_and_config_file(story_corpus: Path, run_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "spec.toml"
    config.write_text(f'corpus = "{story_corpus}"\nobjective = "mlm"\nmax_steps = 50\nlr = 0.002\n', encoding="utf-8")
    result = invoke("run", "--config", str(config), "--max-steps", "4", "--name", "from-config", *tiny_flags(run_root))
    assert result.exit_code == 0, result.output
    for needle in ("eval loss", "perplexity", "saved to", "workbench inspect"):
        assert needle in result.output
    run_toml = (run_root / "from-config" / "run.toml").read_text()
    assert 'objective = "mlm"' in run_toml and "max_steps = 4" in run_toml and "lr = 0.002" in run_toml
    assert "torch =" in run_toml and "transformers =" in run_toml


def test_corpora_commands() -> None:
    listing = invoke("corpora")
    assert listing.exit_code == 0 and "general" in listing.output and "domain" in listing.output
    shown = invoke("corpora", "show", "general", "--count", "2")
    assert shown.exit_code == 0 and "estimated tokens" in shown.output and "1." in shown.output


def test_missing_file(run_root: Path) -> None:
    one_line_error(invoke("run", "--corpus", "nope/missing.txt", "--out", str(run_root)), "missing.txt", "not found")


def test_empty_corpus(tmp_path: Path, run_root: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    one_line_error(invoke("run", "--corpus", str(tmp_path / "empty.txt"), "--out", str(run_root)), "empty.txt", "empty")


def test_unreadable_encoding(tmp_path: Path, run_root: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("Un caf\xe9 cr\xe8me.\n".encode("latin-1"))
    one_line_error(invoke("run", "--corpus", str(tmp_path / "latin.txt"), "--out", str(run_root)), "latin.txt", "UTF-8", "line 1")


def test_unknown_column(tmp_path: Path, run_root: Path) -> None:
    (tmp_path / "t.csv").write_text("title,body\na,b\nc,d\n")
    one_line_error(
        invoke("run", "--corpus", str(tmp_path / "t.csv"), "--text-column", "text", "--out", str(run_root)),
        "unknown column 'text'", "title, body",
    )


def test_unknown_objective(story_corpus: Path, run_root: Path) -> None:
    one_line_error(invoke("run", "--corpus", str(story_corpus), "--objective", "gan", "--out", str(run_root)), "unknown objective 'gan'")


def test_base_that_does_not_fit(story_corpus: Path, run_root: Path, gpt2_base: Path) -> None:
    result = invoke("run", "--corpus", str(story_corpus), "--objective", "mlm", "--base", str(gpt2_base), "--out", str(run_root))
    one_line_error(result, "gpt2", "masked", "Fix:")


def test_hub_dataset_offline(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line_error(invoke("run", "--corpus", "hf:nobody/nothing-here", "--out", str(run_root)), "hf:nobody/nothing-here")


def test_resume_of_missing_run(run_root: Path) -> None:
    one_line_error(invoke("run", "--resume", "no-such-run", "--out", str(run_root)), "no-such-run", "no such run")


def test_bad_time_budget(run_root: Path) -> None:
    one_line_error(invoke("run", "--time-budget", "soon", "--out", str(run_root)), "time budget")


def test_nothing_written_for_bad_input(tmp_path: Path, run_root: Path) -> None:
    """A bad corpus fails before a run directory is created."""
    invoke("run", "--corpus", str(tmp_path / "absent.txt"), "--out", str(run_root))
    assert not run_root.exists() or not any(run_root.iterdir())
