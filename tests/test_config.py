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
    assert scratch.tokenizer == "wordpiece" and scratch.max_steps
    assert tuned.lr < scratch.lr and tuned.epochs is not None and tuned.max_steps is None
    clm, _ = resolve_spec(RunSpec(objective="clm"))
    assert clm.tokenizer == "bpe"
    assert list(DEFAULT_PROBES) == RunSpec().probes


def test_tokenizer_must_fit_objective() -> None:
    with pytest.raises(SpecError, match="MASK"):
        resolve_spec(RunSpec(objective="mlm", tokenizer="bpe"))


def test_objectives_come_from_the_registry() -> None:
    import workbench.config as config
    from workbench.tasks import get_objective, objective_names

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
