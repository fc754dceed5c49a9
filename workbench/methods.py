"""Fine-tuning methods: ``full``, ``lora`` (through peft) and ``frozen``, in one module.

Why a module of its own: a method changes only *which* weights train and *what is written*,
so the engine's loop, evals, probes and hooks stay the same for all three. Set-up calls
``prepare_model`` once the model is built or loaded (it freezes, wraps in LoRA adapters,
and on resume loads the trainable weights); the optimizer is built over the parameters that
require gradients, so the loop needs no branch. Saving asks ``checkpoint_view`` (a LoRA or
frozen checkpoint holds only the trainable weights, ``trainable.safetensors``, next to the
optimizer state) and ``final_model`` (``model/`` is always a plain transformers model, LoRA
merged in, loadable without peft; ``adapter/`` is the LoRA adapter as peft saves it).

- ``full``: every weight trains (the default, and the only method from scratch).
- ``lora``: low-rank adapters on the attention and MLP projections inside the transformer
  blocks (found from the module names, so BERT-style encoders and GPT-2 get theirs without
  a table), plus the task head, which trains fully (peft's ``modules_to_save``). Models
  whose head is the output embedding (causal and masked LM) train the adapters only.
- ``frozen``: only the task head trains, a linear probe of the base's features; for language
  modelling only the output layer, untied from the input embeddings so the body stays the
  base's exactly.

peft is imported inside functions: the CLI starts without it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from workbench.errors import BaseModelError, RunDirError, SpecError, WorkbenchError
from workbench.feasibility import check_adapter_rank, check_method_record
from workbench.models import load_config, resolve_base
from workbench.quiet import quiet_libraries

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

TRAINABLE_FILE = "trainable.safetensors"
"""A LoRA or frozen checkpoint's weights: the parameters that train, by name."""
ADAPTER_DIR = "adapter"
_BLOCK = re.compile(r"(^|\.)\d+\.")
"""A module name inside a stack of repeated blocks (``bert.encoder.layer.3.attention...``)."""


@dataclass
class MethodInfo:
    """What a method made of the model: counts for the display and ``run.toml``."""

    method: str
    trainable: int
    total: int
    targets: list[str] = field(default_factory=list)
    """LoRA: the module names adapted (short names, e.g. query, key, value, dense)."""
    heads: list[str] = field(default_factory=list)
    """The modules that train fully (the task head, or the output layer)."""

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def line(self) -> str:
        """One line for the CLI and the TUI, before the first step."""
        counts = f"{self.trainable / 1e6:.3g}M of {self.total / 1e6:.3g}M parameters train ({100 * self.share:.2f}%)"
        if self.method == "lora":
            head = f" + {', '.join(self.heads)} fully" if self.heads else ""
            return f"Method lora: adapters on {', '.join(self.targets)}{head}: {counts}"
        if self.method == "frozen":
            return f"Method frozen: only {', '.join(self.heads) or 'the head'} train{'s' if len(self.heads) <= 1 else ''}: {counts}"
        return f"Method full: {counts}"

    def meta(self) -> dict[str, Any]:
        """For ``run.toml``'s ``[meta]``."""
        out: dict[str, Any] = {"method": self.method, "trainable_parameters": self.trainable,
                               "total_parameters": self.total, "trainable_share": round(self.share, 6)}
        if self.targets:
            out["lora_target_modules"] = list(self.targets)
        if self.heads:
            out["trained_heads"] = list(self.heads)
        return out


def trainable_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def info(model: Any, method: str) -> MethodInfo:
    """The counts of a prepared model (``prepare_model`` records targets and heads on it)."""
    total = sum(p.numel() for p in model.parameters())
    return MethodInfo(method, trainable_count(model), total, list(getattr(model, "_workbench_targets", [])),
                      list(getattr(model, "_workbench_heads", [])))


# ---------------------------------------------------------------------- which modules
def _projection_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D  # transformers: loaded on first use

    return (nn.Linear, Conv1D)


def lm_headed(model: Any) -> bool:
    """Whether the model's head is its output embedding (causal or masked LM)."""
    getter = getattr(model, "get_output_embeddings", None)
    return getter is not None and getter() is not None


SIDE_HEADS = ("cls.seq_relationship",)
"""Heads beside a language-modelling head that train with it (BERT's next-sentence head)."""


