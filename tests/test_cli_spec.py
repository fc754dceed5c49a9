"""`workbench run`'s flags are made from ``RunSpec``: every field is a flag, with its help text.

These parse flags only (nothing trains), so they are fast.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from workbench.cli import app
from workbench.commands.run import build_spec, spec_overrides
from workbench.config import RunSpec, spec_field_help

runner = CliRunner()

DOCUMENTED_FLAGS = (
    "--corpus", "-c", "--objective", "-o", "--base", "-b", "--size", "--tokenizer", "--vocab-size", "--eval-corpus",
    "--text-column", "--label-column", "--max-steps", "--epochs", "--time-budget", "--lr", "--batch-size",
    "--grad-accum", "--seq-len", "--eval-interval", "--seed", "--name", "--out", "--device", "--precision",
    "--on-nonfinite", "--compile", "--no-compile", "--lean", "--no-lean", "--parallel",
    "--config", "--gpus", "--nnodes", "--node-rank", "--rdzv-endpoint", "--resume", "--json",
)
"""Flags the README, docs/guide.md and scripts use: generating the options must keep every one."""


def run_click_command():
    return typer.main.get_command(app).commands["run"]


def parsed(*args: str) -> dict:
    """The spec values `workbench run ARGS` would override, without running anything."""
    command = run_click_command()
    return spec_overrides(command.make_context("run", list(args)).params)


def test_every_spec_field_is_a_run_option() -> None:
    options = {param.name: param for param in run_click_command().params}
    for spec_field in dataclasses.fields(RunSpec):
        assert spec_field.name in options, f"RunSpec.{spec_field.name} has no `workbench run` flag"
        assert options[spec_field.name].param_type_name == "option"


def test_documented_flags_still_exist() -> None:
    names = {name for param in run_click_command().params for name in (*param.opts, *param.secondary_opts)}
    missing = [flag for flag in DOCUMENTED_FLAGS if flag not in names]
    assert not missing, missing


def test_help_shows_each_field_help() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    for name, text in spec_field_help().items():
        assert text, f"RunSpec.{name} has no help text"
        assert " ".join(text.split()) in shown, name


def test_flags_become_spec_values() -> None:
    given = parsed("-c", "domain", "--lr", "1e-3", "--time-budget", "5m", "--compile", "--no-lean",
                   "--probe", "a [MASK] b", "--probe", "c", "--warmup-ratio", "0.1")
    assert given == {"corpus": "domain", "lr": 1e-3, "time_budget": 300.0, "compile": "on", "lean_model": "off",
                     "probes": ["a [MASK] b", "c"], "warmup_ratio": 0.1}
    assert parsed() == {}  # nothing given: the file's or the spec's defaults stand


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "spec.toml"
    config.write_text('objective = "mlm"\nlr = 0.002\nschedule = "cosine"\nprobes = ["x [MASK]"]\n', encoding="utf-8")
    spec = build_spec(config, parsed("--lr", "0.01", "--weight-decay", "0.0"))
    assert (spec.objective, spec.lr, spec.schedule, spec.weight_decay, spec.probes) == ("mlm", 0.01, "cosine", 0.0, ["x [MASK]"])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "x"], "--lr"),
        (["--seq-len", "1.5"], "--seq-len"),
        (["--time-budget", "soon"], "time budget"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--schedule", "zigzag"], "unknown schedule 'zigzag'"),
        (["--epochs", "nan"], "--epochs must be a number (above 0), not nan"),
        (["--epochs", "0"], "--epochs"),
        (["--max-steps", "0"], "--max-steps"),
        (["--gpus", "0"], "--gpus must be at least 1"),
        (["--node-rank", "2", "--nnodes", "2"], "--node-rank"),
        (["--resume", "some-run", "--lr", "1"], "--lr cannot be changed when resuming"),
    ],
)
def test_bad_flag_values_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", *args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output
    assert not (tmp_path / "runs").exists()


def test_build_spec_names_the_flag_or_the_file(tmp_path: Path) -> None:
    """A bad flag is reported as the flag; a bad file value as the file and its key."""
    from workbench.errors import SpecError

    config = tmp_path / "spec.toml"
    config.write_text("warmup_ratio = 0.5\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        build_spec(config, parsed("--warmup-ratio", "1.5"))
    assert str(info.value).startswith("--warmup-ratio must be a number (at least 0 and below 1), not 1.5")
    config.write_text("warmup_ratio = 1.5\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        build_spec(config, parsed("--lr", "0.01"))
    assert str(info.value).startswith(f"{config}: warmup_ratio must be")
    (tmp_path / "afile").write_text("")
    with pytest.raises(SpecError, match="--out: .*afile is not a folder"):
        build_spec(None, parsed("--out", str(tmp_path / "afile" / "runs")))
