"""Model presets for from-scratch runs, and base-model resolution and safe loading.

Bases are loaded with ``use_safetensors=True`` and never with remote code: a pickle
(``pytorch_model.bin``) or a config with ``auto_map`` is refused before anything is read.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import BaseModelError
from workbench.runs.kept import base_at

if TYPE_CHECKING:  # transformers is imported where it is used: the CLI starts without it
    from transformers import BertConfig, GPT2Config, PretrainedConfig

    from workbench.config import ResolvedSpec, ShapeArgs

DECODER_TYPES = ("gpt2", "gpt_neo", "gptj", "llama", "mistral", "opt", "gpt_neox", "qwen2", "phi", "gemma", "bloom")
"""Model types that read left to right (the one list: tasks and the inspector ask ``is_decoder``)."""


def is_decoder(config: Any) -> bool:
    """A left-to-right model (GPT-2, Llama...): it has a next-token head and no masked-LM head.

    Beyond the listed types, any causal-LM architecture transformers knows that has no
    masked-LM head counts (in transformers' mappings, the types with both are encoders)."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    if config.model_type in DECODER_TYPES or getattr(config, "is_decoder", False):
        return True
    from transformers.models.auto import modeling_auto as auto  # transformers: loaded on first use

    return (config.model_type in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and config.model_type not in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)


PRESETS: dict[str, dict[str, Any]] = {
    # the spec's shape fields each preset fills when left unset (--size is a shorthand);
    # d_ff is 4 x d_model for all three
    "tiny": {"d_model": 128, "n_layer": 2, "n_head": 4, "vocab": 4096, "dropout": 0.0},
    "small": {"d_model": 256, "n_layer": 6, "n_head": 8, "vocab": 8192, "dropout": 0.1},
    "base": {"d_model": 768, "n_layer": 12, "n_head": 12, "vocab": 32768, "dropout": 0.1},
}
"""Dropout is 0 for tiny: it slows tiny models down far more than it regularises them."""
SHAPE_FIELDS = ("n_layer", "n_head", "d_model", "d_ff", "dropout", "max_position", "tie_embeddings")
"""The spec fields that shape a model from scratch (a base fixes them all)."""


def bert_config(shape: ShapeArgs | None, vocab_size: int, tokenizer: Any) -> BertConfig:
    """A BERT of a resolved from-scratch shape: the same fields as ``gpt2_config``."""
    assert shape is not None, "a model from scratch has a resolved shape (a base fixes its own)"
    from transformers import BertConfig  # transformers: loaded on first use

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=shape.d_model,
        num_hidden_layers=shape.n_layer,
        num_attention_heads=shape.n_head,
        intermediate_size=shape.d_ff,
        max_position_embeddings=shape.max_position,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=shape.dropout,
        attention_probs_dropout_prob=shape.dropout,
        tie_word_embeddings=shape.tie_embeddings,
    )


def gpt2_config(shape: ShapeArgs | None, vocab_size: int, tokenizer: Any) -> GPT2Config:
    """A GPT-2 of a resolved from-scratch shape; dropout on embeddings, attention and residual."""
    assert shape is not None, "a model from scratch has a resolved shape (a base fixes its own)"
    from transformers import GPT2Config  # transformers: loaded on first use

    return GPT2Config(
        vocab_size=vocab_size,
        n_embd=shape.d_model,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        n_inner=shape.d_ff,
        n_positions=shape.max_position,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=shape.dropout,
        embd_pdrop=shape.dropout,
        attn_pdrop=shape.dropout,
        tie_word_embeddings=shape.tie_embeddings,
    )


@dataclass(frozen=True)
class BaseRef:
    """Where a base model lives. ``kind`` is run, local or hub; ``model_dir`` is what
    ``from_pretrained`` reads (a folder, or a hub id)."""

    given: str
    kind: str
    model_dir: str
    run_dir: str | None = None

    def identity(self) -> dict[str, str]:
        """Path and config hash, recorded in run.toml so the inspector can find the base."""
        return {"base": self.given, "base_kind": self.kind, "base_model_dir": self.model_dir,
                "base_config_sha256": config_hash(self.model_dir)}


def config_hash(model_dir: str) -> str:
    path = Path(model_dir) / "config.json"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return ""


def resolve_base(base: str) -> BaseRef:
    """A base by what ``--base`` was given: a run folder (its final ``model/``), ``RUN@STEP``
    (that step's kept checkpoint) or ``RUN@initial`` (its untrained weights), a local model
    folder, or a hub id."""
    at = base_at(base) if not Path(base).expanduser().exists() else None
    if at is not None:
        run_path, folder, _ = at
        return BaseRef(given=base, kind="run", model_dir=str(folder.resolve()), run_dir=str(run_path.resolve()))
    path = Path(base).expanduser()
    if path.exists():
        if (path / "run.toml").is_file():
            model_dir = path / "model"
            if not (model_dir / "config.json").is_file():
                raise BaseModelError(
                    "run has no final model yet (model/ is missing)",
                    where=str(path),
                    fix=f"finish it with `workbench run --resume {path}`, or pick a finished run",
                )
            return BaseRef(given=base, kind="run", model_dir=str(model_dir.resolve()), run_dir=str(path.resolve()))
        if (path / "config.json").is_file():
            return BaseRef(given=base, kind="local", model_dir=str(path.resolve()))
        raise BaseModelError(
            "not a run directory or a Hugging Face model folder (no run.toml or config.json)",
            where=str(path),
            fix="pass a run directory, a folder saved with save_pretrained, or a hub id",
        )
    if base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise BaseModelError("base model folder not found", where=base, fix="check the path")
    return BaseRef(given=base, kind="hub", model_dir=base)


