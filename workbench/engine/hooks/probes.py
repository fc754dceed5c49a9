"""The probe hook: after each eval, the probes' top-k from the model being trained.

Made by ``default_eval_hooks`` for runs with probes (``eval.probes``). The predictions come
from the inspector (``inspector/probes.py``, which also reads the timeline back); this hook
appends one line per eval to ``probes.jsonl`` (main process only) and emits a
``ProbesRecorded`` event.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from workbench.engine.evaluation import EvalContext
from workbench.inspector.probes import PROBES_FILE, record_probes
from workbench.runs.events import ProbesRecorded
from workbench.runs.lock import open_append


class ProbeRecorder:
    """Eval hook: the probes' top-k from the model being trained, appended to ``probes.jsonl``."""

    def __init__(self, probes: list[str]):
        self.probes = probes

    def __call__(self, ctx: EvalContext) -> None:
        records = record_probes(ctx.model, ctx.tokenizer, self.probes)
        path = Path(ctx.run_dir) / PROBES_FILE
        with open_append(path) as handle:  # never through a symlink planted in the run
            handle.write(json.dumps({"step": ctx.step, "time": time.time(), "probes": records}) + "\n")
            handle.flush()
        ctx.emit(ProbesRecorded(step=ctx.step, probes=records))

    def summary(self) -> dict[str, Any]:
        return {}
