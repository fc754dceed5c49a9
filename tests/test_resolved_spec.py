"""The resolved spec: grouped, never None where None meant "a default", the same flat
``run.toml`` keys as before, and a stable fixed point (read back, it resolves to itself)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workbench.config import ResolvedSpec, RunSpec
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import TrainingError

OLD_CLM_RUN_TOML = {  # a tiny clm run's [spec] as run.toml held it before the spec was grouped (commit 07ddf94)
    "corpus": "general", "objective": "clm", "method": "full", "size": "tiny", "n_layer": 2, "n_head": 4, "d_model": 128,
    "d_ff": 512, "dropout": 0.0, "max_position": 128, "tie_embeddings": "on", "tokenizer": "bpe", "vocab_size": 4096,
    "seq_len": 128, "batch_size": 16, "grad_accum": 1, "lr": 0.002, "schedule": "linear", "warmup_ratio": 0.05,
    "min_lr_ratio": 0.0, "beta1": 0.9, "beta2": 0.98, "eps": 1e-08, "weight_decay": 0.01, "max_grad_norm": 1.0,
    "on_nonfinite": "stop", "max_nonfinite_skips": 3, "on_oom": "halve", "max_steps": 20, "eval_batches": "auto",
    "eval_fraction": 0.05, "holdout": "random", "sampling": "blocks", "log_interval": 1, "keep_checkpoints": 2, "seed": 42,
    "device": "auto", "precision": "auto", "compile": "auto", "parallel": "ddp", "lean_model": "auto", "report_to": "none",
    "probes": ["The cat sat on the [MASK].", "The dog wagged its", "I have a cat. ||| It loves to purr."],
    "name": "clm-general-20261207-134215", "out": "/tmp/spec-before",
}


def test_an_old_run_toml_reads_and_writes_back_the_same_keys() -> None:
    resolved, _ = resolve_spec(RunSpec.from_dict(OLD_CLM_RUN_TOML))
    assert resolved.to_dict() == OLD_CLM_RUN_TOML
    assert list(resolved.to_dict()) == list(OLD_CLM_RUN_TOML)  # RunSpec's key order
    assert resolved.model.shape is not None and resolved.model.shape.tie_embeddings is True
    assert (resolved.train.batch_size, resolved.optim.beta2, resolved.data.sampling) == (16, 0.98, "blocks")


@pytest.mark.parametrize("given", [
    RunSpec(objective="clm"),
    RunSpec(objective="mlm", tokenizer="char", seq_len=64),
    RunSpec(objective="nsp", time_budget=30),
    RunSpec(objective="sentiment", base="some/model", method="lora", lora_targets="query, value"),
    RunSpec(objective="generation", base="some/model", method="frozen", epochs=1.5),
], ids=["clm", "mlm-char", "nsp-budget", "sentiment-lora", "generation-frozen"])
def test_a_resolved_spec_read_back_resolves_to_itself(given: RunSpec) -> None:
    resolved, _ = resolve_spec(given)
    again, _ = resolve_spec(RunSpec.from_dict(resolved.to_dict()))
    assert again == resolved
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.train.batch_size = 1  # type: ignore[misc]


def test_what_may_be_none_is_a_real_absence() -> None:
    lora, _ = resolve_spec(RunSpec(objective="sentiment", base="some/model", method="lora"))
    assert lora.model.shape is None  # the base fixes the shape
    assert lora.method.lora is not None and (lora.method.lora.r, lora.method.lora.alpha, lora.method.lora.dropout) == (8, 16.0, 0.05)
    assert lora.method.lora.targets is None  # every block projection, found when the base is loaded
    assert lora.data.sampling is None  # sentiment does not train on packed windows
    full, _ = resolve_spec(RunSpec(objective="sentiment", base="some/model"))
    assert full.method.lora is None and full.train.max_steps is None and full.train.epochs == 3
    char, _ = resolve_spec(RunSpec(objective="clm", tokenizer="char"))
    assert char.model.vocab_size is None and "vocab_size" not in char.to_dict()


def test_every_group_is_typed() -> None:
    """No group field is typed Any: readers can rely on the declared types."""
    for group in (ResolvedSpec, *{type(v) for v in vars(resolve_spec(RunSpec())[0]).values() if dataclasses.is_dataclass(v)}):
        assert all(f.type != "Any" for f in dataclasses.fields(group)), group.__name__


def test_the_guard_rules_and_the_stepper_applies() -> None:
    """A non-finite step in skip mode gets the verdict skip_and_halve_lr (the guard writes no
    schedule); past the allowed skips, or in stop mode, it is a stop with the facts."""
    from workbench.engine.guard import NonFiniteGuard, Verdict
    from workbench.engine.plan import halve_lr

    spec, _ = resolve_spec(RunSpec(objective="clm", on_nonfinite="skip", max_nonfinite_skips=1))
    guard = NonFiniteGuard(spec, torch.device("cpu"), False, 0, 0, lambda event: None)
    assert guard.judge(0, torch.tensor(2.0), torch.tensor(1.0)) is Verdict.ok
    assert guard.judge(1, torch.tensor(float("nan")), torch.tensor(1.0)) is Verdict.skip_and_halve_lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4), lambda s: 1.0)
    assert halve_lr(scheduler) == pytest.approx(0.2)
    assert "step 2" in guard.skip_message(0.2).text and "1/1" in guard.skip_message(0.2).text
    with pytest.raises(TrainingError, match="loss became nan at step 3 after 1 skipped"):
        guard.judge(2, torch.tensor(float("nan")), torch.tensor(1.0))
    stop_spec, _ = resolve_spec(RunSpec(objective="clm"))
    with pytest.raises(TrainingError, match="gradient norm became inf"):
        NonFiniteGuard(stop_spec, torch.device("cpu"), False, 0, 0, print).judge(0, torch.tensor(1.0), torch.tensor(float("inf")))
