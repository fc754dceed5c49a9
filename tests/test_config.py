from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import DEFAULT_PROBES, RunSpec
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import SpecError


def test_toml_round_trip(tmp_path: Path) -> None:
    spec = RunSpec(corpus="general", objective="mlm", lr=3e-4, max_steps=12, probes=["a [MASK] b"])
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml(), encoding="utf-8")
    assert RunSpec.from_toml(path) == spec


def test_run_toml_spec_table_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[spec]\nobjective = "nsp"\n\n[meta]\ntorch = "x"\n', encoding="utf-8")
    assert RunSpec.from_toml(path).objective == "nsp"


def test_unknown_key_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('objectiv = "mlm"\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        RunSpec.from_toml(path)
    message = str(info.value)
    assert "bad.toml" in message and "objectiv" in message and "Fix:" in message
    assert "\n" not in message


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("objective = \n", encoding="utf-8")
    with pytest.raises(SpecError, match="invalid TOML"):
        RunSpec.from_toml(path)


@pytest.mark.parametrize("changes", [{"objective": "gan"}, {"size": "huge"}, {"seq_len": 0}, {"lr": -1.0}, {"name": "../x"}])
def test_validation_rejects(changes: dict) -> None:
    with pytest.raises(SpecError):
        RunSpec(**changes).validate()


def test_defaults_depend_on_objective_and_base() -> None:
    scratch, _ = resolve_spec(RunSpec(objective="mlm"))
    tuned, _ = resolve_spec(RunSpec(objective="mlm", base="some/model"))
    assert scratch.model.tokenizer == "wordpiece" and scratch.train.max_steps
    assert tuned.optim.lr < scratch.optim.lr and tuned.train.epochs is not None and tuned.train.max_steps is None
    clm, _ = resolve_spec(RunSpec(objective="clm"))
    assert clm.model.tokenizer == "bpe"
    assert list(DEFAULT_PROBES) == RunSpec().probes


def test_tokenizer_must_fit_objective() -> None:
    with pytest.raises(SpecError, match="MASK"):
        resolve_spec(RunSpec(objective="mlm", tokenizer="bpe"))


def test_objectives_come_from_the_registry() -> None:
    import workbench.config as config
    from workbench.objectives import get_objective, objective_names

    assert not hasattr(config, "OBJECTIVES")  # one list: the task registry's
    for name in objective_names():
        RunSpec(objective=name).validate()
        assert get_objective(name).needs_base == (name in ("sentiment", "ner", "qa", "generation"))
    assert ", ".join(objective_names()[:-1]) in config.spec_field_help()["objective"]


def test_setting_facts_are_checked() -> None:
    """A misspelt CLI fact in a field's metadata fails at import, not silently."""
    from workbench.config import _setting

    with pytest.raises(TypeError, match="shrot"):
        _setting("help", shrot="-x")


# ---------------------------------------------------------------- types and ranges (issue 13, item 5)
@pytest.mark.parametrize(
    "key, value",
    [
        ("seq_len", "abc"), ("seq_len", 1.5), ("seq_len", True), ("seq_len", 0), ("batch_size", -2), ("vocab_size", 0),
        ("lr", "x"), ("lr", 0.0), ("lr", float("nan")), ("lr", float("inf")), ("lr", True),
        ("name", 5), ("eval_fraction", "0.1"), ("eval_fraction", 0), ("eval_fraction", 1.0),
        ("seed", "x"), ("seed", -1), ("seed", 2**40), ("time_budget", "fast"), ("time_budget", 0), ("time_budget", float("inf")),
        ("epochs", 0), ("epochs", -1), ("epochs", float("nan")), ("max_steps", 0), ("eval_interval", 0), ("save_interval", -1),
        ("warmup_ratio", 1), ("warmup_ratio", -0.1), ("weight_decay", -0.01), ("max_grad_norm", -1),
        ("keep_checkpoints", -1), ("max_nonfinite_skips", -1), ("grad_accum", 0), ("log_interval", 0), ("eval_batches", 0),
        ("objective", 5), ("probes", "a [MASK]"), ("probes", ["ok", 3]), ("corpus", ""), ("out", " "), ("device", "tpu"),
    ],
)
def test_toml_values_are_type_and_range_checked(tmp_path: Path, key: str, value: object) -> None:
    """Each bad value is one line naming the file, the key and a fix, never a traceback later."""
    path = tmp_path / "spec.toml"
    text = f"{key} = {value!r}\n".replace("'", '"').replace("True", "true")
    if isinstance(value, float) and value != value:
        text = f"{key} = nan\n"
    elif value in (float("inf"),):
        text = f"{key} = inf\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        RunSpec.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and key in message and "Fix:" in message, message
    assert "\n" not in message and "invalid TOML" not in message


def test_run_toml_spec_table_values_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[spec]\nseq_len = 1.5\n\n[meta]\ntorch = "x"\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"run\.toml: seq_len must be a whole number"):
        RunSpec.from_toml(path)