def head_names(model: Any) -> list[str]:
    """The task head: the top-level modules with weights besides the base model
    (``classifier``, ``score``, ``qa_outputs``); for LM-headed models only a side head
    such as BERT's next-sentence head (the LM head is the tied input embedding)."""
    if lm_headed(model):
        names = {name for name, _ in model.named_modules()}
        return [name for name in SIDE_HEADS if name in names]
    prefix = getattr(model, "base_model_prefix", "")
    return [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]


def block_projections(model: Any) -> list[str]:
    """Full names of the linear projections inside the repeated transformer blocks: the
    attention and MLP projections of BERT-style and GPT-2 models (and most others)."""
    kinds = _projection_types()
    return [name for name, module in model.named_modules() if isinstance(module, kinds) and _BLOCK.search(name)]


def lora_targets(model: Any, given: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(full module names for peft, their short names for the display): every block
    projection by default, or those whose last name part is in ``given``."""
    projections = block_projections(model)
    if not given:
        full = projections
    else:
        wanted = [name for name in given if name]
        refuse_head_targets(model, wanted)
        kinds = _projection_types()
        every = [name for name, module in model.named_modules() if isinstance(module, kinds)]
        full = [name for name in every if any(name == w or name.endswith("." + w) for w in wanted)]
        missing = [w for w in wanted if not any(name == w or name.endswith("." + w) for name in every)]
        if missing:
            known = ", ".join(dict.fromkeys(name.rsplit(".", 1)[-1] for name in projections)) or "none"
            raise SpecError(f"lora_targets names {missing[0]!r}, which is no linear module of this base",
                            fix=f"use some of: {known} (or leave lora_targets unset for all of them)")
    if not full:
        raise SpecError(f"the base ({type(model).__name__}) has no linear projections inside repeated blocks for LoRA",
                        fix="name them with --lora-targets, or use --method full or frozen")
    short = list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in full))
    return full, short


def refuse_head_targets(model: Any, wanted: list[str]) -> None:
    """A target that names only the head (``classifier``, ``score``, ``qa_outputs``, ``cls``,
    ``lm_head``) would clash with the head's full training (peft's ``modules_to_save``), or
    put adapters on the output embedding the input shares: one line instead."""
    prefix = getattr(model, "base_model_prefix", "")
    roots = [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]
    names = [name for name, _ in model.named_modules() if name]
    for target in wanted:
        found = [name for name in names if name == target or name.endswith("." + target)]
        inside = [next((root for root in roots if name == root or name.startswith(root + ".")), None) for name in found]
        if found and all(inside):
            role = ("the language-modelling head, which LoRA leaves as the base's (tied to the input embedding)"
                    if lm_headed(model) else "the task head, which trains fully already")
            part = "" if target == inside[0] else f", part of {inside[0]}"
            raise SpecError(f"lora_targets names {target!r}{part}: {role}",
                            fix=f"drop {target} from --lora-targets: LoRA adapts the layers inside the base")


# ---------------------------------------------------------------------- preparing the model
def prepare_model(model: Any, spec: ResolvedSpec, base_model_dir: str | None = None, resume_ckpt: Path | None = None) -> Any:
    """The model ``spec.method.name`` trains; on resume, with the checkpoint's trainable weights."""
    if spec.method.name == "full":
        return model
    torch.manual_seed(spec.train.seed)  # LoRA's A matrices: the same start for the same spec and seed
    if spec.method.name == "frozen":
        prepared = _freeze(model)
    elif spec.method.name == "lora":
        prepared = _with_lora(model, spec, base_model_dir)
    else:  # resolve_spec checked the choices
        raise SpecError(f"unknown method {spec.method.name!r}", fix="use full, lora or frozen")
    if resume_ckpt is not None:
        load_trainable(prepared, resume_ckpt)
    return prepared


def _freeze(model: Any) -> Any:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if lm_headed(model):
        output = model.get_output_embeddings()
        inputs = model.get_input_embeddings()
        if inputs is not None and output.weight is inputs.weight:  # tied: train a copy, keep the body the base's
            output.weight = nn.Parameter(output.weight.detach().clone())
            model.config.tie_word_embeddings = False
            if hasattr(model.config, "get_text_config"):
                model.config.get_text_config().tie_word_embeddings = False
        for parameter in output.parameters():
            parameter.requires_grad_(True)
        heads = [name for name, module in model.named_modules() if module is output][:1] + head_names(model)
        for name in heads[1:]:
            for parameter in model.get_submodule(name).parameters():
                parameter.requires_grad_(True)
    else:
        heads = head_names(model)
        for name in heads:
            for parameter in getattr(model, name).parameters():
                parameter.requires_grad_(True)
    if not heads:
        raise SpecError(f"the base ({type(model).__name__}) has no head to train with method frozen", fix="use --method lora or full")
    model._workbench_heads = heads
    return model


