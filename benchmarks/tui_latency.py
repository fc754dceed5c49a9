"""Key press -> repaint latency of the TUI while a training run streams points.

Drives the app headless with ``App.run_test()``; a training run streams metrics in its
thread worker (the synthetic engine by default, or a real tiny run with ``--real``). For
each press of a chart key (m: smoothing, l: log scale, alternately) it times from handing
the key event to the driver until the first screen update (``App._display``) after the
key's action ran, and prints p50/p95/max. Pane switches the same way: from a pane key (1, 3,
4, 3, ...: Corpus, Train, Runs) until the first screen update after ``action_show_tab`` ran.
Both with no run, then back to back in the same process while the run streams.

"quit": from handing ``q`` to the driver until ``asyncio.run`` around the app has returned
(the app's task done and the loop's thread workers joined), median of several: cold (each in
a fresh process, pressed 0.3 s after the app is up, while torch & co. are still importing),
warm (the libraries imported, nothing running) and training (a synthetic run is stopped and
its checkpoint saved first; with ``--real`` also a real tiny run: its step, checkpoint, quick
eval and ``model/``).

"process quit" (``--process-quits``): the real ``workbench tui`` in a pseudo-terminal, from
writing ``q`` to it until the process has exited (what a user waits for), pressed 0.1, 0.5, 1
and 2 s after it first drew its tabs (torch & co. still importing, the corpus and defaults
workers waiting for them) and once warm (the Objective pane's defaults shown); median and max
of ``--quits`` fresh processes each, with the load average before and after.

    python benchmarks/tui_latency.py [--presses 40] [--real] [--size 80x24] [--quits 5] [--quit-only]
    python benchmarks/tui_latency.py --process-quits [--quits 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual import events

from workbench.tui.app import create_app
from workbench.tui.panes.train import TrainPane
from workbench.tui.synthetic import SyntheticRun


def write_corpus(path: Path, documents: int = 200) -> Path:
    animals, places = ["cat", "dog", "bird", "fox", "cow"], ["mat", "rug", "bed", "box", "hill"]
    lines = []
    for i in range(documents):
        lines += [f"The {animals[i % 5]} sat on the {places[(i * 3) % 5]}.", f"It was day number {i}.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def out(text: str) -> None:
    """Print past Textual's stdout capture (run_test redirects ``print``)."""
    sys.__stdout__.write(text + "\n")
    sys.__stdout__.flush()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def timed_presses(app, keys: list[str], gap: float, hooks: list[tuple[object, str]]) -> list[float]:
    """For each key: ms from handing it to the driver until the first screen update
    (``App._display``) after one of the ``hooks`` (``(object, action method name)``) ran."""
    displays: list[float] = []
    acted: list[float] = []
    original_display = app._display

    def display(screen, renderable):
        displays.append(time.perf_counter())
        return original_display(screen, renderable)

    app._display = display  # instance attribute shadows the method
    originals = []
    for owner, name in hooks:
        original = getattr(owner, name)
        originals.append((owner, name))

        def wrapped(*args, original=original):
            result = original(*args)
            acted.append(time.perf_counter())
            return result

        setattr(owner, name, wrapped)
    latencies = []
    try:
        for key in keys:
            before = len(acted)
            t0 = time.perf_counter()
            app._driver.send_message(events.Key(key, key))
            while len(acted) == before or not displays or displays[-1] < acted[before]:
                await asyncio.sleep(0.0005)
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError(f"no repaint 10 s after pressing {key!r} (focus: {app.focused})")
            latencies.append((displays[-1] - t0) * 1000)
            await asyncio.sleep(gap)
    finally:
        app._display = original_display
        for owner, name in originals:
            owner.__dict__.pop(name, None)
    return latencies


async def measure(app, pilot, presses: int, gap: float) -> list[float]:
    """Chart keys in the Train pane: m (smoothing) and l (log scale), alternately."""
    keys = ["m" if i % 2 == 0 else "l" for i in range(presses)]
    pane = app.query_one(TrainPane)
    return await timed_presses(app, keys, gap, [(pane, "action_toggle_smoothing"), (pane, "action_toggle_log")])


