"""The Optuna study behind a sweep: storage, samplers, pruners, and the trial queue.

Every trial of a sweep is put in Optuna's queue when the study is made (``enqueue_trial``:
a grid point's values, or nothing but the seed for a search, whose values the sampler draws
when the trial starts). A process takes the next trial by moving it from WAITING to RUNNING
in the storage, which succeeds for exactly one process (Optuna's own mechanism for
``ask``), so any number of processes on one study share the trials without duplicates and
without ever creating a trial beyond the sweep's. Optuna is imported inside the functions:
``workbench --help`` must not load it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import SpecError
from workbench.sweep.spec import SweepSpec

SPEC_ATTR = "workbench_sweep"
"""Study user attribute: the sweep spec's identity (JSON), set once every trial is queued."""
READY_WAIT_S = 120.0
SQLITE_TIMEOUT_S = 120


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()


def storage_url(folder: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(folder / 'study.db').resolve()}"


def open_storage(url: str) -> Any:
    """An RDB storage; SQLite waits for a lock held by another process instead of failing."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    error: Exception | None = None
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a driver missing, a server down: one line
            error = exc
            if "IntegrityError" not in f"{type(exc).__name__} {exc}":
                break
            time.sleep(0.5 + attempt)  # two processes made the schema at once: the other one won
    raise SpecError(f"cannot open the study storage {url!r}: {type(error).__name__}: {str(error).splitlines()[0][:200]}",
                    fix="check the URL (e.g. postgresql://user:pass@host/db) and that its driver is installed")


def make_sampler(spec: SweepSpec, number: int = 0) -> Any:
    """The sweep's sampler, seeded by the sweep's seed and the trial number: the same trial
    draws the same values whichever process runs it, and two processes never draw alike."""
    import optuna

    seed = (spec.base_seed * 1_000_003 + number) % 2**32
    if spec.sampler_name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler_name == "tpe":
        startup = max(1, min(10, (spec.trials or 10) // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)  # a grid's values are all queued: nothing is sampled


def make_pruner(spec: SweepSpec) -> Any:
    import optuna

    if not spec.prune:
        return optuna.pruners.NopPruner()
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def open_study(spec: SweepSpec, name: str, url: str, *, create: bool) -> Any:
    """The sweep's study. ``create``: make it and queue every trial, unless another process
    made it first (``--storage`` on several machines), in which case join it once it is
    ready, after checking that it is the same sweep."""
    import optuna

    quiet_optuna()
    storage = open_storage(url)
    direction = spec.direction
    if create:
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                        sampler=make_sampler(spec), pruner=make_pruner(spec))
        except optuna.exceptions.DuplicatedStudyError:
            create = False
        else:
            for point in spec.points():
                study.enqueue_trial(point, skip_if_exists=False)
            study.set_user_attr(SPEC_ATTR, json.dumps(spec.identity(), sort_keys=True))
            return study
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))
    except KeyError:
        raise SpecError(f"no study named {name!r} in {url}", fix="check --storage and the sweep name") from None
    wait_until_ready(study, spec, name)
    return study


def wait_until_ready(study: Any, spec: SweepSpec, name: str) -> None:
    """Another process is making this study: wait until it has queued the trials."""
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        stored = study.user_attrs.get(SPEC_ATTR)
        if stored is not None:
            break
        if time.monotonic() > deadline:
            raise SpecError(f"study {name!r} exists but its trials were never queued",
                            fix="start the sweep again under another --name")
        time.sleep(0.5)
    if json.loads(stored) != json.loads(json.dumps(spec.identity(), sort_keys=True)):
        raise SpecError(f"study {name!r} holds a different sweep",
                        fix="run the same sweep command (same grid, search and fixed flags), or pick another --name")


def take_next(study: Any, lock_path: Path | None, spec: SweepSpec) -> Any | None:
    """Move the oldest WAITING trial to RUNNING (only one process can) and return it as a
    ``Trial``; None when the queue is empty.

    On SQLite the check and the update are not one transaction (pysqlite starts it at the
    update), so two processes could both see a trial WAITING and both take it: there a file
    lock beside the database (``lock_path``) makes taking a trial one at a time. Server
    databases lock the row (``SELECT ... FOR UPDATE``), as Optuna's ``ask`` relies on."""
    with _file_lock(lock_path):
        return _take_next(study, spec)


def _take_next(study: Any, spec: SweepSpec) -> Any | None:
    import optuna
    from optuna.trial import TrialState

    storage, study_id = study._storage, study._study_id
    for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                continue
        except (optuna.exceptions.UpdateFinishedTrialError, optuna.exceptions.StorageInternalError):
            continue
        claim(storage, frozen._trial_id)
        if spec.search and spec.seeds > 1 and frozen.number % spec.seeds:
            repeat_point(study, frozen, spec)
        study.sampler = make_sampler(spec, frozen.number)
        return optuna.Trial(study, frozen._trial_id)
    return None


def repeat_point(study: Any, frozen: Any, spec: SweepSpec, wait_s: float = 60.0) -> None:
    """A search with ``--seeds S`` runs each drawn point S times: trial ``n`` repeats the
    point of trial ``n - n % S`` (queued just before it, so drawn first) with its own seed.
    Its values become this trial's fixed params; should the first one never draw (it failed
    at once), this one draws its own."""
    storage = study._storage
    first = frozen.number - frozen.number % spec.seeds
    first_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, first)
    deadline = time.monotonic() + wait_s
    while True:
        leader = storage.get_trial(first_id)
        drawn = {k: v for k, v in leader.params.items() if k in spec.search}
        if len(drawn) == len(spec.search) or leader.state.is_finished() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if drawn:
        fixed = {**frozen.system_attrs.get("fixed_params", {}), **drawn}
        storage.set_trial_system_attr(frozen._trial_id, "fixed_params", fixed)


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def queue_lock(url: str) -> Path | None:
    """The lock file that serialises taking trials from a SQLite study (None for servers)."""
    if not url.startswith("sqlite:///"):
        return None
    database = Path(url[len("sqlite:///"):])
    return database.with_name(database.name + ".lock")


def claim(storage: Any, trial_id: int) -> None:
    """Record which process runs the trial (so a resume can tell a dead one from a live one)."""
    storage.set_trial_user_attr(trial_id, "owner", {"host": socket.gethostname(), "pid": os.getpid()})
    storage.set_trial_user_attr(trial_id, "state", "running")


def reopen(study: Any, number: int, spec: SweepSpec) -> Any | None:
    """A RUNNING trial that nobody runs (stopped or interrupted earlier) as a ``Trial`` to
    report to and finish; None when another process has taken or finished it meanwhile (a
    second taker is then refused by the run directory's lock)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    frozen = storage._backend.get_trial(trial_id) if hasattr(storage, "_backend") else storage.get_trial(trial_id)
    if frozen.state != TrialState.RUNNING or not owner_gone(frozen):
        return None
    try:
        claim(storage, trial_id)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    study.sampler = make_sampler(spec, number)
    return optuna.Trial(study, trial_id)


def owner_gone(frozen: Any) -> bool:
    """A RUNNING trial whose process on this machine is gone (killed, or stopped by Ctrl-C)."""
    from workbench.runs.processes import pid_alive

    owner = frozen.user_attrs.get("owner") or {}
    if frozen.user_attrs.get("state") == "stopped":
        return True
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid)


def resumable(study: Any) -> list[Any]:
    """RUNNING trials nobody runs any more: stopped by Ctrl-C, or their process died here."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if owner_gone(t)]


def waiting_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