def _with_lora(model: Any, spec: ResolvedSpec, base_model_dir: str | None) -> Any:
    from peft import LoraConfig, get_peft_model  # peft: loaded on first use

    quiet_libraries()
    from transformers.pytorch_utils import Conv1D  # transformers: loaded on first use

    lora = spec.method.lora
    assert lora is not None, "resolve_spec gives a lora run its LoRA settings"
    full, short = lora_targets(model, lora.targets)
    heads = head_names(model)
    transposed = any(isinstance(model.get_submodule(name), Conv1D) for name in full)  # GPT-2 stores (in, out)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=full, modules_to_save=heads or None,
                        bias="none", fan_in_fan_out=transposed)
    wrapped = get_peft_model(model, config)
    if base_model_dir:
        wrapped.peft_config["default"].base_model_name_or_path = base_model_dir
    wrapped._workbench_targets, wrapped._workbench_heads = short, heads
    return wrapped


def preview(spec: ResolvedSpec, task: Any) -> MethodInfo | None:
    """The counts a resolved spec with a base would train, from the base's config on the meta
    device (no weights read; a new head has the default two labels): for the TUI's defaults
    line before a run starts. None when the base cannot be read yet."""
    try:
        config = load_config(resolve_base(spec.base))
        rng = torch.get_rng_state()
        with torch.device("meta"):
            model = prepare_model(task.auto_class.from_config(config), spec)
        torch.set_rng_state(rng)
        return info(model, spec.method.name)
    except (WorkbenchError, ValueError, TypeError, KeyError, RuntimeError, AttributeError):
        return None


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


# ---------------------------------------------------------------------- checkpoints
class TrainableWeights:
    """What a LoRA or frozen checkpoint saves of the model: the trainable parameters (a few
    percent of the weights) and the model's config, through the same ``save_pretrained``
    call a full checkpoint makes."""

    def __init__(self, model: Any):
        self.model = model

    def save_pretrained(self, folder: Any, safe_serialization: bool = True) -> None:
        from safetensors.torch import save_file  # safetensors: loaded on first use

        folder = Path(folder)
        tensors = {name: p.detach().to("cpu").contiguous().clone() for name, p in self.model.named_parameters() if p.requires_grad}
        metadata = {"format": "pt", "workbench": "trainable-only", **method_record(self.model)}
        save_file(tensors, str(folder / TRAINABLE_FILE), metadata=metadata)
        config = self.model.get_base_model().config if is_peft(self.model) else self.model.config
        config.save_pretrained(folder)


def method_record(model: Any) -> dict[str, str]:
    """The method and every LoRA setting of a prepared model, as text: written into a
    checkpoint's ``trainable.safetensors`` and compared on resume (``feasibility.check_method_record``)."""
    if not is_peft(model):
        return {"method": "frozen"}
    config = model.peft_config["default"]
    targets = config.target_modules
    return {"method": "lora", "lora_r": str(config.r), "lora_alpha": f"{float(config.lora_alpha):g}",
            "lora_dropout": f"{float(config.lora_dropout):g}",
            "lora_targets": ",".join(sorted(targets)) if not isinstance(targets, str) else targets}


def checkpoint_view(model: Any, method: str) -> Any:
    """What ``save_checkpoint`` saves: the model (full) or only its trainable weights."""
    return model if method == "full" else TrainableWeights(model)


def load_trainable(model: Any, folder: Path) -> None:
    """Load a checkpoint's ``trainable.safetensors`` into a model prepared the same way; a
    file that does not hold exactly the trainable parameters is a one-line ``RunDirError``."""
    from safetensors import SafetensorError, safe_open  # safetensors: loaded on first use
    from safetensors.torch import load_file  # safetensors: loaded on first use

    path = Path(folder) / TRAINABLE_FILE
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            saved = handle.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise RunDirError(f"cannot read the trainable weights ({' '.join(str(exc).split())[:200]})", where=str(path),
                          fix="move this checkpoint into checkpoints/.rejected to resume from the one before it") from None
    check_method_record(saved, method_record(model), str(path))
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(tensors) != set(params) or any(tensors[n].shape != params[n].shape for n in params):
        extra = sorted(set(tensors) ^ set(params))
        raise RunDirError(f"the trainable weights do not match this run's method ({len(tensors)} saved, {len(params)} expected"
                          + (f"; e.g. {extra[0]}" if extra else "; shapes differ") + ")", where=str(path),
                          fix="resume with the spec the run was started with (its run.toml), or start a new run")
    with torch.no_grad():
        for name, parameter in params.items():
            parameter.copy_(tensors[name].to(parameter.dtype))


