"""The Optuna study behind a sweep: storage, samplers, pruners, and the trial queue.

Every trial of a sweep is put in Optuna's queue when the study is made (``enqueue_trial``:
a grid point's values, or nothing but the seed for a search, whose values the sampler draws
when the trial starts). A process takes the next trial by moving it from WAITING to RUNNING
through ``study.ask()``, which takes a queued trial in preference to a new one; on SQLite a
file lock makes taking one at a time, and a trial that was not queued (two processes on a
server database raced for the last one) is told FAIL at once and never run, so any number of processes on one study share the trials without duplicates and
without ever creating a trial beyond the sweep's. Optuna is imported inside the functions:
``workbench --help`` must not load it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from workbench.errors import SpecError
from workbench.runs.processes import pid_alive
from workbench.runs.sweepdir import STUDY_FILE
from workbench.sweep.spec import NO_PRUNING_ACROSS, SweepSpec, redact

SPEC_ATTR = "workbench_sweep"
"""Study user attribute: the sweep spec's identity (JSON), set once every trial is queued."""
READY_WAIT_S = 120.0
SQLITE_TIMEOUT_S = 120


def quiet_optuna() -> None:
    import optuna  # optuna: loaded on first use

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()


def storage_url(folder: Path, storage: str | None) -> str:
    """The study's storage: ``--storage``, else ``study.db`` in the sweep folder (found from
    the folder each time, never stored: the folder may have been copied or moved)."""
    return storage or f"sqlite:///{(folder / STUDY_FILE).resolve()}"


def open_storage(url: str) -> Any:
    """An RDB storage; SQLite waits for a lock held by another process instead of failing.
    A failure is one line that names its cause (``storage_problem``) and never the password."""
    import optuna  # optuna: loaded on first use

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
    assert error is not None
    problem, fix = storage_problem(error, url)
    raise SpecError(f"cannot open the study storage {redact(url)}: {problem}", fix=fix)


STORAGE_CAUSES = (
    (("database is locked",), "the database is locked by another process",
     "wait for the other sweep process to finish (or end it), then run again"),
    (("file is not a database", "file is encrypted", "database disk image is malformed"), "the file is not a study database "
     "(corrupt, or another kind of file)", "restore study.db from a copy, or start a new sweep under another --name"),
    (("unable to open database file",), "the database file cannot be opened",
     "check that its folder exists and can be written"),
    (("connection refused", "could not connect", "can't connect"), "the database server refused the connection",
     "start the server, or check the host and port in --storage"),
    (("could not translate host name", "name or service not known", "unknown host", "nodename nor servname"),
     "the database host is unknown", "check the host name in --storage"),
    (("password authentication failed", "no password supplied", "access denied"), "the server refused the login",
     "set the password in PGPASSWORD or ~/.pgpass (never in --storage), and check the user name"),
)


def missing_module(error: BaseException, url: str) -> str | None:
    """The driver module a storage error says is missing (Optuna wraps the driver's own
    ``ModuleNotFoundError`` in an ``ImportError`` of its own), else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            return seen.name.split(".")[0]
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, ImportError):
        dialect = url.split(":", 1)[0]
        return dialect.split("+", 1)[1] if "+" in dialect else {"postgresql": "psycopg", "mysql": "MySQLdb"}.get(dialect)
    return None


def storage_problem(error: Exception, url: str) -> tuple[str, str]:
    """What went wrong opening a storage, and its fix, from the driver's error."""
    text = f"{type(error).__name__}: {error}"
    module = missing_module(error, url)
    if module is not None:
        package = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "MySQLdb": "mysqlclient"}.get(module, module)
        return f"its database driver {module} is not installed", f"install it into this environment (pip install {package})"
    lowered = text.lower()
    for needles, problem, fix in STORAGE_CAUSES:
        if any(needle in lowered for needle in needles):
            return problem, fix
    if "could not parse rfc1738 url" in lowered or "can't load plugin" in lowered:
        return "the URL is not a database URL", "write e.g. postgresql://user@host/db or sqlite:///path/study.db"
    detail = " ".join(text.split())[:200]

    password = urlsplit(url).password
    if password:
        detail = detail.replace(password, "***")
    return detail, "check the URL (e.g. postgresql://user@host/db) and that the server is up"


