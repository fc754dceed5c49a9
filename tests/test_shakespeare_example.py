"""examples/shakespeare_char.toml is nanoGPT's shakespeare-char CPU recipe, and loads as a valid spec.

Loading only (no training): the values are the ones ``benchmarks/shakespeare_char.py`` compares
against a hand-written loop, so a drifted value would silently change that comparison.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import RunSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shakespeare_char.toml"

NANOGPT_RECIPE = {
    "corpus": "../shared/data/tinyshakespeare/input.txt",
    "objective": "clm",
    "tokenizer": "char",
    "n_layer": 4,
    "n_head": 4,
    "d_model": 128,
    "d_ff": 512,
    "dropout": 0.0,
    "seq_len": 64,
    "batch_size": 12,
    "max_steps": 2000,
    "lr": 1e-3,
    "schedule": "cosine",
    "warmup_steps": 100,
    "min_lr_ratio": 0.1,
    "beta1": 0.9,
    "beta2": 0.99,
    "weight_decay": 0.1,
    "max_grad_norm": 1.0,
    "eval_fraction": 0.1,
    "holdout": "tail",
    "sampling": "random",
    "eval_interval": 250,
    "device": "cpu",
}


@pytest.fixture
def spec() -> RunSpec:
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE} is absent")
    return RunSpec.from_toml(EXAMPLE)


def test_the_example_is_the_nanogpt_recipe(spec: RunSpec) -> None:
    assert {key: getattr(spec, key) for key in NANOGPT_RECIPE} == NANOGPT_RECIPE


def test_the_example_leaves_the_rest_at_the_defaults(spec: RunSpec) -> None:
    defaults = RunSpec()
    others = [key for key in spec.to_dict() if key not in NANOGPT_RECIPE]
    assert {key: getattr(spec, key) for key in others} == {key: getattr(defaults, key) for key in others}
    assert spec.grad_accum == 1 and spec.eps == 1e-8 and spec.precision == "auto"


def test_the_example_round_trips_through_toml(spec: RunSpec, tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml(), encoding="utf-8")
    assert RunSpec.from_toml(path) == spec