SWITCH_KEYS = ["1", "3", "4", "3"]
"""Panes switched between: Corpus, Train, Runs (those whose first focus is not a text field,
which would take the next digit as text), ending on Train."""


async def measure_switches(app, pilot, presses: int, gap: float) -> list[float]:
    """Pane keys: from the key until the screen shows the pane (the first update after
    ``action_show_tab`` ran)."""
    keys = [SWITCH_KEYS[i % len(SWITCH_KEYS)] for i in range(presses)]
    return await timed_presses(app, keys, gap, [(app, "action_show_tab")])


def report(label: str, values: list[float]) -> None:
    out(f"{label:<34} n={len(values):3d}  p50 {statistics.median(values):6.1f} ms  "
          f"p95 {percentile(values, 0.95):6.1f} ms  max {max(values):6.1f} ms")


TINY = dict(max_steps="100000", batch_size="8", seq_len="32", vocab_size="300")
"""The Objective pane's fields for a real tiny run (with ``--real``)."""


async def quit_once(root: Path, size: tuple[int, int], *, wait: float = 0.3, train: bool = False,
                    corpus: Path | None = None) -> float:
    """Seconds from pressing q until the app's task is done (``wait`` s after it is up);
    ``train``: while a run trains (a real tiny run on ``corpus`` if given, else synthetic)."""

    def engine(spec, listeners, control):
        return SyntheticRun(spec, listeners=listeners, control=control, steps=10**9, delay=0.01)

    app = create_app(root, None if corpus else engine, corpora=["general"], runs_poll_seconds=1.0)
    async with app.run_test(size=size):
        await asyncio.sleep(wait)
        if train:
            app.objective_pane.set_corpus(str(corpus or "general"))
            if corpus:
                for key, value in TINY.items():
                    app.objective_pane.query_one(f"#f-{key}").value = value
            app.action_start()
            while len(app.live.curves.snapshot().train_loss) < 3:
                await asyncio.sleep(0.05)
        started = time.perf_counter()
        app._driver.send_message(events.Key("q", "q"))
        await asyncio.wait({app._task}, timeout=60)
    return started


def quit_figure(root: Path, size: tuple[int, int], **kwargs) -> float:
    """One quit, in its own event loop: until ``asyncio.run`` returns (thread workers joined)."""
    started = asyncio.run(quit_once(root, size, **kwargs))
    return time.perf_counter() - started


def quit_figures(args: argparse.Namespace, size: tuple[int, int]) -> None:
    cold = []
    for _ in range(args.quits):
        done = subprocess.run([sys.executable, __file__, "--quit-only", "--size", args.size], capture_output=True,
                              text=True, check=True)
        cold.append(float(done.stdout.split()[-1]) * 1000)
    report("quit, cold (libraries importing)", cold)
    with tempfile.TemporaryDirectory() as tmp:
        warm = [quit_figure(Path(tmp) / f"warm{i}", size, wait=1.0) * 1000 for i in range(args.quits)]
        report("quit, warm (nothing running)", warm)
        training = [quit_figure(Path(tmp) / f"train{i}", size, train=True) * 1000 for i in range(args.quits)]
        report("quit, training (synthetic run)", training)
        if args.real:  # the stop's checkpoint, a quick eval and model/ of a real tiny model
            corpus = write_corpus(Path(tmp) / "corpus.txt")
            real = [quit_figure(Path(tmp) / f"real{i}", size, train=True, corpus=corpus) * 1000 for i in range(args.quits)]
            report("quit, training (real tiny run)", real)


