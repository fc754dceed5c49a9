"""`workbench run`: train headless with a Rich display or JSON events.

The spec's flags are made from ``RunSpec``'s fields and their metadata (help, short flag,
switch, parser), so a new spec field is a new flag without being declared a second time.
Only the options that are not part of the spec (where it comes from, how it is launched)
are written out here.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from workbench.commands.common import BadFlagValue, err_console, fail, is_rank_zero, keyword_option
from workbench.config import RESUME_OVERRIDES, RunSpec, check_out_dir, field_help, flag_name, spec_field_types, without_none
from workbench.console import JsonPrinter, PlainPrinter, RichPrinter
from workbench.errors import SpecError, WorkbenchError
from workbench.runs import RunControl
from workbench.runs.signals import install_stop_signals

LAUNCH_PANEL = "Source and launch"


def text_parser(parse: typing.Callable[[str], Any]) -> typing.Callable[[str], Any]:
    """A spec field's own parser (``--time-budget 5m``) as a click one: bad text is a usage error."""

    def parse_flag(text: str) -> Any:
        if not isinstance(text, str):
            return text
        try:
            return parse(text)
        except WorkbenchError as error:
            raise BadFlagValue(error.problem, fix=error.fix) from None

    return parse_flag


def option_help(spec_field: dataclasses.Field) -> str:
    """The field's help and its default as ``--help`` shows them (escaped: rich would eat ``[tags]``).

    The default is written into the text because the flag's own default stays None, so that a
    ``--config`` file's value is not overridden by a flag that was not given.
    """
    text = field_help(spec_field)
    if spec_field.default is not dataclasses.MISSING and spec_field.default is not None:
        text = f"{text} [default: {spec_field.default}]"
    return escape(text)


def spec_option(spec_field: dataclasses.Field, field_type: Any) -> inspect.Parameter:
    """The typer option for one spec field, from its metadata."""
    facts = spec_field.metadata
    long_flag = flag_name(spec_field)
    value_type, _ = without_none(field_type)  # every spec flag is optional anyway (unset: the file's or the default)
    extra: dict[str, Any] = {}
    if "switch" in facts:
        long_flag = f"{long_flag}/--no-{long_flag[2:]}"
        value_type = bool
    elif "parse" in facts:
        extra.update(parser=text_parser(facts["parse"]), metavar=facts.get("metavar"))
        if typing.get_origin(value_type) in (typing.Union, types.UnionType):
            value_type = str  # a count or a word (eval_batches): the parser makes the value

    flags = [long_flag, *([facts["short"]] if "short" in facts else [])]
    option = typer.Option(None, *flags, help=option_help(spec_field), show_default=False, **extra)
    return keyword_option(spec_field.name, Optional[value_type], option)


