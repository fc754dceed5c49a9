"""The GPU speed settings and the launcher's pieces, checked on CPU: compile choices, an
in-place compile keeps checkpoint key names, TF32 only on CUDA, torchrun command lines and
the global batch a resume keeps."""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.config import RunSpec
from workbench.engine import distributed, performance
from workbench.errors import SpecError, TrainingError


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=16,
                                      bos_token_id=0, eos_token_id=0))


@pytest.mark.parametrize(
    ("choice", "device", "size", "from_base", "expected"),
    [
        ("auto", "cuda", "base", False, True),
        ("auto", "cuda", "small", False, True),
        ("auto", "cuda", "tiny", False, False),
        ("auto", "cuda", "base", True, False),
        ("auto", "cpu", "base", False, False),
        ("on", "cpu", "tiny", False, True),
        ("off", "cuda", "base", False, False),
    ],
)
def test_compile_auto_is_on_for_cuda_small_and_base_only(choice, device, size, from_base, expected) -> None:
    assert performance.should_compile(choice, device, size, from_base) is expected


def test_compile_setting_is_validated_and_round_trips() -> None:
    with pytest.raises(SpecError, match="compile"):
        RunSpec(compile="sometimes").validate()
    spec = RunSpec(compile="off")
    assert RunSpec.from_dict(spec.to_dict()).compile == "off"


def test_in_place_compile_keeps_state_dict_keys_and_outputs() -> None:
    model = tiny_gpt2().eval()
    keys = list(model.state_dict())
    ids = torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        performance.compile_in_place(model, backend="eager")
        got = model(input_ids=ids).logits
    assert list(model.state_dict()) == keys  # no "_orig_mod." prefix can reach a checkpoint
    torch.testing.assert_close(got, expected)


def test_backends_and_batches_are_untouched_on_cpu() -> None:
    before = torch.backends.cuda.matmul.allow_tf32
    performance.configure_backends("cpu")
    assert torch.backends.cuda.matmul.allow_tf32 == before
    batch = {"input_ids": torch.arange(6).view(2, 3)}
    moved = performance.to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["input_ids"], batch["input_ids"])


def test_models_use_sdpa_attention() -> None:
    model = tiny_gpt2()
    model.set_attn_implementation("eager")
    performance.prefer_sdpa(model)
    assert model.config._attn_implementation == "sdpa"


def test_torchrun_command_for_one_node_and_several() -> None:
    one = distributed.torchrun_command(["--config", "s.toml"], gpus=4)
    assert one[:3] == [sys.executable, "-m", "workbench.runs.torchrun"]
    assert "--nproc-per-node=4" in one and "--standalone" in one
    assert one[-5:] == ["-m", "workbench", "run", "--config", "s.toml"]
    two = distributed.torchrun_command(["--config", "s.toml"], gpus=8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400")
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=node0", "--master-port=29400"} <= set(two)
    assert "--standalone" not in two
    with pytest.raises(SpecError, match="rdzv"):
        distributed.torchrun_command([], gpus=2, nnodes=2)
    with pytest.raises(SpecError, match="node-rank"):
        distributed.torchrun_command([], gpus=2, nnodes=2, node_rank=2, rdzv_endpoint="node0:29400")


def test_gpus_beyond_the_visible_ones_fail_with_advice() -> None:
    distributed.check_gpus(2, "cpu")  # CPU processes (gloo) are always possible
    if torch.cuda.device_count() < 64:
        with pytest.raises(TrainingError, match="GPU"):
            distributed.check_gpus(64, "auto")


def test_resume_keeps_the_checkpoints_global_batch() -> None:
    assert distributed.global_batch_for({}, 16, 2) == 16
    assert distributed.global_batch_for({"global_batch": 32}, 8, 4) == 32
    assert distributed.global_batch_for({"batch_size": 4, "grad_accum": 2, "world_size": 2}, 4, 1) == 16
    with pytest.raises(TrainingError, match="split evenly"):
        distributed.global_batch_for({"global_batch": 6}, 8, 4)


def test_prepares_fp32_output_wrapper_is_removed_exactly() -> None:
    model = tiny_gpt2()
    original = model.forward
    model._original_forward = original  # what Accelerator.prepare stores under mixed precision
    model.forward = lambda *args, **kwargs: "upcast outputs"
    performance.drop_output_upcast(model)
    assert model.forward == original and "_original_forward" not in model.__dict__
    performance.drop_output_upcast(model)  # no wrapper (CPU fp32): nothing to do
    assert model.forward == original