def test_a_spec_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(SpecError, match="not a table"):
        RunSpec.from_dict(5, source="run.toml")  # type: ignore[arg-type]


def test_numbers_are_read_as_their_field_type(tmp_path: Path) -> None:
    """An int is a fine float, a whole float a fine int, and a budget may be written as on the CLI."""
    path = tmp_path / "spec.toml"
    path.write_text('lr = 1\nseq_len = 64.0\nepochs = 2\ntime_budget = "5m"\nwarmup_ratio = 0\n', encoding="utf-8")
    spec = RunSpec.from_toml(path)
    assert (spec.lr, spec.seq_len, spec.epochs, spec.time_budget, spec.warmup_ratio) == (1.0, 64, 2.0, 300.0, 0.0)
    assert isinstance(spec.lr, float) and isinstance(spec.seq_len, int) and isinstance(spec.warmup_ratio, float)


def test_flag_values_are_named_as_flags() -> None:
    with pytest.raises(SpecError) as info:
        RunSpec(epochs=float("nan")).validate("spec.toml", flags=["epochs"])
    assert str(info.value).startswith("--epochs must be a number (above 0), not nan. Fix: pass --epochs")


def test_ranges_live_in_the_field_declarations() -> None:
    """One declaration per range: the CLI, TOML and the TUI all read it from the field."""
    from dataclasses import fields

    from workbench.config import SETTING_FACTS, _setting, requirement

    facts = {f.name: f.metadata for f in fields(RunSpec)}
    assert facts["epochs"]["above"] == 0 and facts["eval_fraction"]["below"] == 1 and facts["keep_checkpoints"]["minimum"] == 0
    assert {"minimum", "above", "maximum", "below", "check"} <= SETTING_FACTS
    assert requirement(next(f for f in fields(RunSpec) if f.name == "warmup_ratio"), float) == "a number (at least 0 and below 1)"
    _setting("help", 1, minimum=0, check=lambda value: None)  # accepted facts


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from workbench.config import check_out_dir

    (tmp_path / "afile").write_text("x")
    check_out_dir(str(tmp_path / "new" / "runs"))  # can be made: fine
    with pytest.raises(SpecError, match="is not a folder"):
        check_out_dir(str(tmp_path / "afile"))
    with pytest.raises(SpecError, match="no folder can be made under it"):
        check_out_dir(str(tmp_path / "afile" / "deeper" / "runs"))


def test_resume_overrides_change_only_how_long_and_where() -> None:
    spec = RunSpec(max_steps=200, seq_len=32)
    resumed, lines = spec.resumed_with({"max_steps": 400, "device": "cpu"})
    assert (resumed.max_steps, resumed.device, spec.max_steps) == (400, "cpu", 200)
    assert lines == ["max_steps = 400 (was 200)", "device = cpu (was auto)"]
    by_epochs, lines = spec.resumed_with({"epochs": 3})
    assert by_epochs.max_steps is None and by_epochs.epochs == 3.0  # else max_steps would win and --epochs do nothing
    assert lines == ["epochs = 3 (was unset)", "max_steps = unset (was 200)"]
    with pytest.raises(SpecError, match="lr cannot be changed when resuming"):
        spec.resumed_with({"lr": 1.0})
    with pytest.raises(SpecError, match="--max-steps must be a whole number"):
        spec.resumed_with({"max_steps": 0})
