"""Fault figures: hostile and careless use, SIGKILL-and-resume N times, and fuzz every loader.

Prints, per category of hostile or careless use (tampered checkpoints, bad spec values,
damaged runs for the readers, signals, two writers, symlinks, bad caches, odd files; see
``tests/hostile_cases.py``): cases, passed, tracebacks, hangs and cases where data was lost.
Then resumes that succeeded out of N kills, the most steps lost on a resume (bounded by the
save interval), how many kills landed mid-save, and for the fuzz suite: files, accepted,
rejected (one-line errors), tracebacks, hangs, bad messages and wrong outcomes.

    python benchmarks/faults.py                     # everything: hostile cases, 50 kills, the full fuzz suite
    python benchmarks/faults.py --kills 10 --seed 3 # a shorter run on a busy machine
    python benchmarks/faults.py --kills 0 --no-fuzz # hostile cases only
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the harnesses live next to the tests that use them
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def kill_figures(kills: int, seed: int, save_interval: int, verbose: bool) -> None:
    from conftest import write_story_corpus
    from faults_helpers import kill_and_resume

    with tempfile.TemporaryDirectory(prefix="faults-kill-") as tmp:
        workdir = Path(tmp)
        corpus = write_story_corpus(workdir / "stories.txt")
        started = time.perf_counter()
        report = kill_and_resume(workdir, corpus, kills=kills, seed=seed, save_interval=save_interval,
                                 log=print if verbose else None, compare=True)
        seconds = time.perf_counter() - started
    verified = report.resumes - report.killed_in_startup
    print(f"kill-and-resume: {report.kills} SIGKILLs (seed {seed}, save every {save_interval} steps) in {seconds:.0f}s")
    print(f"  resumes that succeeded: {report.resumes_ok} of {verified} that got going "
          f"(+{report.killed_in_startup} killed during start-up, covered by the next resume); {report.resumes} resumes in all")
    print(f"  most steps lost: {report.max_steps_lost} (bound: {save_interval})")
    print(f"  kills mid-save: {report.mid_save_kills}; a complete checkpoint on disk at all times: {report.never_without_checkpoint}")
    print(f"  final step reached: {report.final_step}; largest per-step loss difference from an uninterrupted run: {report.max_loss_diff}")
    print(f"  problems: {len(report.problems)}")
    for problem in report.problems:
        print(f"    {problem}")


def fuzz_figures(seed: int, big_line: bool) -> None:
    import datasets
    from fuzz_corpora import fuzz, generate

    logging.getLogger("datasets").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="faults-fuzz-") as tmp:
        datasets.config.HF_DATASETS_CACHE = str(Path(tmp) / "hf-cache")
        cases = generate(Path(tmp) / "files", seed=seed, big_line=big_line)
        report = fuzz(cases)
    print(f"fuzz: {report.files} files ({', '.join(f'{k} {v}' for k, v in report.by_loader.items())}) in {report.seconds:.1f}s")
    print(f"  accepted {report.accepted}, rejected with a one-line error {report.rejected}")
    for name in ("tracebacks", "hangs", "bad_messages", "wrong_outcomes"):
        items = getattr(report, name)
        print(f"  {name}: {len(items)}")
        groups: dict[str, list[str]] = {}
        for item in items:  # "loader file (what): detail" -> one line per (loader, what)
            loader, rest = item.split(" ", 1)
            what = rest.split("(", 1)[1].split(")", 1)[0] if "(" in rest else rest
            groups.setdefault(f"{loader} / {what}", []).append(rest.split("): ", 1)[-1])
        for key, details in groups.items():
            print(f"    {len(details):4d} x {key}: {details[0][:200]}")


def hostile_figures(verbose: bool) -> None:
    from hostile_cases import run_all

    with tempfile.TemporaryDirectory(prefix="faults-hostile-") as tmp:
        started = time.perf_counter()
        outcomes = run_all(Path(tmp), log=print if verbose else None)
        seconds = time.perf_counter() - started
    print(f"hostile and careless use: {len(outcomes)} cases through the CLI in {seconds:.0f}s")
    print(f"  {'category':10s} {'cases':>5s} {'passed':>6s} {'tracebacks':>10s} {'hangs':>5s} {'data lost':>9s}")
    for category in dict.fromkeys(o.case.category for o in outcomes):
        rows = [o for o in outcomes if o.case.category == category]
        print(f"  {category:10s} {len(rows):5d} {sum(o.passed for o in rows):6d} {sum(o.traceback for o in rows):10d} "
              f"{sum(o.hung for o in rows):5d} {sum(bool(o.lost) for o in rows):9d}")
    for outcome in outcomes:
        if not outcome.passed:
            last = outcome.stderr_tail.splitlines()[-1] if outcome.stderr_tail else ""
            print(f"  failed: {outcome.case.category}/{outcome.case.name}: exit {outcome.exit_code} {last[:160]} {outcome.lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--save-interval", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fuzz", action="store_true")
    parser.add_argument("--no-big-line", action="store_true", help="skip the 10 MB single-line files")
    parser.add_argument("--verbose", action="store_true", help="print each kill and each hostile case")
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile and careless use cases")
    args = parser.parse_args()
    from workbench.quiet import quiet_libraries

    quiet_libraries()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if not args.no_hostile:
        hostile_figures(args.verbose)
    if not args.no_fuzz:
        fuzz_figures(args.seed, big_line=not args.no_big_line)
    if args.kills > 0:
        kill_figures(args.kills, args.seed, args.save_interval, args.verbose)


if __name__ == "__main__":
    main()
