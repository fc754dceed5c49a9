"""The whole inspection as plain data: two models, the queries, forgetting, probes.

``inspect_models`` is what the CLI and the TUI call. ``InspectReport.to_json()`` is the
``workbench inspect --json`` document; its schema (version ``SCHEMA``)::

    {
      "schema": "workbench.inspect/1",
      "pairing": str,                      # which two models and why
      "models": null | {"a": MODEL, "b": MODEL},  # a = base / first, b = tuned / second;
                                           # null for a probes-only report
      "queries": [QUERY, ...],
      "forgetting": null | {"evals": int, "first_step": int, "last_step": int,
                            "curves": {name: {"first": float, "last": float, "change": float}}},
      "probes": null | {probe: [{"step": int, "top1": str|null, "prob": float|null,
                                 "method": str, "skipped": str|null}]},
      "timing_s": {"load": float, "queries": float}
    }
    MODEL = {"label", "given", "kind" (run|local|hub), "path", "architecture",
             "family" (masked|causal|encoder), "heads": [str], "parameters": int,
             "tokenizer": str, "vocab_size": int}
    QUERY = {"text": str, "mode": "mask"|"next"|"surprisal"|"pair"|"task",
             "tokenization": {"a": [str], "b": [str], "same": bool,
                              "differences": [{"word": str, "a": [str], "b": [str]}]},
             "slots": [SLOT],              # mask and next modes
             "continuation": null | {"seed", "sampled", "max_new_tokens",
                                     "a": {"text", "method", "note"}, "b": {...}},
             "surprisal": null | {"a": SURPRISAL, "b": SURPRISAL, "unit": "token"|"word",
                                  "changes": [{"unit": str, "a_bits", "b_bits", "change"}]},
             "pair": null | {"first", "second", "a": PAIR, "b": PAIR},
             "task": null | {"head": "classify"|"tag"|"qa", "a": TASK, "b": TASK},
             "notes": [str]}
    SLOT = {"label": str, "candidates": null | [str], "a": ANSWER, "b": ANSWER}
    ANSWER = {"method": str, "approximate": bool, "note": str,   # note: why it is empty
              "rows": [{"token", "key", "prob", "rank", "other_prob", "other_rank",
                        "rank_change", "prob_change"}]}     # other_*: same token on the other side
    SURPRISAL = {"method", "note", "mean_bits", "tokens": [{"token", "start", "end", "bits"}]}
    PAIR = {"prob_next": float|null, "gain": float|null, "method", "note"}
    TASK = {"note"} + {"labels": [{"label", "prob"}]} | {"words": [{"word", "tag", "prob"}]}
           | {"answer", "start", "end", "score"}

Probabilities are in [0, 1]; ``rank`` is 1-based; surprisal is in bits. A causal side's
masked-slot probabilities are normalised over the candidate list (``method`` says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from workbench.config import DEFAULT_PROBES
from workbench.errors import WorkbenchError
from workbench.inspector.forgetting import forgetting_summary
from workbench.inspector.loading import MODEL_CACHE, LoadedModel, ModelCache
from workbench.inspector.pairing import Pairing, choose_pair
from workbench.inspector.probes import probe_timeline
from workbench.inspector.queries import QueryOptions, QueryResult, run_query
from workbench.runs.rundir import find_run

SCHEMA = "workbench.inspect/1"


@dataclass
class InspectReport:
    pairing: Pairing
    a: LoadedModel | None  # None when only the probe timeline was asked for
    b: LoadedModel | None
    queries: list[QueryResult] = field(default_factory=list)
    forgetting: dict | None = None
    probes: dict | None = None
    timing: dict = field(default_factory=dict)
    more: list[Beside] = field(default_factory=list)
    """Models after the second, each compared with ``a`` on the same texts."""
    forgetting_by_model: dict[str, dict | None] = field(default_factory=dict)
    """With several models: each run's forgetting numbers, by its label."""

    def to_json(self) -> dict[str, Any]:
        models = None
        if self.a is not None and self.b is not None:
            models = {"a": self.a.describe(self.pairing.label_a, self.pairing.a),
                      "b": self.b.describe(self.pairing.label_b, self.pairing.b)}
            for index, beside in enumerate(self.more):
                models[chr(ord("c") + index)] = beside.model.describe(beside.label, beside.ref)
        out = {
            "schema": SCHEMA,
            "pairing": self.pairing.note,
            "models": models,
            "queries": [q.to_json() for q in self.queries],
            "forgetting": self.forgetting,
            "probes": self.probes,
            "timing_s": self.timing,
        }
        if self.more:
            out["more"] = [{"label": m.label, "queries": [q.to_json() for q in m.queries]} for m in self.more]
            out["forgetting_by_model"] = self.forgetting_by_model
        return out