def check_local_files(ref: BaseRef) -> None:
    """Refuse pickles and remote code before ``transformers`` touches the folder."""
    if ref.kind == "hub":
        return
    folder = Path(ref.model_dir)
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaseModelError(f"config.json is unreadable ({exc})", where=str(config_path), fix="re-save the model with save_pretrained") from None
    if not isinstance(config, dict):
        raise BaseModelError("config.json is not a JSON object", where=str(config_path), fix="re-save the model with save_pretrained")
    if "auto_map" in config:
        raise BaseModelError(
            "config.json has auto_map, which would run code shipped with the model; the workbench never runs remote code",
            where=str(config_path),
            fix="use a model whose architecture is built into transformers",
        )
    if not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        detail = f" (found {', '.join(pickles)}, which are pickles)" if pickles else ""
        raise BaseModelError(
            f"no safetensors weights{detail}; the workbench never loads pickled weights",
            where=str(folder),
            fix="convert the weights to safetensors (model.save_pretrained(dir) in a trusted environment)",
        )


def load_config(ref: BaseRef) -> PretrainedConfig:
    from transformers import AutoConfig  # transformers: loaded on first use

    check_local_files(ref)
    try:
        return AutoConfig.from_pretrained(ref.model_dir, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - offline hub, bad json, unknown model type
        raise BaseModelError(
            f"cannot load the model config ({' '.join(str(exc).split())[:200]})",
            where=ref.given,
            fix="check the path or hub id (hub ids need the internet or a filled cache)",
        ) from None


def load_tokenizer(ref: BaseRef) -> Any:
    from transformers import AutoTokenizer  # transformers: loaded on first use

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.model_dir, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise BaseModelError(
            f"cannot load the tokenizer ({' '.join(str(exc).split())[:200]})",
            where=ref.given,
            fix="save the tokenizer next to the model (tokenizer.save_pretrained)",
        ) from None
    if tokenizer.pad_token is None:
        # GPT-2-style tokenizers have no pad token; reuse EOS (loss ignores padding anyway).
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_model(ref: BaseRef, auto_class: Any, config: Any = None, **overrides: Any) -> Any:
    """The base's weights under ``auto_class``; ``config`` (already loaded and checked by the
    caller) is reused rather than read again, with ``overrides`` (label maps) applied."""
    check_local_files(ref)
    if config is not None:
        config = copy.deepcopy(config)
        config.update(overrides)
        overrides = {"config": config}
    try:
        return auto_class.from_pretrained(ref.model_dir, use_safetensors=True, trust_remote_code=False, **overrides)
    except Exception as exc:  # noqa: BLE001 - truncated files, bad headers, shape mismatch
        raise BaseModelError(
            f"cannot load the model weights ({' '.join(str(exc).split())[:240]})",
            where=ref.given,
            fix="check that the folder holds a complete model saved with save_pretrained",
        ) from None


UNBOUNDED_POSITIONS = 1 << 20
"""What ``position_limit`` says of a model type without position embeddings."""


def position_limit(config: Any) -> int:
    """The longest input a model takes (its position embeddings): the one place that reads it."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return UNBOUNDED_POSITIONS


def fit_to_positions(ids: Any, config: Any, new_tokens: int) -> tuple[Any, int]:
    """``ids`` (1 x n) and a number of new tokens that fit the model's position embeddings: a
    model made for short sequences (``max_position`` = its ``seq_len``) keeps the end of a long
    prompt and generates what room is left, rather than indexing past its last position."""
    limit = position_limit(config)
    if limit <= 1:
        return ids, new_tokens
    ids = ids[:, -(limit - 1):] if ids.shape[1] >= limit else ids
    return ids, max(1, min(new_tokens, limit - ids.shape[1]))


def scratch_parameters(spec: ResolvedSpec, task: Any) -> int | None:
    """Parameters of the model a resolved from-scratch spec builds (with a vocabulary of
    ``vocab_size``), counted on the meta device: nothing is allocated, so a preview is instant."""
    import torch  # torch: loaded on first use

    vocab_size = spec.model.vocab_size
    if vocab_size is None:  # a char vocabulary: unknown until the corpus is read
        return None

    class SizedTokenizer:  # what ``build_model`` reads of a tokenizer
        pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

        def __len__(self) -> int:
            return vocab_size

    try:
        with torch.device("meta"):
            return parameter_count(task.build_model(spec, SizedTokenizer()))
    except Exception:  # noqa: BLE001 - a preview: a task with no from-scratch model has no count
        return None


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
