"""Runs at scale: `workbench runs` and the TUI's Runs and Compare panes over 1,000 run folders.

Writes a run root in a temp folder (no training: the files are written directly, as the engine
writes them): ``--runs`` run folders, half of them trials of sweeps of 100, every 20th with a
10,000-step ``metrics.jsonl`` (the rest 200 steps), all finished an hour ago but ``--running``
runs of this process, whose files are fresh. Then measures, cache off (every file read, as
before the listing cache) and on, back to back in this process:

* listing: ``list_runs`` in this process, and ``workbench runs --json`` as a process of its
  own, cold (no cache file) and warm (median of ``--repeat``);
* the panes: the app headless (``run_test``) on the Runs pane, then the Compare pane, while a
  thread appends a step to one running run's metrics every 0.1 s (so every poll finds a
  change): the UI thread's time in each poll handler and in the handler of the listing it
  brings back, and the latency of ``--presses`` navigation keys (down/up) pressed meanwhile,
  from handing the key to the driver until the first screen update after the cursor moved.

    python benchmarks/runs_scale.py [--runs 1000] [--running 5] [--repeat 5] [--presses 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_latency import out, percentile, timed_presses  # noqa: E402

from workbench.runs import listing, rowcache  # noqa: E402

HOUR_AGO = time.time() - 3600


def step_event(step: int, total: int) -> str:
    return json.dumps({"event": "step", "time": HOUR_AGO + step, "step": step, "total_steps": total, "loss": 3.0 + 1 / step,
                       "lr": 1e-3, "tokens": step * 4096, "tokens_per_s": 50000.0, "elapsed_s": step * 0.1,
                       "eta_s": (total - step) * 0.1}) + "\n"


def write_run(folder: Path, steps: int, running: bool) -> None:
    """run.toml, status.json and metrics.jsonl (a step line each step, an eval each 100 steps)."""
    folder.mkdir(parents=True)
    folder.joinpath("run.toml").write_text(
        f'[spec]\nobjective = "clm"\ncorpus = "general"\nmax_steps = {steps}\nlr = 0.001\nd_model = 64\n\n'
        f'[meta]\ncreated = {HOUR_AGO}\ngit_commit = "abc"\n')
    status = {"status": "running" if running else "finished", "pid": os.getpid() if running else 1, "updated": HOUR_AGO}
    folder.joinpath("status.json").write_text(json.dumps(status))
    lines = [json.dumps({"event": "started", "time": HOUR_AGO, "run_dir": ".", "name": folder.name, "objective": "clm",
                         "corpus": "general", "total_steps": steps, "parameters": 100000, "device": "cpu",
                         "precision": "fp32"}) + "\n"]
    for step in range(1, steps + 1):
        lines.append(step_event(step, steps))
        if step % 100 == 0:
            lines.append(json.dumps({"event": "eval", "time": HOUR_AGO + step, "step": step, "eval_loss": 3.0 + 10 / step,
                                     "perplexity": 20.0}) + "\n")
    folder.joinpath("metrics.jsonl").write_text("".join(lines))
    if not running:
        for file in folder.iterdir():
            os.utime(file, (HOUR_AGO, HOUR_AGO))


def make_root(root: Path, runs: int, running: int) -> list[Path]:
    """The run root; returns the running runs' folders (runs of their own, not trials)."""
    live = []
    for i in range(runs):
        in_sweep = i >= runs // 2
        sweep = root / f"sweep-{(i - runs // 2) // 100:02d}"
        folder = sweep / f"t{(i - runs // 2) % 100:03d}" if in_sweep else root / f"run-{i:04d}"
        if in_sweep and not sweep.exists():
            sweep.mkdir(parents=True)
            sweep.joinpath("sweep.toml").write_text('[fixed]\nobjective = "clm"\n\n[grid]\nlr = [0.001, 0.003]\n')
            sweep.joinpath("results.jsonl").write_text("")
        is_running = not in_sweep and i < running
        write_run(folder, 10_000 if i % 20 == 0 else 200, is_running)
        live += [folder] if is_running else []
    return live