def make_sampler(spec: SweepSpec, number: int = 0) -> Any:
    """The sweep's sampler, seeded by the sweep's seed and the trial number: the same trial
    draws the same values whichever process runs it, and two processes never draw alike."""
    import optuna  # optuna: loaded on first use

    seed = (spec.base_seed * 1_000_003 + number) % 2**32
    if spec.sampler_name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler_name == "tpe":
        startup = max(1, min(10, (spec.trials or 10) // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)  # a grid's values are all queued: nothing is sampled


PRUNE_STARTUP_TRIALS = 3
"""Trials that must finish before the median pruner stops any (Optuna's ``n_startup_trials``)."""
PRUNE_WARMUP = 1 / 3
"""The part of a trial's steps before which no pruner stops it (``n_warmup_steps`` /
``min_resource``): early in training a smaller learning rate is always behind."""


def warmup_steps(total_steps: int | None) -> int:
    return max(1, math.ceil(total_steps * PRUNE_WARMUP)) if total_steps else 1


def make_pruner(spec: SweepSpec, total_steps: int | None = None) -> Any:
    """The sweep's pruner for trials of ``total_steps`` steps (None: before any is known)."""
    import optuna  # optuna: loaded on first use

    if not spec.pruning:
        return optuna.pruners.NopPruner()
    warmup = warmup_steps(total_steps or spec.fixed_steps)
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup, bootstrap_count=PRUNE_STARTUP_TRIALS)
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=warmup)


def pruning_line(spec: SweepSpec) -> str:
    """What the sweep prints first about pruning: which pruner, and from when."""
    if not spec.pruning:
        why = "--no-prune" if spec.prune is False else "a grid or --seeds sweep runs every trial to its end; --prune to stop"
        if spec.prune is None and spec.search:
            why = "the trials differ in " + next(n for n in NO_PRUNING_ACROSS if n in spec.search)
        return f"pruning: off ({why})"
    steps = spec.fixed_steps
    start = f"step {warmup_steps(steps)} of {steps}" if steps else "a third of each trial's steps"
    if spec.pruner == "halving":
        return (f"pruning: successive halving, rungs from {start}, once {PRUNE_STARTUP_TRIALS} trials reach a rung; "
                "diverged trials stop")
    return f"pruning: median, after {PRUNE_STARTUP_TRIALS} finished trials, from {start}; diverged trials stop"


def open_study(spec: SweepSpec, name: str, url: str, *, create: bool) -> Any:
    """The sweep's study. ``create``: make it and queue every trial, unless another process
    made it first (``--storage`` on several machines), in which case join it once it is
    ready, after checking that it is the same sweep."""
    import optuna  # optuna: loaded on first use

    quiet_optuna()
    storage = open_storage(url)
    if create:
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=spec.direction,
                                        sampler=make_sampler(spec), pruner=make_pruner(spec))
        except optuna.exceptions.DuplicatedStudyError:
            create = False
        else:
            for point in spec.points():
                study.enqueue_trial(point, user_attrs={QUEUED: True}, skip_if_exists=False)
            study.set_user_attr(SPEC_ATTR, json.dumps(spec.identity(), sort_keys=True))
            _STORAGES[id(study)] = (study, storage)
            return study
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))
    except KeyError:
        raise SpecError(f"no study named {name!r} in {redact(url)}", fix="check --storage") from None
    wait_until_ready(study, spec, name)
    _STORAGES[id(study)] = (study, storage)
    return study


def study_name_in(url: str) -> str | None:
    """The one study a storage holds (a sweep's own study.db), else None."""
    import optuna  # optuna: loaded on first use

    names = optuna.study.get_all_study_names(open_storage(url))
    return names[0] if len(names) == 1 else None