def read_pty(fd: int, needle: bytes, seconds: float) -> bytes:
    """What the terminal receives until ``needle`` shows (or ``seconds`` pass)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.005)[0]:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def process_quit(root: Path, delay: float | None) -> float:
    """Seconds from writing ``q`` to a real ``workbench tui`` until its process has exited;
    ``delay`` s after it first drew its tabs, or (``None``) once the libraries are loaded."""
    leader, follower = os.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    process = subprocess.Popen([sys.executable, "-m", "workbench", "tui", "--out", str(root)], stdin=follower,
                               stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    try:
        if b"Objective" not in read_pty(leader, b"Objective", 120):
            raise RuntimeError("the TUI never drew its tabs")
        if delay is None:
            os.write(leader, b"2")  # the Objective pane's defaults need torch and transformers
            read_pty(leader, b"parameters", 120)
            read_pty(leader, b"never printed", 1.0)
        else:
            read_pty(leader, b"never printed", delay)
        started = time.perf_counter()
        os.write(leader, b"q")
        while process.poll() is None:
            read_pty(leader, b"never printed", 0.002)  # keep the terminal drained, as a terminal does
        return time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


def process_quit_figures(quits: int) -> None:
    out(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        for delay in (0.1, 0.5, 1.0, 2.0, None):
            times = [process_quit(Path(tmp) / f"runs-{delay}-{i}", delay) * 1000 for i in range(quits)]
            label = "warm (libraries loaded)" if delay is None else f"{delay:g} s after first draw"
            out(f"process quit, {label:<24} n={len(times):2d}  median {statistics.median(times):6.0f} ms  "
                f"max {max(times):6.0f} ms  ({', '.join(f'{t:.0f}' for t in times)})")
    out(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


async def main(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        if args.real:
            corpus = write_corpus(Path(tmp) / "corpus.txt")
            engine = None
        else:
            corpus = Path("general")

            def engine(spec, listeners, control):
                return SyntheticRun(spec, listeners=listeners, control=control, steps=10**9, delay=1 / args.rate)

        app = create_app(root, engine, corpora=["general"], runs_poll_seconds=0)
        async with app.run_test(size=(width, height)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("3")
            await pilot.pause(0.5)
            report("chart key, idle (no run)", await measure(app, pilot, args.presses, args.gap))
            report("pane switch, idle (no run)", await measure_switches(app, pilot, args.presses, args.gap))
            pane = app.objective_pane
            pane.set_corpus(str(corpus))
            if args.real:
                for key, value in TINY.items():
                    pane.query_one(f"#f-{key}").value = value
            app.action_start()
            started = time.perf_counter()
            while len(app.live.curves.snapshot().train_loss) < 3:
                await asyncio.sleep(0.05)
                if time.perf_counter() - started > 300:
                    sys.exit("no training points after 300 s")
            await pilot.pause(0.2)
            snap_before = app.live.curves.snapshot()
            values = await measure(app, pilot, args.presses, args.gap)
            switches = await measure_switches(app, pilot, args.presses, args.gap)
            snap_after = app.live.curves.snapshot()
            streamed = len(snap_after.train_loss) - len(snap_before.train_loss)
            kind = "real tiny run" if args.real else f"synthetic run, {args.rate:g} points/s"
            report(f"chart key, training ({kind})", values)
            report(f"pane switch, training ({kind})", switches)
            out(f"  points streamed during the presses: {streamed}; chart points now: {len(snap_after.train_loss)}")
            app.action_stop()
            await app.workers.wait_for_complete()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between presses")
    parser.add_argument("--rate", type=float, default=100.0, help="synthetic metric points per second")
    parser.add_argument("--real", action="store_true", help="stream a real tiny training run instead")
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--quits", type=int, default=5, help="quits measured for each quit figure")
    parser.add_argument("--quit-only", action="store_true", help="print one cold quit's seconds (used by the quit figure)")
    parser.add_argument("--no-quit", action="store_true", help="skip the quit figures")
    parser.add_argument("--no-keys", action="store_true", help="skip the key and pane-switch figures")
    parser.add_argument("--process-quits", action="store_true",
                        help="only the real process's quit figures (key to process exit, in a pseudo-terminal)")
    arguments = parser.parse_args()
    if arguments.process_quits:
        process_quit_figures(arguments.quits)
        sys.exit(0)
    dimensions = tuple(int(v) for v in arguments.size.split("x"))
    if arguments.quit_only:
        with tempfile.TemporaryDirectory() as folder:
            out(f"{quit_figure(Path(folder) / 'runs', dimensions):.4f}")
        sys.exit(0)
    if not arguments.no_keys:
        asyncio.run(main(arguments))
    if not arguments.no_quit:
        quit_figures(arguments, dimensions)
