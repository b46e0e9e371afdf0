"""`--workers 2` against `--workers 1` on a 4-run quickstart grid, and the sweep's overhead per run.

    python -m benchmarks.sweep_workers [--epochs 10] [--rounds 2]

Each round runs, in this order, one plain `graphrec train experiments/quickstart.yaml` with 2 threads and with 1,
then the same offline grid (train.lr in {0.002, 0.005} x train.reg in {1e-4, 1e-3}: four runs of the plain run's
cost, so a sweep run's time over the plain one is the sweep's overhead) with `--workers 1 --threads 2` and with
`--workers 2 --threads 1`, every process started fresh in a scratch folder. It prints the
wall times, the ratio of the two sweeps (issue target: at most 0.65x) and the overhead of a sweep run over a plain
one (target: under 10% of a full quickstart run), and fails if a run's metric differs between the two sweeps.
Run it on an otherwise idle machine: a foreign load takes cores from the sweep with more processes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from graphrec.sweep.summary import sweep_rows

from .common import REPO, environment

QUICKSTART = REPO / "experiments" / "quickstart.yaml"
METRIC = "valid/recall@20"
GRID = f"""name: workers-grid
base: {QUICKSTART}
method: grid
metric: {{name: {METRIC}, goal: maximize}}
parameters:
  train.lr: {{values: [0.002, 0.005]}}
  train.reg: {{values: [1.0e-4, 1.0e-3]}}
"""


def timed(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of one command run to completion in cwd (raises on a non-zero exit)."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True,
                   env=dict(os.environ, WANDB_MODE="disabled"))
    return time.perf_counter() - start


def sweep_metrics(folder: Path) -> dict[str, float]:
    """{sorted params as JSON: valid/recall@20} of a sweep folder's runs (graphrec's own sweep summary)."""
    return {json.dumps(row["params"], sort_keys=True): row["value"] for row in sweep_rows(folder, METRIC)}


def one_round(epochs: int, scratch: Path) -> dict[str, float]:
    """Wall seconds of the plain runs and the two sweeps; checks the sweeps' metrics agree."""
    graphrec = [sys.executable, "-m", "graphrec"]
    times, metrics = {}, []
    for threads in (2, 1):
        times[f"plain, {threads} thread(s)"] = timed(
            graphrec + ["train", str(QUICKSTART), "--set", f"train.epochs={epochs}", "--set",
                        f"train.threads={threads}", "--set", f"output_dir={scratch / 'runs'}"], scratch)
    for workers, threads in ((1, 2), (2, 1)):
        cwd = scratch / f"workers{workers}"
        cwd.mkdir()
        (cwd / "grid.yaml").write_text(GRID)
        times[f"sweep, --workers {workers}"] = timed(
            graphrec + ["sweep", "grid.yaml", "--offline", "--workers", str(workers), "--threads", str(threads),
                        "--set", f"train.epochs={epochs}"], cwd)
        metrics.append(sweep_metrics(next((cwd / "sweeps").iterdir())))
    if metrics[0] != metrics[1] or len(metrics[0]) != 4 or None in metrics[0].values():
        raise SystemExit(f"a run failed or the two sweeps' metrics differ: {metrics[0]} against {metrics[1]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_workers", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all four measurements (default 2)")
    args = parser.parse_args(argv)
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="graphrec-workers-") as tmp:
            rounds.append(one_round(args.epochs, Path(tmp)))
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    env = dict(environment(threads=2), command="python -m benchmarks.sweep_workers " + " ".join(argv or sys.argv[1:]))
    print(json.dumps(env, sort_keys=True))
    print(f"{args.rounds} round(s), median wall s (load average at start and end: in the line above)")
    print("| what | wall s (median) | each round |\n|---|---|---|")
    for key, value in median.items():
        print(f"| {key} | {value:.1f} | {', '.join(f'{r[key]:.1f}' for r in rounds)} |")
    ratio = median["sweep, --workers 2"] / median["sweep, --workers 1"]
    overhead = median["sweep, --workers 1"] / 4 - median["plain, 2 thread(s)"]
    print(f"--workers 2 / --workers 1: {ratio:.2f}x (target <= 0.65x); overhead per sweep run {overhead:.1f} s "
          f"over a plain {args.epochs}-epoch run; the two sweeps' metrics are identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
