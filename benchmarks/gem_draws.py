"""How much a GEM run's validation metric depends on the neighbour draw it was trained on.

    python -m benchmarks.gem_draws RUN_DIR [RUN_DIR ...] [--fresh 3] [--split valid]

For each GEM run folder: the split's metrics of best.pt with its saved draw (what a run with `eval_neighbors:
draw` reported), with `--fresh` new draws (seeded 100, 101, ...), and over every neighbour (`eval_neighbors: all`,
what a run with that key reported), whichever key the run itself used. If the saved draw is much better than fresh
ones, the model fitted that particular draw rather than g(.) over the feature graph; if every draw is much better
than the mean over all neighbours, the model depends on the noise of S sampled neighbours it was trained with.
"""
from __future__ import annotations

import argparse

import torch

from graphrec.evaluation import evaluate_splits
from graphrec.trainer import load_run


def draw_sensitivity(run_dir: str, fresh: int, split: str) -> dict[str, dict[str, float]]:
    """{'saved' | 'fresh k' | 'all': the split's metrics} of one GEM run folder's best.pt."""
    _, _, model, evaluators = load_run(run_dir)
    gem = model.gem
    if gem is None:
        raise SystemExit(f"{run_dir}: not a GEM run (model.embedding is not gem)")
    gem.eval_neighbors = "draw"
    out = {"saved": evaluate_splits(model, evaluators, [split])}
    for k in range(fresh):
        gem.resample(torch.Generator().manual_seed(100 + k))
        out[f"fresh {k}"] = evaluate_splits(model, evaluators, [split])
    gem.eval_neighbors = "all"
    out["all"] = evaluate_splits(model, evaluators, [split])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gem_draws", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="GEM run folders")
    parser.add_argument("--fresh", type=int, default=3, help="fresh neighbour draws to evaluate")
    parser.add_argument("--split", default="valid")
    args = parser.parse_args(argv)
    print("| run | neighbours | metrics |\n|---|---|---|")
    for run_dir in args.runs:
        for label, metrics in draw_sensitivity(run_dir, args.fresh, args.split).items():
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if not k.endswith(("/rows", "/users")))
            print(f"| {run_dir} | {label} | {shown} |")


if __name__ == "__main__":
    main()