def spec_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The spec fields given on the command line, as spec values (a switch -> its "on"/"off")."""
    given = {}
    for spec_field in dataclasses.fields(RunSpec):
        value = options.get(spec_field.name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if "switch" in spec_field.metadata:
            on, off = spec_field.metadata["switch"]
            value = on if value else off
        given[spec_field.name] = list(value) if isinstance(value, (list, tuple)) else value
    return given


def build_spec(config: Optional[Path], overrides: dict[str, Any]) -> RunSpec:
    """The ``--config`` file (or the defaults) with the flags given on top, every value
    checked (a bad one is named as its flag or as the file's key) and ``--out`` usable."""
    spec = RunSpec.from_toml(config) if config else RunSpec()
    given = {k: v for k, v in overrides.items() if v is not None}
    spec = spec.replace(**given)
    spec.validate(str(config) if config else None, flags=given)
    check_out_dir(spec.out, where="--out" if "out" in given or not config else str(config))
    return spec


RESUME_OPTIONS = ("out", *RESUME_OVERRIDES)
"""Spec flags ``--resume`` takes: where runs live, and the settings a resume may change."""


def resume_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The settings ``--resume`` changes (checked); any other spec flag, or ``--config``, is
    refused by name rather than silently dropped."""
    if options["config"] is not None:
        raise SpecError("--config cannot be used with --resume: the run's run.toml is its spec",
                        fix="drop --config, or start a new run with it")
    given = spec_overrides(options)
    by_name = {f.name: f for f in dataclasses.fields(RunSpec)}
    for name in given:
        if name not in RESUME_OPTIONS:
            flag = flag_name(by_name[name])
            raise SpecError(f"{flag} cannot be changed when resuming: the run keeps the settings in its run.toml",
                            fix=f"drop {flag} (--resume takes {', '.join(flag_name(by_name[n]) for n in RESUME_OPTIONS)}, "
                                "--gpus and --json), or start a new run")
    changes = {name: value for name, value in given.items() if name != "out"}
    checked = RunSpec(**changes)
    checked.validate(flags=changes)
    return {name: getattr(checked, name) for name in changes}


def child_flags(overrides: dict[str, Any], json_events: bool) -> list[str]:
    """What each rank's own ``workbench run`` gets besides the spec or ``--resume``: the
    resume's overrides as flags (each rank checks and applies them as one process does)."""
    by_name = {f.name: f for f in dataclasses.fields(RunSpec)}
    flags = [part for name, value in overrides.items() for part in (flag_name(by_name[name]), str(value))]
    return flags + (["--json"] if json_events else [])


def check_launch(options: dict[str, Any]) -> None:
    """Process counts that torchrun would reject later (or that would be silently ignored)."""
    gpus, nnodes, node_rank = options["gpus"], options["nnodes"], options["node_rank"]
    if gpus is not None and gpus < 1:
        raise SpecError(f"--gpus must be at least 1, not {gpus}", fix="pass --gpus 1 or more, or leave it out to train in this process")
    if nnodes < 1:
        raise SpecError(f"--nnodes must be at least 1, not {nnodes}", fix="pass --nnodes 1 or more (the machines in the run)")
    if not 0 <= node_rank < nnodes:
        raise SpecError(f"--node-rank must be from 0 to {nnodes - 1} (--nnodes {nnodes}), not {node_rank}",
                        fix="number the machines 0, 1, ... with 0 on the machine that holds the run directory")


LAUNCH_PARAMETERS = [
    keyword_option("config", Optional[Path], typer.Option(
        None, "--config", help="Spec TOML file; flags override it.", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("gpus", Optional[int], typer.Option(
        None, "--gpus", help="Processes (GPUs) per node: launches the run through torchrun with DDP.", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("nnodes", int, typer.Option(
        1, "--nnodes", help="Machines in a multi-node run (with --gpus and --rdzv-endpoint).", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("node_rank", int, typer.Option(
        0, "--node-rank", help="This machine's index in a multi-node run (0 hosts the run directory).", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("rdzv_endpoint", Optional[str], typer.Option(
        None, "--rdzv-endpoint", help="HOST:PORT of node 0, where the nodes of a multi-node run meet.", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("resume", Optional[str], typer.Option(
        None, "--resume", help="Continue this run (name or path) from its last checkpoint.", rich_help_panel=LAUNCH_PANEL)),
    keyword_option("json_events", bool, typer.Option(
        False, "--json", help="Print events as JSON lines instead of the Rich display.", rich_help_panel=LAUNCH_PANEL)),
]
"""The options of `workbench run` that are not spec fields: where the spec comes from, how the run is launched."""


def run_signature() -> inspect.Signature:
    """One option per spec field, then the launch options."""
    types_by_name = spec_field_types()
    spec_params = [spec_option(f, types_by_name[f.name]) for f in dataclasses.fields(RunSpec)]
    return inspect.Signature(spec_params + LAUNCH_PARAMETERS)


def run_command(**options: Any) -> None:
    """Train a model headless: pre-training (mlm, nsp, clm) or fine-tuning from --base.

    With no flags: a short default experiment (clm, tiny, on the built-in general corpus).
    Every spec flag can also be set in a --config TOML file (flags override it).
    """
    resume, out, json_events = options["resume"], options["out"], options["json_events"]
    gpus, nnodes = options["gpus"], options["nnodes"]
    try:
        # the spec first: bad input fails before torch and transformers load
        check_launch(options)
        overrides = resume_overrides(options) if resume else {}
        spec = None if resume else build_spec(options["config"], spec_overrides(options))
        from workbench.engine import TrainingRun  # loads torch: only when used

        control = RunControl()
        # a live bar on a terminal; one line per log interval in a log file or a pipe (nohup, CI)
        listener = JsonPrinter() if json_events else RichPrinter() if sys.stdout.isatty() else PlainPrinter()
        if spec is None:
            run = TrainingRun(RunSpec(out=out or "checkpoints"), listeners=[listener], control=control, resume=resume,
                              overrides=overrides)
        else:
            run = TrainingRun(spec, listeners=[listener], control=control)
        if gpus is not None and (gpus > 1 or nnodes > 1):
            from workbench.engine.distributed import launch  # loads torch: only when used

            code = launch(spec, resume=resume, out=out, gpus=gpus, nnodes=nnodes, node_rank=options["node_rank"],
                          rdzv_endpoint=options["rdzv_endpoint"], child_flags=child_flags(overrides, json_events))
            raise SystemExit(code)
        # A rank under torchrun stops where all ranks agree, maybe steps after a periodic
        # checkpoint, and torchrun bounds its stop (TORCH_ELASTIC_SHUTDOWN_TIMEOUT): no
        # hang-up deadline of its own there. The handlers learn the run's directory and its
        # checkpoints as a listener: a deadline starts only once the stop's checkpoint exists.
        alone = os.environ.get("WORLD_SIZE", "1") in ("", "1")
        signals = install_stop_signals(control, wait_for_checkpoint=True, hangup_deadline_s=10.0 if alone else None)
        run.listeners.append(signals)
        try:
            result = ranked_run(run)
        finally:
            if signals.exit_code is None:
                signals.restore()
            else:  # exiting on a signal: the run has saved, so a second one changes nothing now
                signals.ignore_further()
    except WorkbenchError as error:
        fail(error)
    if signals.exit_code is not None:
        if is_rank_zero():  # one line for the whole run, not one per GPU
            err_console.print(f"Stopped by {signals.name} at step {result.step}; checkpoint saved in {result.run_dir}. "
                              f"Continue with: workbench run --resume {result.run_dir}")
        raise SystemExit(signals.exit_code)


def ranked_run(run: Any) -> Any:
    """``run.run()``; under torchrun, the rank then leaves its process group (``leave_process_group``)."""
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return run.run()
    from workbench.engine.distributed import leave_process_group  # loads torch: only when used

    try:
        result = run.run()
    except BaseException as failure:
        leave_process_group(failure)
        raise
    leave_process_group(None)
    return result


run_command.__signature__ = run_signature()  # type: ignore[attr-defined]