def median_time(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_listing(root: Path, repeat: int) -> dict[str, float]:
    """Seconds: in this process without a cache, cold and warm with one; the CLI cold and warm."""
    command = [sys.executable, "-m", "workbench", "runs", "--json", "--out", str(root)]

    def cli() -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    def cold_cli() -> None:
        rowcache.cache_file(root).unlink(missing_ok=True)
        cli()

    def disk_listing() -> None:
        cache = rowcache.load(root)
        listing.list_runs(str(root), cache)
        rowcache.save(cache, root)

    figures = {"list_runs, no cache (before, once)": median_time(lambda: listing.list_runs(str(root), None), 1),
               "list_runs, fresh memory cache (cold, once)": median_time(lambda: listing.list_runs(str(root), rowcache.RowCache()), 1)}
    warm = rowcache.RowCache()
    listing.list_runs(str(root), warm)
    figures["list_runs, memory cache (warm)"] = median_time(lambda: listing.list_runs(str(root), warm), repeat)
    disk_listing()
    figures["list_runs, disk cache (warm)"] = median_time(disk_listing, repeat)
    figures["workbench runs --json, cold (once)"] = median_time(cold_cli, 1)
    cli()
    figures["workbench runs --json, warm"] = median_time(cli, repeat)
    return figures


def timed_handler(owner: type, name: str, into: list[float]) -> None:
    """Wrap ``owner.name`` (on the class: intervals and message handlers are looked up there) to time each call."""
    original = getattr(owner, name)

    def wrapped(self, *args):
        t0 = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            into.append((time.perf_counter() - t0) * 1000)

    wrapped.__name__ = original.__name__
    setattr(owner, name, wrapped)


def append_steps(folder: Path, stop: threading.Event) -> None:
    """A training run's writer: a step line every 0.1 s."""
    step = 10_001
    while not stop.wait(0.1):
        with folder.joinpath("metrics.jsonl").open("a") as handle:
            handle.write(step_event(step, 20_000))
        step += 1


async def measure_pane(root: Path, live: Path, pane_id: str, presses: int, seconds: float) -> dict[str, list[float]]:
    """UI-thread ms per poll and per listing handled, and key latencies, on one pane while a run writes."""
    from workbench.tui.app import create_app
    from workbench.tui.panes.compare import ComparePane
    from workbench.tui.panes.runs import RunsPane

    pane_class, handler = (RunsPane, "on_runs_pane_listed") if pane_id == "runs" else (ComparePane, "on_compare_pane_loaded")
    polls: list[float] = []
    handled: list[float] = []
    timed_handler(pane_class, "_poll", polls)
    timed_handler(pane_class, handler, handled)
    app = create_app(root, None, corpora=["general"], runs_poll_seconds=1.0)
    stop = threading.Event()
    writer = threading.Thread(target=append_steps, args=(live, stop), daemon=True)
    try:
        async with app.run_test(size=(120, 40)):
            app.action_show_tab(pane_id)
            pane = app.query_one(pane_class)
            if pane_id == "compare":
                pane.runs = [str(live.resolve())]  # one run compared: its curves follow the writer
                pane.action_refresh()
            deadline = time.monotonic() + 600
            while not (pane.rows if pane_id == "runs" else pane.comparison) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # the first listing (cold) is not a poll
            await asyncio.sleep(1.0)
            polls.clear()
            handled.clear()
            writer.start()
            widget = app.focused
            keys = ["down" if i % 2 == 0 else "up" for i in range(presses)]
            latencies = await timed_presses(app, keys, seconds / presses,
                                            [(widget, "action_cursor_down"), (widget, "action_cursor_up")])
    finally:
        stop.set()
    return {"poll": polls, "handled": handled, "keys": latencies}


def restore(pane_class: type, names: tuple[str, ...], saved: dict[str, object]) -> None:
    for name in names:
        setattr(pane_class, name, saved[name])


def row(label: str, values: list[float]) -> None:
    if not values:
        out(f"  {label:<44} (none)")
        return
    out(f"  {label:<44} n={len(values):4d}  p50 {statistics.median(values):7.1f} ms  p95 {percentile(values, 0.95):7.1f} ms"
        f"  max {max(values):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--running", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=12.0, help="how long the presses of each pane are spread over")
    args = parser.parse_args()
    os.environ["WORKBENCH_CACHE"] = tempfile.mkdtemp(prefix="workbench-bench-cache-")
    with tempfile.TemporaryDirectory(prefix="runs-scale-") as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        live = make_root(root, args.runs, args.running)
        out(f"{args.runs} runs ({args.runs // 2} trials, {args.running} running) written in {time.perf_counter() - t0:.1f} s; "
            f"load average {os.getloadavg()[0]:.1f}")
        out("listing (median seconds)")
        for label, seconds in measure_listing(root, args.repeat).items():
            out(f"  {label:<44} {seconds:7.3f} s")
        from workbench.tui.panes.compare import ComparePane
        from workbench.tui.panes.runs import RunsPane

        for pane_id, pane_class, handler in (("runs", RunsPane, "on_runs_pane_listed"), ("compare", ComparePane, "on_compare_pane_loaded")):
            saved = {name: pane_class.__dict__[name] for name in ("_poll", handler)}
            try:
                figures = asyncio.run(measure_pane(root, live[0], pane_id, args.presses, args.seconds))
            finally:
                restore(pane_class, ("_poll", handler), saved)
            out(f"{pane_id} pane, UI thread, while a run writes (load average {os.getloadavg()[0]:.1f})")
            row("poll handler (_poll)", figures["poll"])
            row(f"listing handled ({handler})", figures["handled"])
            row("key press -> screen update", figures["keys"])


if __name__ == "__main__":
    main()
