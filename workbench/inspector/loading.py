"""Load one side of a comparison safely, and keep it cached between queries.

Models go through ``workbench.models`` (safetensors only, no remote code). The class is
the one named in ``config.architectures`` when transformers has it built in (so a
fine-tuned classifier keeps its head and a BERT pre-training model keeps its NSP head);
otherwise the masked-LM, causal-LM or bare class for the model type. What the loaded
class can answer (its heads) decides which queries a side takes part in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers
from transformers.models.auto import modeling_auto as auto

from workbench.models import BaseRef, is_decoder, load_config, load_model, load_tokenizer, parameter_count

HEAD_MAPPINGS: dict[str, tuple[str, ...]] = {
    "clm": ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",),
    "mlm": ("MODEL_FOR_MASKED_LM_MAPPING_NAMES",),
    "nsp": ("MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES",),
    "classify": ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",),
    "tag": ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",),
    "qa": ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",),
}
"""Head name -> transformers' auto mappings whose classes carry that head."""

TASK_HEADS = ("classify", "tag", "qa")


def _classes(mapping_name: str) -> set[str]:
    mapping = getattr(auto, mapping_name, {})
    names: set[str] = set()
    for value in mapping.values():
        names.update(value if isinstance(value, (tuple, list)) else (value,))
    return names


def heads_of(class_name: str) -> frozenset[str]:
    """Which queries a built-in model class can answer natively."""
    heads = {head for head, mappings in HEAD_MAPPINGS.items() if any(class_name in _classes(m) for m in mappings)}
    pretraining = class_name in _classes("MODEL_FOR_PRETRAINING_MAPPING_NAMES")
    if pretraining and "clm" not in heads and class_name.endswith("ForPreTraining"):
        heads.add("mlm")  # BertForPreTraining: masked LM + next sentence
        if class_name.replace("ForPreTraining", "ForNextSentencePrediction") in _classes("MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES"):
            heads.add("nsp")
    return frozenset(heads)


def _known_class(name: str) -> bool:
    every = set().union(*(_classes(n) for n in dir(auto) if n.endswith("_MAPPING_NAMES")))
    return name in every and hasattr(transformers, name)


def choose_class(config: Any) -> str:
    """``config.architectures[0]`` if built in, else the LM class for the model type: the
    next-token head for a decoder, the masked-LM head otherwise (``models.is_decoder``)."""
    for name in getattr(config, "architectures", None) or []:
        if _known_class(name):
            return name
    lm_mappings = ["MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"]
    if is_decoder(config):
        lm_mappings.reverse()
    for mapping in (*lm_mappings, "MODEL_MAPPING_NAMES"):
        name = getattr(auto, mapping, {}).get(config.model_type)
        if isinstance(name, (tuple, list)):
            name = name[0]
        if name and hasattr(transformers, name):
            return name
    return "AutoModel"


@dataclass
class LoadedModel:
    """One side: the model in eval mode, its tokenizer, and what it can answer."""

    ref: BaseRef
    model: Any
    tokenizer: Any
    architecture: str
    heads: frozenset[str]
    parameters: int
    loaded_at_mtime: float = 0.0

    @property
    def family(self) -> str:
        """masked, causal or encoder (no LM head)."""
        if "clm" in self.heads:
            return "causal"
        if "mlm" in self.heads:
            return "masked"
        return "encoder"

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def task_head(self) -> str | None:
        return next((h for h in TASK_HEADS if h in self.heads), None)

    def describe(self, label: str = "", ref: BaseRef | None = None) -> dict[str, Any]:
        """JSON summary; ``ref`` is how this query named the model (the cached object keeps
        the name it was first loaded under)."""
        ref = ref or self.ref
        return {
            "label": label,
            "given": ref.given,
            "kind": ref.kind,
            "path": ref.model_dir,
            "architecture": self.architecture,
            "family": self.family,
            "heads": sorted(self.heads),
            "parameters": self.parameters,
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": len(self.tokenizer),
        }


def _mtime(ref: BaseRef) -> float:
    if ref.kind == "hub":
        return 0.0
    folder = Path(ref.model_dir)
    stamps = [p.stat().st_mtime for p in folder.glob("*.safetensors")]
    stamps += [p.stat().st_mtime for p in (folder / "config.json",) if p.is_file()]
    return max(stamps, default=0.0)


def _load_uncached(ref: BaseRef, device: str) -> LoadedModel:
    transformers.utils.logging.disable_progress_bar()  # a bar would corrupt the Rich/TUI output
    transformers.utils.logging.set_verbosity_error()
    if getattr(ref, "base_dir", ""):  # a LoRA adapter folder (pairing.AdapterRef): on its base
        return _load_adapter(ref, device)
    config = load_config(ref)  # refuses pickles and auto_map first
    class_name = choose_class(config)
    auto_class = getattr(transformers, class_name)
    tokenizer = load_tokenizer(ref)
    model = load_model(ref, auto_class)
    model.to(device)
    model.eval()
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, architecture=class_name,
                       heads=heads_of(class_name), parameters=parameter_count(model))


def _load_adapter(ref: Any, device: str) -> LoadedModel:
    """A LoRA ``adapter/`` merged into its base (``methods.load_adapter_model``: safetensors
    only, no remote code, the base it names). Inside a run directory, the run's ``model/``
    config gives the class and label names (a task head is part of the adapter)."""
    from workbench.methods import load_adapter_model  # loads torch: only when used

    base = BaseRef(given=ref.base_dir, kind="local" if Path(ref.base_dir).exists() else "hub", model_dir=ref.base_dir)
    run_model = Path(ref.model_dir).parent / "model"
    config_ref = BaseRef(given=str(run_model), kind="local", model_dir=str(run_model)) if (run_model / "config.json").is_file() else base
    config = load_config(config_ref)
    class_name = choose_class(config)
    model = load_model(base, getattr(transformers, class_name), config=config)
    model = load_adapter_model(Path(ref.model_dir), model, ref.base_dir)
    model.to(device)
    model.eval()
    return LoadedModel(ref=ref, model=model, tokenizer=load_tokenizer(base), architecture=class_name,
                       heads=heads_of(class_name), parameters=parameter_count(model))


class ModelCache:
    """A small LRU of loaded models keyed by (resolved path, newest weight mtime, device).

    Rewriting a model folder (a run finishing) changes the mtime, so the next query loads
    the new weights; otherwise the second query on the same pair costs no loading at all.
    A lock makes it safe to share between a TUI worker thread and anything else.
    """

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, ref: BaseRef, device: str = "cpu") -> LoadedModel:
        path = ref.model_dir if ref.kind == "hub" else str(Path(ref.model_dir).resolve())
        key = (path, _mtime(ref), device)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loaded = _load_uncached(ref, device)
            loaded.loaded_at_mtime = key[1]
            self.loads += 1
            self._items[key] = loaded
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MODEL_CACHE = ModelCache()
"""The process-wide cache the CLI and the TUI share."""