@dataclass
class Beside:
    """A third (fourth...) model: its answers to the same texts, compared with model ``a``
    (its rows' ``other_*`` fields are ``a``'s)."""

    label: str
    ref: Any
    model: LoadedModel
    queries: list[QueryResult] = field(default_factory=list)


def load_pair(pairing: Pairing, cache: ModelCache = MODEL_CACHE, device: str = "cpu") -> tuple[LoadedModel, LoadedModel]:
    return cache.get(pairing.a, device), cache.get(pairing.b, device)


def load_compared(models: list[str], *, out: str = "checkpoints", cache: ModelCache = MODEL_CACHE,
                  device: str = "cpu") -> tuple[Pairing, LoadedModel, LoadedModel]:
    """The two models to compare (``choose_pair``), loaded through the cache: what the token
    diff, the layer view and the corpus view start from. A third model is refused."""
    pairing = choose_pair(models, out=out)
    if pairing.more:
        raise WorkbenchError("the token diff compares two models, and more were given", where=" ".join(models),
                             fix="name a run, or two models: workbench inspect BASE TUNED --passage FILE")
    a, b = load_pair(pairing, cache, device)
    return pairing, a, b


def default_texts(pairing: Pairing) -> list[str]:
    """No text given: the run's own probes, else the seed probes."""
    if pairing.run is not None:
        try:
            probes = pairing.run.read_run_toml().get("spec", {}).get("probes")
        except Exception:  # noqa: BLE001 - an unreadable run.toml already failed earlier
            probes = None
        if probes:
            return list(probes)
    return list(DEFAULT_PROBES)


def inspect_models(
    models: list[str],
    texts: list[str] | None = None,
    options: QueryOptions | None = None,
    *,
    out: str = "checkpoints",
    with_probes: bool = False,
    probes_only: bool = False,
    cache: ModelCache = MODEL_CACHE,
    device: str = "cpu",
) -> InspectReport:
    """Choose the pair, load it (cached), answer each text; add forgetting and probes for runs.

    ``probes_only`` reads the run's probe timeline and forgetting numbers without loading
    any model (``workbench inspect RUN --probes``).
    """
    if probes_only:
        return probes_report(models, out)
    pairing = choose_pair(models, out=out)
    started = time.perf_counter()
    a, b = load_pair(pairing, cache, device)
    report = InspectReport(pairing, a, b)
    report.more = [Beside(label, ref, cache.get(ref, device)) for label, ref in pairing.more]
    loaded = time.perf_counter()
    for text in texts or default_texts(pairing):
        report.queries.append(run_query(a, b, text, options))
        for beside in report.more:
            beside.queries.append(run_query(a, beside.model, text, options))
    report.forgetting_by_model = {label: forgetting_summary(run) for label, run in pairing.runs.items()}
    report.timing = {"load": round(loaded - started, 4), "queries": round(time.perf_counter() - loaded, 4)}
    if pairing.run is not None:
        report.forgetting = forgetting_summary(pairing.run)
        if with_probes:
            report.probes = probe_timeline(pairing.run.path)
    return report


def probes_report(models: list[str], out: str = "checkpoints") -> InspectReport:
    """The probe timeline and forgetting numbers of one run; no model is loaded, and the run
    need not have finished (its probes.jsonl grows at every eval)."""
    if len(models) != 1:
        raise WorkbenchError("--probes takes one run", where=" ".join(models), fix="workbench inspect RUN --probes")
    try:
        run = find_run(models[0], out=out)
    except WorkbenchError:
        raise WorkbenchError("--probes needs a run directory (probes are recorded during training)", where=models[0],
                             fix="pass a run listed by `workbench runs`") from None

    pairing = Pairing(None, None, "", "", f"run {run.path.name}: probe predictions at each eval", run)
    return InspectReport(pairing, None, None, forgetting=forgetting_summary(run), probes=probe_timeline(run.path))
