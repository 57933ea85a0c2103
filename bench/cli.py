"""The command line of the benchmarks.

::

    python3 -m bench                 # every benchmark, full mode, results in bench/results
    python3 -m bench --quick         # CI: under two minutes, results in bench/results/tmp
    python3 -m bench --only build_cost,sync_cost
    python3 -m bench report          # plots and the README table from bench/results
    python3 -m bench compare OLD NEW # two result files (or folders) side by side

Benchmarks report; they never fail on a number. A benchmark that crashes (or cannot do what
it was asked to) makes the command exit with 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import RESULTS, SCRATCH, Run, load_results, log

#: in the order they run (cheapest first)
BENCHMARKS = ("build_cost", "sync_cost", "throughput", "latency")


class Skipped(Exception):
    """A benchmark that cannot run here (a missing optional piece); not an error."""


def _run_options(target: argparse.ArgumentParser) -> None:
    mode = target.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="mode",
        help="CI mode: smaller sizes, short windows, under two minutes",
    )
    mode.add_argument(
        "--full",
        action="store_const",
        const="full",
        dest="mode",
        help="every size and the default interval (the default)",
    )
    mode.add_argument(
        "--smoke", action="store_const", const="smoke", dest="mode", help=argparse.SUPPRESS
    )
    target.add_argument(
        "--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    target.add_argument("--out", type=Path, help="folder for the JSON and PNG files")
    target.add_argument("--no-plots", action="store_true")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description="The benchmarks.")
    _run_options(parser)
    sub = parser.add_subparsers(dest="command")
    _run_options(sub.add_parser("run", help="run benchmarks (the default command)"))
    report = sub.add_parser("report", help="plots and README table from result files")
    report.add_argument("--dir", type=Path, default=RESULTS)
    compare = sub.add_parser("compare", help="compare two result files or folders")
    compare.add_argument("old", type=Path)
    compare.add_argument("new", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return report(args.dir)
    if args.command == "compare":
        return compare(args.old, args.new)
    mode = args.mode or "full"
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    out = args.out or (RESULTS if mode == "full" else SCRATCH)
    return run_all(names, mode, out, plots=not args.no_plots)


def run_one(name: str, mode: str, out: Path) -> Run:
    started = time.time()
    try:
        module = importlib.import_module(f"bench.{name}")
        result: Run = module.run(mode, out)
    except Skipped as why:
        result = Run(name, mode)
        result.notes.append(f"skipped: {why}")
        result.extra["skipped"] = str(why)
    except Exception as exc:  # a benchmark's crash is reported, then fails the command
        result = Run(name, mode)
        result.error = f"{type(exc).__name__}: {exc}"
        result.extra["traceback"] = traceback.format_exc()
        log(f"{name}: ERROR {result.error}")
    result.started = started
    path = result.write(out)
    log(f"{name}: {mode} run written to {path} ({time.time() - started:.0f} s)")
    return result


def run_all(names: list[str], mode: str, out: Path, *, plots: bool = True) -> int:
    started = time.time()
    runs = [run_one(name, mode, out) for name in names]
    if plots:
        try:
            from bench.plots import draw_all

            for path in draw_all(load_results(out), out):
                log(f"plot: {path}")
        except ImportError as exc:
            log(f"plots skipped ({exc}); pip install -e '.[bench]'")
    if out.resolve() == RESULTS.resolve() and mode == "full":
        from bench.report import update_readme

        update_readme(load_results(out))
        log("bench/README.md: results table updated")
    failed = [r.name for r in runs if r.error]
    skipped = [r.name for r in runs if "skipped" in r.extra]
    log(
        f"done in {time.time() - started:.0f} s: {len(runs) - len(failed) - len(skipped)} ran"
        + (f", skipped: {', '.join(skipped)}" if skipped else "")
        + (f", FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def report(directory: Path) -> int:
    from bench.plots import draw_all
    from bench.report import update_readme

    results = load_results(directory)
    for path in draw_all(results, directory):
        log(f"plot: {path}")
    if directory.resolve() == RESULTS.resolve():
        update_readme(results)
        log("bench/README.md: results table updated")
    return 0


def _load(path: Path) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        return load_results(path)
    data = json.loads(path.read_text())
    return {str(data["benchmark"]): data}


def compare(old: Path, new: Path) -> int:
    """Headline figures of two runs side by side, with the ratio new / old."""
    before, after = _load(old), _load(new)
    for name in sorted(set(before) | set(after)):
        a = before.get(name, {}).get("headline", {})
        b = after.get(name, {}).get("headline", {})
        print(
            f"== {name}: {before.get(name, {}).get('mode', '-')} -> "
            f"{after.get(name, {}).get('mode', '-')}"
        )
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            ratio = f"{y / x:8.2f}x" if isinstance(x, int | float) and x and y is not None else ""
            print(f"  {key:<40} {x!s:>12} {y!s:>12} {ratio}")
    return 0
