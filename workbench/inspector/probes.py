"""Probe predictions of one model, and the timeline read back from a run's ``probes.jsonl``.

The engine's probe hook (``engine/hooks/probes.py``) calls ``record_probes`` after each
eval with the model being trained and appends one line per eval to ``probes.jsonl``. It is
cheap by construction: a few forward passes of the (small) model under ``no_grad`` in eval
mode, no sampling, and the model's previous train/eval mode restored afterwards.

Probes that do not fit the model are answered approximately (a mask probe on a causal
model ranks the model's own next-token candidates by full-sentence likelihood; a prompt
on a masked model uses an appended mask) or skipped with the reason (a pair probe on a
model without a next-sentence head).

``probes.jsonl`` line: ``{"step": int, "time": float, "probes": [{"probe": str,
"kind": "mask"|"next"|"pair"|"classify", "method": str, "approximate": bool,
"top": [{"token": str, "prob": float}], "skipped": str|null}]}``
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from workbench.inspector import predict
from workbench.inspector.loading import LoadedModel, heads_of
from workbench.inspector.text import count_masks, fill_masks, is_wordlike, prefix_before_mask, split_pair
from workbench.models import BaseRef
from workbench.runs.events import probe_line_problem
from workbench.runs.rundir import JsonLines, RunDir, read_jsonl

PROBES_FILE = "probes.jsonl"
TOP_K = 5


def side_for(model: Any, tokenizer: Any, label: str = "training") -> LoadedModel:
    """Wrap an in-memory model (the one being trained) as an inspector side."""
    name = type(model).__name__
    return LoadedModel(ref=BaseRef(given=label, kind="memory", model_dir=""), model=model, tokenizer=tokenizer,
                       architecture=name, heads=heads_of(name), parameters=0)


def _top(pairs: list[tuple[str, float]]) -> list[dict]:
    return [{"token": token, "prob": round(float(prob), 6)} for token, prob in pairs]


def answer_probe(side: LoadedModel, probe: str, k: int = TOP_K) -> dict[str, Any]:
    """One model's answer to one probe, in the ``probes.jsonl`` record shape."""
    record: dict[str, Any] = {"probe": probe, "kind": "", "method": "", "approximate": False, "top": [], "skipped": None}
    pair = split_pair(probe)
    if side.task_head == "classify":
        record.update(kind="classify", method="sequence-classification head",
                      top=_top(predict.classify(side, probe)[:k]))
    elif side.task_head:
        record.update(kind=side.task_head, skipped=f"probes are not recorded for {side.task_head} heads")
    elif pair is not None:
        record["kind"] = "pair"
        if "nsp" in side.heads:
            p = predict.next_sentence_prob(side, *pair)
            record.update(method="next-sentence head", top=_top(sorted([("is next", p), ("not next", 1 - p)], key=lambda x: -x[1])))
        else:
            record["skipped"] = f"no next-sentence head ({side.architecture})"
    elif side.family == "encoder":
        record.update(kind="mask" if count_masks(probe) else "next", skipped=f"no language-model head ({side.architecture})")
    elif count_masks(probe):
        record["kind"] = "mask"
        if side.family == "masked":
            dist = predict.masked_slots(side, probe)[0]
            record.update(method="masked LM", top=_top([(c.display, c.prob) for c in dist.top(k)]))
        else:
            record.update(method="full-sentence likelihood over the model's own next-token candidates", approximate=True,
                          top=_top(_causal_fill(side, probe, k)))
    else:
        dist = predict.next_token(side, probe)
        record.update(kind="next", method=dist.method, approximate=side.family == "masked",
                      top=_top([(c.display, c.prob) for c in dist.top(k)]))
    return record


def _causal_fill(side: LoadedModel, probe: str, k: int) -> list[tuple[str, float]]:
    prefix = prefix_before_mask(probe, 0, [])
    if not prefix and side.tokenizer.bos_token_id is None:
        return []
    keys = [c.key for c in predict.next_token(side, prefix).top(3 * k)]
    keys = list(dict.fromkeys(key for key in keys if is_wordlike(key)))
    rest = [keys[0]] * (count_masks(probe) - 1) if keys else []
    sentences = [fill_masks(probe, [key] + rest) for key in keys]
    ranking = predict.CandidateRanking(keys, predict.sentence_logprobs(side, sentences)) if keys else None
    return [(c.display, c.prob) for c in ranking.top(k)] if ranking else []


def _answer_or_skip(side: LoadedModel, probe: str, k: int) -> dict[str, Any]:
    """A probe is a diagnostic: one that cannot be answered is recorded as skipped, with
    the reason, rather than stopping the training run that asked for it."""
    try:
        return answer_probe(side, probe, k)
    except Exception as exc:  # noqa: BLE001 - odd tokenizers, unusual heads, empty prompts
        return {"probe": probe, "kind": "", "method": "", "approximate": False, "top": [],
                "skipped": f"could not answer: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"}


def _eager() -> Any:
    """Run a ``torch.compile``d model eagerly: each probe has its own input shape, and
    recompiling for every one of them would cost more than the eval itself."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def record_probes(model: Any, tokenizer: Any, probes: list[str], k: int = TOP_K) -> list[dict]:
    """All probes for one model, in eval mode under no_grad; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _eager():
            side = side_for(model, tokenizer)
            return [_answer_or_skip(side, probe, k) for probe in probes]
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------- reading back
def read_probe_lines(run_path: str | Path) -> JsonLines:
    """Usable lines of ``probes.jsonl`` (``probe_line_problem`` decides), one per step in
    step order (a re-evaluated step keeps its last line), and how many lines were skipped."""
    found = read_jsonl(Path(run_path) / PROBES_FILE, probe_line_problem)
    by_step = {line["step"]: line for line in found.records}
    found.records = [by_step[s] for s in sorted(by_step)]
    return found


def probe_timeline(run_path: str | Path) -> dict[str, list[dict]]:
    """Probe -> [{"step", "top1", "prob", "method", "skipped"}] in step order."""
    timeline: dict[str, list[dict]] = {}
    for line in read_probe_lines(run_path).records:
        for record in line["probes"]:
            top = record.get("top") or []
            timeline.setdefault(record["probe"], []).append({
                "step": line["step"],
                "top1": top[0]["token"] if top else None,
                "prob": top[0]["prob"] if top else None,
                "method": record.get("method", ""),
                "skipped": record.get("skipped"),
            })
    return timeline


def unreadable_notes(run_path: str | Path) -> list[str]:
    """What the inspector's readers of this run skipped (``metrics.jsonl``, ``probes.jsonl``),
    as ``probes.jsonl: 1 unreadable line skipped``; empty for a sound run."""
    return RunDir(Path(run_path)).read_events().problems() + read_probe_lines(run_path).problems()
