"""The training engine: no UI imports here, ever (a test checks ``sys.modules``)."""

from workbench.engine.control import RunControl
from workbench.engine.events import (
    CheckpointSaved,
    EvalDone,
    Event,
    Message,
    ProbesRecorded,
    RunFailed,
    RunFinished,
    RunStarted,
    StepLogged,
    event_from_json,
)
from workbench.engine.rundir import RunDir, find_run, list_runs
from workbench.engine.runner import RunResult, TrainingRun, resume_run, run_spec

__all__ = [
    "CheckpointSaved", "EvalDone", "Event", "Message", "ProbesRecorded", "RunControl", "RunDir",
    "RunFailed", "RunFinished", "RunResult", "RunStarted", "StepLogged", "TrainingRun",
    "event_from_json", "find_run", "list_runs", "resume_run", "run_spec",
]
