"""GPU throughput, MFU and peak memory: the engine vs a plain eager loop, same process.

Two shapes on synthetic tokens (no corpus to read; the tokenizer, unused by the data, trains
on three words in milliseconds), registered as benchmark objectives:

- GPT-2 124M, causal LM, batch 16 x 1024 (goal: >= 45% MFU on one H100/H200);
- BERT-base, masked LM (transformers' 15% masking collator), batch 32 x 512.

For each, the *engine* is measured through ``TrainingRun`` (the same loop both front ends
use: Accelerate bf16 autocast, fused AdamW, SDPA, ``torch.compile`` when ``--compile`` is
auto/on, pinned non-blocking copies, loss read only at log intervals; for GPT-2 the lean
twin of ``GPT2LMHeadModel`` that from-scratch clm trains with) and the *plain loop* is a
hand-written eager loop on transformers' model of the same shape and batches (bf16
autocast, fused AdamW, no compile). For GPT-2 a third row runs the engine with
transformers' own model (``lean_model = "off"``), to show what the lean model adds. Throughput is timed between log events after ``--warmup`` steps (so the
compile minute is excluded), MFU = (6 N + 12 L d T) tokens/s / peak, with N the parameters
without position embeddings (nanoGPT's convention) and the peak dense bf16 FLOP/s looked up
by device name (``--peak-tflops`` overrides). Dropout is 0 and GPT-2's vocabulary is padded
to 50,304 (a multiple of 64), as in nanoGPT's pre-training runs.

Then two measurements of what a person runs on the card (``--no-lora``/``--no-sweep`` skip them):

- a LoRA fine-tune (``method = "lora"``, the ``generation`` objective on the built-in
  ``general`` corpus) of a GPT-2 base of the same shape saved here with random weights (the
  script reaches no hub): tokens/s between logs, peak memory, trainable parameters;
- ``workbench sweep --parallel N`` with N the visible GPUs (one trial per GPU at a time; 2
  CPU workers without CUDA) over a grid of 2N tiny-shape trials: wall seconds and trials/hour,
  against the same grid with ``--parallel 1``.

No GPU was lent in the session that wrote this script: it has run on CPU only (``--tiny``,
chosen automatically without CUDA), so its GPU figures are still to be measured. On one
H100/H200 the whole script is sized to finish in about 8 minutes (two compiles included).

    python benchmarks/gpu.py                      # both models; tiny shapes without CUDA
    python benchmarks/gpu.py --only gpt2 --steps 60
    python benchmarks/gpu.py --tiny               # tiny shapes anywhere (a smoke test)
    python benchmarks/gpu.py --peak-tflops 756    # e.g. an H100 PCIe not in the table
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.order import BatchOrder, step_seed
from workbench.engine.performance import configure_backends, to_device
from workbench.quiet import quiet_libraries
from workbench.tasks.base import BlockData

PEAK_BF16_TFLOPS = (  # dense, no sparsity; first match in the device name wins
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("RTX 4090", 165.0),
)


@dataclass
class Shape:
    name: str
    objective: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    batch: int
    seq: int


FULL = {
    "gpt2": Shape("GPT-2 124M", "clm", 50304, 768, 12, 12, 16, 1024),  # 50257 padded to a multiple of 64, as nanoGPT
    "bert": Shape("BERT-base", "mlm", 30522, 768, 12, 12, 32, 512),
}
TINY = {
    "gpt2": Shape("GPT-2 (tiny)", "clm", 512, 64, 2, 2, 4, 64),
    "bert": Shape("BERT (tiny)", "mlm", 512, 64, 2, 2, 4, 64),
}


def peak_tflops(device: str, override: float | None) -> float | None:
    if override:
        return override
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def stub_tokenizer() -> Any:
    """A real (tiny) fast tokenizer, so checkpoints and the masking collator work as usual."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(specials + ["the", "cat", "sat"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
    )


def build_model(shape: Shape) -> Any:
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    if shape.objective == "clm":
        return GPT2LMHeadModel(GPT2Config(
            vocab_size=shape.vocab, n_embd=shape.hidden, n_layer=shape.layers, n_head=shape.heads,
            n_positions=shape.seq, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        ))
    return BertForMaskedLM(BertConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=4 * shape.hidden, max_position_embeddings=shape.seq,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
    ))


