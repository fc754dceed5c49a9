"""Hugging Face hub datasets through ``datasets.load_dataset`` and its cache."""

from __future__ import annotations

import datasets

from workbench.errors import CorpusError

EVAL_SPLITS = ("validation", "valid", "dev", "test")


def load_hub(name: str, config: str | None) -> tuple[datasets.Dataset, datasets.Dataset | None, str]:
    """Return (train, eval or None, eval split name). Offline without a cache -> CorpusError."""
    label = f"hf:{name}" + (f":{config}" if config else "")
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as exc:  # noqa: BLE001 - network, auth, missing: all one line
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        offline = any(word in reason.lower() for word in ("offline", "connect", "resolve", "network", "internet", "couldn't reach", "max retries"))
        fix = (
            "connect to the internet once to fill the datasets cache, or use a local file"
            if offline
            else "check the dataset name and config (hf:NAME[:CONFIG]), or use a local file"
        )
        raise CorpusError(f"could not load hub dataset ({reason})", where=label, fix=fix) from None
    if isinstance(loaded, datasets.Dataset):
        return loaded, None, ""
    splits = list(loaded.keys())
    train_split = "train" if "train" in loaded else splits[0]
    eval_split = next((s for s in EVAL_SPLITS if s in loaded and s != train_split), None)
    return loaded[train_split], (loaded[eval_split] if eval_split else None), eval_split or ""
