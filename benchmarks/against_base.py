"""A benchmark run on this tree and on an earlier commit, alternately, in the same run.

    uv run python benchmarks/against_base.py consumer|pipeline|api|stream [--base COMMIT]
        [--rounds 5] [--keep] [-- BENCHMARK ARGS]

The earlier commit is checked out as a detached git worktree in the temporary folder (set
up with its own lock file: `scripts/uv.sh sync --frozen`) and removed at the end unless
`--keep`. Each round runs the benchmark in the base tree, then in this one, so that a
change of the machine's load weighs on both alike. The benchmark's own output is parsed
for its figures; prints each round's, then per figure the medians of both trees and the
ratio this / base (for a rate, higher is better; for a latency, lower).

- `consumer`: `consumer_bench.py --events 200000 --packs 20000 --delay-seconds 15
  --also-delay-at 4000`: `ledger consume` events/s, the delay p50/p99 at half of each
  tree's own rate and at 4,000 events/s (the same offered load for both trees: a faster
  tree's own half rate is a heavier load).
- `pipeline`: `pipeline_bench.py --rounds 1`: microseconds per event of each mode and
  batch size (lower is better).
- `api`: `api_bench.py --packs 20000 --records 200000 --seconds 8`: each endpoint's
  requests/s and p99.
- `stream`: `stream_bench.py --rounds 3`: the stream's delay, the API's peak RSS, the pack
  list's p99 without and with 1,000 stream clients and their ratio (each run compares
  within itself; this compares two trees' ratios under the same machine load).

Arguments after `--` replace the defaults. Needs what the benchmark needs (PostgreSQL,
Kafka: the settings, else `ledger infra`) and git.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "99f3acd"
"""The commit before the consumer core's rebuild (issue 12), the last that landed before it."""

Figures = dict[str, float]


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def consumer_figures(out: str) -> Figures:
    figures: Figures = {}
    if match := re.search(r"^ledger consume: ([\d,]+) events/s", out, re.M):
        figures["ledger consume, events/s"] = _number(match[1])
    delays = re.findall(
        r"^delay at ([\d,]+) events/s over [\d,]+ events: p50 (\d+) ms, p99 (\d+) ms", out, re.M
    )
    # The first is at half of the tree's own rate; the others at the fixed rates of
    # `--also-delay-at`, the same offered load for both trees.
    for index, (rate, p50, p99) in enumerate(delays):
        at = "half rate" if index == 0 else f"{rate} events/s"
        figures[f"delay p50 at {at}, ms"] = _number(p50)
        figures[f"delay p99 at {at}, ms"] = _number(p99)
    if match := re.search(r"^sink ceiling [^:]*: ([\d,]+) events/s", out, re.M):
        figures["sink ceiling, events/s"] = _number(match[1])
    return figures


def pipeline_figures(out: str) -> Figures:
    figures: Figures = {}
    pattern = r"^batches of\s+([\d,]+)\s+(ahead|inside)\s+([\d.]+) us/event wall"
    for size, mode, wall in re.findall(pattern, out, re.M):
        figures[f"{mode}, batches of {size}, us/event"] = _number(wall)
    return figures


def api_figures(out: str) -> Figures:
    figures: Figures = {}
    for name, rate, p99 in re.findall(r"^(\w[^:\n]*): (\d+) req/s, p99 ([\d.]+) ms", out, re.M):
        figures[f"{name}, req/s"] = _number(rate)
        figures[f"{name}, p99 ms"] = _number(p99)
    return figures


def stream_figures(out: str) -> Figures:
    figures: Figures = {}
    if match := re.search(r"delay publish -> client: p50 (\d+) ms, p99 (\d+) ms", out):
        figures["stream delay p50, ms"] = _number(match[1])
        figures["stream delay p99, ms"] = _number(match[2])
    if match := re.search(r"API process RSS: peak (\d+) MiB", out):
        figures["API RSS peak, MiB"] = _number(match[1])
    if match := re.search(r"^  without stream clients: p50 [\d.]+ ms, p99 ([\d.]+) ms", out, re.M):
        figures["list p99 without streams, ms"] = _number(match[1])
    if match := re.search(r"^  with \d+ clients: +p50 [\d.]+ ms, p99 ([\d.]+) ms", out, re.M):
        figures["list p99 with streams, ms"] = _number(match[1])
    if match := re.search(r"p99 with / without: ([\d.]+)", out):
        figures["list p99 with / without"] = _number(match[1])
    return figures