# ---------------------------------------------------------------------- the final model
def merged_model(model: Any) -> Any:
    """A plain transformers model with the trained weights (LoRA merged into a copy, so the
    run's own model keeps its adapters); the model itself for full and frozen runs."""
    if not is_peft(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def save_adapter(model: Any, folder: Path) -> bool:
    """peft's ``save_pretrained`` (safetensors) into ``folder``; False for a model without adapters."""
    if not is_peft(model):
        return False
    model.save_pretrained(str(folder), safe_serialization=True)
    return True


# ---------------------------------------------------------------------- reading adapters safely
def read_adapter_config(folder: Path, base_model_dir: str | None = None) -> dict[str, Any]:
    """``adapter_config.json``, refused in one line (``BaseModelError``) when it would run code
    (``auto_map``, remote code), names another base than ``base_model_dir``, or the weights
    are not safetensors."""
    folder = Path(folder)
    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaseModelError(f"adapter_config.json is unreadable ({' '.join(str(exc).split())[:160]})", where=str(path),
                             fix="save the adapter again with PeftModel.save_pretrained") from None
    if not isinstance(config, dict):
        raise BaseModelError("adapter_config.json is not a JSON object", where=str(path), fix="save the adapter again with PeftModel.save_pretrained")
    remote = [key for key in ("auto_map", "trust_remote_code") if config.get(key)]
    mapping = config.get("auto_mapping")  # peft's record of the base class: fine when it names transformers' own
    if mapping and not (isinstance(mapping, dict) and str(mapping.get("parent_library", "transformers.")).startswith("transformers.")):
        remote.append("auto_mapping")
    if remote:
        raise BaseModelError(f"adapter_config.json has {remote[0]}, which would run code shipped with the adapter; the workbench never runs remote code",
                             where=str(path), fix="use an adapter whose base architecture is built into transformers")
    if not (folder / "adapter_model.safetensors").is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        detail = f" (found {', '.join(pickles)}, which are pickles)" if pickles else ""
        raise BaseModelError(f"no adapter_model.safetensors{detail}; adapters are read with safetensors only", where=str(folder),
                             fix="save the adapter with safe_serialization=True in a trusted environment")
    check_adapter_rank(folder, config)  # an r edited away from the weights: peft would drop them with a warning
    named = config.get("base_model_name_or_path")
    if base_model_dir is not None and named and not same_base(str(named), base_model_dir):
        raise BaseModelError(f"adapter was trained on base {named}, not on the base given ({base_model_dir})", where=str(path),
                             fix=f"give its own base: {named}")
    return config


def same_base(named: str, given: str) -> bool:
    """Whether an adapter's recorded base and the given one are the same model: equal hub ids,
    or the same folder (a run directory counts as its ``model/``)."""
    if named == given:
        return True

    def folder(text: str) -> Path | None:
        path = Path(text).expanduser()
        if not path.exists():
            return None
        if (path / "run.toml").is_file():
            path = path / "model"
        return path.resolve()

    a, b = folder(named), folder(given)
    return a is not None and a == b


def load_adapter_model(adapter_dir: Path, base_model: Any, base_model_dir: str) -> Any:
    """``base_model`` with the adapter at ``adapter_dir`` merged in, read with safetensors only
    after ``read_adapter_config`` has checked it (no remote code, the same base)."""
    from peft import PeftModel  # peft: loaded on first use

    read_adapter_config(adapter_dir, base_model_dir)
    try:
        wrapped = PeftModel.from_pretrained(base_model, str(adapter_dir), is_trainable=False)  # safetensors: checked above
    except Exception as exc:  # noqa: BLE001 - shape mismatch, damaged file
        raise BaseModelError(f"cannot load the adapter ({' '.join(str(exc).split())[:200]})", where=str(adapter_dir),
                             fix="check that the adapter was saved for this base") from None
    return wrapped.merge_and_unload()