def synthetic_data(shape: Shape, steps: int, tokenizer: Any) -> BlockData:
    """Random token blocks, enough for every step without repeating; the task's own transform."""
    generator = torch.Generator().manual_seed(0)
    train = torch.randint(6, shape.vocab, (shape.batch * (steps + 1), shape.seq), generator=generator)
    evaluation = torch.randint(6, shape.vocab, (shape.batch, shape.seq), generator=generator)
    if shape.objective == "clm":
        def transform(blocks: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"input_ids": blocks, "labels": blocks}
    else:
        from workbench.tasks.mlm import masking_collator, special_ids

        collator, specials = masking_collator(tokenizer), special_ids(tokenizer)

        def transform(blocks: torch.Tensor) -> dict[str, torch.Tensor]:
            inputs, labels = collator.torch_mask_tokens(blocks.clone(), special_tokens_mask=torch.isin(blocks, specials))
            return {"input_ids": inputs, "labels": labels}
    return BlockData(train=train, eval=evaluation, transform=transform)


def synthetic_objective(shape: Shape, data: BlockData) -> str:
    """Register an objective whose model and data are the synthetic ones (the registry's own
    extension point: the engine then trains them exactly as it trains a user's run)."""
    from workbench.objectives import Objective, register
    from workbench.tasks.clm import CausalLMTask
    from workbench.tasks.mlm import MaskedLMTask

    class SyntheticTask(CausalLMTask if shape.objective == "clm" else MaskedLMTask):  # type: ignore[misc]
        def build_model(self, spec: Any, tokenizer: Any) -> Any:
            return build_model(shape)

        def prepare(self, corpus: Any, tokenizer: Any, spec: Any, checked: Any = None) -> BlockData:
            return data

    name = f"bench-{shape.objective}"
    globals()[f"SyntheticTask_{shape.objective}"] = SyntheticTask
    register(Objective(name, "pretrain", "benchmark: synthetic blocks", f"{__name__}:SyntheticTask_{shape.objective}"))
    return name


def flops_per_token(model: Any, shape: Shape) -> float:
    position = sum(p.numel() for n, p in model.named_parameters() if "wpe" in n or "position_embeddings" in n)
    n = sum(p.numel() for p in model.parameters()) - position
    return 6 * n + 12 * shape.layers * shape.hidden * shape.seq


def engine_rate(shape: Shape, args: argparse.Namespace, device: str, out: Path,
                data: BlockData, lean: str = "auto") -> tuple[float, float]:
    """Tokens/s between the log at ``warmup`` and the last log, and peak GPU memory (GiB)."""
    corpus = out / "unused.txt"
    corpus.write_text("the cat sat\n" * 50, encoding="utf-8")
    total = args.warmup + args.steps
    spec = RunSpec(
        corpus=str(corpus), objective=synthetic_objective(shape, data), size="base" if not args.tiny else "tiny",
        max_steps=total, batch_size=shape.batch, seq_len=shape.seq, log_interval=args.warmup,
        eval_interval=10 * total, save_interval=10 * total, eval_batches=1, warmup_ratio=0.0,
        out=str(out), name=f"bench-{shape.objective}-lean-{lean}", device=device, probes=[], compile=args.compile,
        lean_model=lean,
    )
    marks: dict[int, tuple[float, int]] = {}

    def listener(event: Any) -> None:
        if event.kind == "step":
            marks[event.step] = (time.perf_counter(), event.tokens)

    reset_memory(device)
    TrainingRun(spec, listeners=[listener]).run()
    (t0, tok0), (t1, tok1) = marks[args.warmup], marks[total]
    return (tok1 - tok0) / (t1 - t0), peak_memory_gib(device)