@dataclass(frozen=True)
class Benchmark:
    script: str
    defaults: list[str]
    figures: Callable[[str], Figures]


BENCHMARKS = {
    "consumer": Benchmark(
        "benchmarks/consumer_bench.py",
        [
            "--events",
            "200000",
            "--packs",
            "20000",
            "--delay-seconds",
            "15",
            "--also-delay-at",
            "4000",
        ],
        consumer_figures,
    ),
    "pipeline": Benchmark("benchmarks/pipeline_bench.py", ["--rounds", "1"], pipeline_figures),
    "api": Benchmark(
        "benchmarks/api_bench.py",
        ["--packs", "20000", "--records", "200000", "--seconds", "8"],
        api_figures,
    ),
    "stream": Benchmark("benchmarks/stream_bench.py", ["--rounds", "3"], stream_figures),
}


def higher_is_better(figure: str) -> bool:
    return figure.endswith("/s")


def clean_env() -> dict[str, str]:
    """This process's environment without what `uv run` set for this tree (its virtualenv,
    first on PATH, and the `UV_*` variables): each tree's `uv` uses its own environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "UV") and not key.startswith("UV_")
    }
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        own = str(Path(venv) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != own)
    return env


def git(*args: str, cwd: Path = HERE) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def base_tree(commit: str) -> Path:
    """The base commit checked out in a worktree of its own, its environment synced."""
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    tree = Path(tempfile.gettempdir()) / f"ledger-base-{full[:12]}"
    if not (tree / ".git").exists():
        git("worktree", "add", "--detach", str(tree), full)
    subprocess.run(
        ["bash", "scripts/uv.sh", "sync", "--frozen", "--quiet"],
        cwd=tree,
        env=clean_env(),
        check=True,
    )
    return tree


def run_in(tree: Path, benchmark: Benchmark, args: list[str]) -> Figures:
    done = subprocess.run(
        ["bash", "scripts/uv.sh", "run", "python", benchmark.script, *args],
        cwd=tree,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{benchmark.script} failed in {tree} (exit {done.returncode})")
    return benchmark.figures(done.stdout)


def report(rounds: list[dict[str, Figures]]) -> None:
    names = [name for name in rounds[0]["this"] if all(name in r["base"] for r in rounds)]
    width = max(len(name) for name in names)
    print(f"\n| {'figure':<{width}} | base (median) | this (median) | this / base |")
    print(f"|{'-' * (width + 2)}|---:|---:|---:|")
    for name in names:
        base = statistics.median(r["base"][name] for r in rounds)
        this = statistics.median(r["this"][name] for r in rounds)
        better = "higher is better" if higher_is_better(name) else "lower is better"
        print(f"| {name:<{width}} | {base:,.1f} | {this:,.1f} | {this / base:.2f} ({better}) |")
    only = sorted({n for r in rounds for n in r["this"]} - set(names))
    if only:
        print(f"(this tree only: {', '.join(only)})")


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] | None = None
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--base", default=DEFAULT_BASE, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the base worktree")
    args = parser.parse_args(argv)
    benchmark = BENCHMARKS[args.benchmark]
    bench_args = benchmark.defaults if extra is None else extra
    tree = base_tree(args.base)
    this = git("rev-parse", "--short", "HEAD") + (
        "+changes" if git("status", "--porcelain") else ""
    )
    print(f"{benchmark.script} {' '.join(bench_args)}: base {args.base} ({tree}), this {this}")
    rounds: list[dict[str, Figures]] = []
    try:
        for number in range(1, args.rounds + 1):
            figures = {}
            for side, where in (("base", tree), ("this", HERE)):
                figures[side] = run_in(where, benchmark, bench_args)
                shown = ", ".join(f"{name} {value:,.1f}" for name, value in figures[side].items())
                print(f"round {number} {side}: {shown}", flush=True)
            rounds.append(figures)
        report(rounds)
    finally:
        if not args.keep:
            git("worktree", "remove", "--force", str(tree))
            shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