EXTRA = "not_of_the_sweep"
"""Trial user attribute of a trial ``ask`` made because the queue was empty by then."""
QUEUED = "queued"
"""Trial user attribute set when the sweep queues it: a trial without it was never the sweep's."""


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
    from optuna.trial import TrialState  # optuna: loaded on first use

    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        if not trial.user_attrs.get(QUEUED):  # the last queued one went to another process first
            trial.set_user_attr(EXTRA, True)  # told FAIL at once; never listed (results.trial_row)
            study.tell(trial, state=TrialState.FAIL)
            continue
        claim(trial)
        study.sampler = trial_sampler(study, trial.number, spec)
        return trial
    return None


def trial_sampler(study: Any, number: int, spec: SweepSpec) -> Any:
    """The sampler for trial ``number``: the sweep's, seeded by the number; for a repeat of a
    searched point (``--seeds``), fixed to that point's values (``PartialFixedSampler``)."""
    import optuna  # optuna: loaded on first use

    sampler = make_sampler(spec, number)
    if not (spec.search and spec.seeds > 1 and number % spec.seeds):
        return sampler
    drawn = repeated_point(study, number - number % spec.seeds, spec)
    if not drawn:
        return sampler
    with warnings.catch_warnings():  # experimental in name only: public and documented since Optuna 2.4
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.PartialFixedSampler(drawn, sampler)


def frozen_trial(study: Any, number: int) -> Any:
    """The stored state of trial ``number`` (a ``FrozenTrial``)."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def repeated_point(study: Any, first: int, spec: SweepSpec, wait_s: float = 60.0) -> dict[str, Any]:
    """A search with ``--seeds S`` runs each drawn point S times: trial ``n`` repeats the
    point of trial ``first = n - n % S`` (queued just before it, so drawn first) with its own
    seed. The point's searched values; empty should it never draw (it failed at once)."""
    deadline = time.monotonic() + wait_s
    while True:
        leader = frozen_trial(study, first)
        drawn = {k: v for k, v in leader.params.items() if k in spec.search}
        if len(drawn) == len(spec.search) or leader.state.is_finished() or time.monotonic() > deadline:
            return drawn
        time.sleep(0.2)


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return

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


def claim(trial: Any) -> None:
    """Record which process runs the trial (so a resume can tell a dead one from a live one)."""
    trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid()})
    trial.set_user_attr("state", "running")


def reopen(study: Any, number: int, spec: SweepSpec) -> Any | None:
    """A RUNNING trial that nobody runs (stopped or interrupted earlier) as a ``Trial`` to
    report to and finish; None when another process has taken or finished it meanwhile (a
    second taker is then refused by the run directory's lock)."""
    import optuna  # optuna: loaded on first use
    from optuna.trial import TrialState  # optuna: loaded on first use

    frozen = frozen_trial(study, number)
    if frozen.state != TrialState.RUNNING or not owner_gone(frozen):
        return None
    storage = study_storage(study)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    trial = optuna.Trial(study, trial_id)
    try:
        claim(trial)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    study.sampler = trial_sampler(study, number, spec)
    return trial


_STORAGES: dict[int, tuple[Any, Any]] = {}
"""Each open study (held, so its id stays its own) and the storage it was loaded from, for
the documented storage methods that continue a stopped trial."""


def study_storage(study: Any) -> Any:
    return _STORAGES[id(study)][1]


def owner_gone(frozen: Any) -> bool:
    """A RUNNING trial whose process on this machine is gone (killed, or stopped by Ctrl-C)."""
    owner = frozen.user_attrs.get("owner") or {}
    if frozen.user_attrs.get("state") == "stopped":
        return True
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid)


def resumable(study: Any) -> list[Any]:
    """RUNNING trials nobody runs any more: stopped by Ctrl-C, or their process died here."""
    from optuna.trial import TrialState  # optuna: loaded on first use

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if owner_gone(t)]


def waiting_count(study: Any) -> int:
    from optuna.trial import TrialState  # optuna: loaded on first use

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