def eager_rate(shape: Shape, args: argparse.Namespace, device: str, data: BlockData) -> tuple[float, float]:
    """The loop a person writes: forward under autocast, backward, clip, fused AdamW."""
    reset_memory(device)
    torch.manual_seed(0)
    model = build_model(shape).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=device == "cuda")
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    autocast = torch.autocast("cuda", dtype=dtype) if device == "cuda" else torch.autocast("cpu", enabled=False)
    order = BatchOrder(data.num_examples("train"), shape.batch, 0)
    tokens, start = 0, 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            synchronize(device)
            start, tokens = time.perf_counter(), 0
        torch.manual_seed(step_seed(0, step))
        batch, n_tokens = data.batch("train", order.indices(step))
        batch = to_device(batch, torch.device(device))
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += n_tokens
    synchronize(device)
    rate = tokens / (time.perf_counter() - start)
    del model, optimizer
    return rate, peak_memory_gib(device)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_memory(device: str) -> None:
    """Free the previous measurement's model (compiled graphs hold references) and reset the peak."""
    import gc

    torch._dynamo.reset()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def saved_base(shape: Shape, folder: Path) -> Path:
    """A GPT-2 of ``shape`` with random weights and a BPE tokenizer, saved as a fine-tuning base."""
    from workbench.tokenization import train_bpe

    tokenizer = train_bpe(["the cat sat on the mat and the dog ran to the log"] * 50, 300)
    model = build_model(Shape(shape.name, "clm", len(tokenizer), shape.hidden, shape.layers, shape.heads, shape.batch, shape.seq))
    model.config.vocab_size = len(tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def lora_rate(shape: Shape, args: argparse.Namespace, device: str) -> dict[str, Any]:
    """A LoRA fine-tune through the engine: tokens/s between the warm-up log and the last."""
    total = args.warmup + args.steps
    marks: dict[int, tuple[float, int]] = {}
    started: dict[str, int] = {}

    def listener(event: Any) -> None:
        if event.kind == "step":
            marks[event.step] = (time.perf_counter(), event.tokens)
        elif event.kind == "started":
            started["trainable"], started["parameters"] = event.trainable_parameters, event.parameters

    with tempfile.TemporaryDirectory(prefix="workbench-gpu-lora-") as out:
        base = saved_base(shape, Path(out) / "base")
        spec = RunSpec(objective="generation", base=str(base), method="lora", corpus="general", max_steps=total,
                       batch_size=shape.batch, seq_len=shape.seq, log_interval=args.warmup, eval_interval=10 * total,
                       save_interval=10 * total, eval_batches=1, warmup_ratio=0.0, out=out, name="lora", device=device,
                       probes=[], compile=args.compile)
        reset_memory(device)
        TrainingRun(spec, listeners=[listener]).run()
    (t0, tok0), (t1, tok1) = marks[args.warmup], marks[total]
    return {"model": f"{shape.name} LoRA", "who": "engine", "batch": f"{shape.batch}x{shape.seq}",
            "tokens_per_s": round((tok1 - tok0) / (t1 - t0), 1), "peak_memory_gib": round(peak_memory_gib(device), 2) if device == "cuda" else None,
            "trainable": started.get("trainable"), "parameters": started.get("parameters")}


def sweep_seconds(workers: int, trials: int, device: str, steps: int) -> float:
    """Wall seconds of `workbench sweep --parallel WORKERS` over ``trials`` tiny clm trials."""
    import subprocess
    import sys

    lrs = ",".join(f"{1e-3 * (1 + i)}" for i in range(trials))
    with tempfile.TemporaryDirectory(prefix="workbench-gpu-sweep-") as out:
        command = [sys.executable, "-m", "workbench", "sweep", "--out", out, "--name", f"p{workers}", "--corpus", "general",
                   "--device", device, "--n-layer", "2", "--n-head", "2", "--d-model", "64", "--seq-len", "64", "--batch-size", "16",
                   "--max-steps", str(steps), "--eval-interval", str(steps), "--eval-batches", "2", "--probe", "The",
                   "--no-prune", "--grid", f"lr={lrs}", "--parallel", str(workers), "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"sweep --parallel {workers} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def sweep_rows(device: str, steps: int) -> list[dict[str, Any]]:
    """--parallel across the visible GPUs (2 CPU workers without CUDA) against --parallel 1, same grid."""
    workers = torch.cuda.device_count() if device == "cuda" else 2
    trials = 2 * workers
    rows = []
    for n in sorted({1, workers}):
        seconds = sweep_seconds(n, trials, device, steps)
        rows.append({"model": f"sweep of {trials} tiny trials", "who": f"--parallel {n}", "seconds": round(seconds, 1),
                     "trials_per_hour": round(3600 * trials / seconds, 1)})
        print(f"sweep of {trials} tiny clm trials ({steps} steps) --parallel {n}: {seconds:7.1f} s, "
              f"{3600 * trials / seconds:7.1f} trials/hour", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(FULL), help="Measure one model only.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps (default 40 on CUDA, 6 tiny).")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed steps first (default 10 on CUDA, 2 tiny).")
    parser.add_argument("--tiny", action="store_true", help="Tiny shapes (automatic without CUDA).")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"], help="The engine's compile setting.")
    parser.add_argument("--peak-tflops", type=float, default=None, help="Peak dense bf16 TFLOP/s of the card.")
    parser.add_argument("--no-hf-engine", action="store_true", help="Skip the engine row with transformers' GPT-2 (saves a compile).")
    parser.add_argument("--no-lora", action="store_true", help="Skip the LoRA fine-tune.")
    parser.add_argument("--no-sweep", action="store_true", help="Skip the sweep --parallel measurement.")
    parser.add_argument("--sweep-steps", type=int, default=None, help="Steps per sweep trial (default 200 on CUDA, 10 tiny).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results to this JSON file.")
    args = parser.parse_args()
    quiet_libraries()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.tiny = args.tiny or device == "cpu"
    args.steps = args.steps or (6 if args.tiny else 40)
    args.warmup = args.warmup or (2 if args.tiny else 10)
    configure_backends(device)
    shapes = TINY if args.tiny else FULL
    peak = peak_tflops(device, args.peak_tflops)
    card = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {card}; peak bf16: {f'{peak:g} TFLOP/s' if peak else 'unknown (pass --peak-tflops)'}; "
          f"{args.warmup} warm-up + {args.steps} timed steps; engine compile={args.compile}", flush=True)

    results = []
    tokenizer = stub_tokenizer()
    for key in [args.only] if args.only else list(shapes):
        shape = shapes[key]
        data = synthetic_data(shape, args.warmup + args.steps, tokenizer)
        with torch.device("meta"):  # counting parameters needs no memory
            fpt = flops_per_token(build_model(shape), shape)
        eager = ("eager loop", *eager_rate(shape, args, device, data))
        variants = [("engine", "auto")] + ([("engine, HF model", "off")] if shape.objective == "clm" and not args.no_hf_engine else [])
        rows = []
        for who, lean in variants:
            with tempfile.TemporaryDirectory(prefix="workbench-gpu-bench-") as out:
                rows.append((who, *engine_rate(shape, args, device, Path(out), data, lean)))
        for who, tps, mem in rows + [eager]:
            mfu = tps * fpt / (peak * 1e12) if peak else None
            results.append({"model": shape.name, "who": who, "batch": f"{shape.batch}x{shape.seq}", "tokens_per_s": round(tps, 1),
                            "mfu": round(mfu, 4) if mfu is not None else None, "peak_memory_gib": round(mem, 2) if mem == mem else None})
            print(f"{shape.name:14s} {who:16s} batch {shape.batch}x{shape.seq}: {tps:12,.0f} tok/s  "
                  f"MFU {f'{mfu:.1%}' if mfu is not None else 'n/a':>6s}  peak memory "
                  f"{f'{mem:.1f} GiB' if mem == mem else 'n/a'}", flush=True)
    if not args.no_lora:
        row = lora_rate(shapes["gpt2"], args, device)
        results.append(row)
        memory = "n/a" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f} GiB"
        print(f"{row['model']:14s} {'engine':16s} batch {row['batch']}: {row['tokens_per_s']:12,.0f} tok/s  trainable "
              f"{row['trainable']:,} of {row['parameters']:,}  peak memory {memory}", flush=True)
    if not args.no_sweep:
        results += sweep_rows(device, args.sweep_steps or (10 if args.tiny else 200))
    if args.json:
        args.json.write_text(json.dumps({"device": card, "peak_tflops": peak, "results": results}, indent=2))


if __name__ == "__main__":
    main()
