"""Test Recall@20 against the share of pure-noise views (model.ssl_noise_share), one curve per contrastive loss.

    python -m benchmarks.robustness --shares 0,0.2,0.4,0.6,0.8 --losses infonce,symmetric --seeds 1 [--plot]
    python -m benchmarks.robustness --shares 0 --losses symmetric-q1 --ssl-weights 0.01,0.001,0.0001 --seeds 1,2

SGCL's base (SGL edge-dropout views, users and items contrasted jointly) on MovieLens ml-latest-small (the data
block of experiments/lightgcn-ml-latest-small.yaml, ratings >= 4) with a seeded random 10% valid / 20% test split,
validation protocol: each run keeps the epoch with the best valid/recall@20 and reads test there once. Every run
appends (or replaces) its row in --csv, so the grid can be run in pieces; --plot draws the CSV (mean over seeds,
error bars min..max) into --png. Losses: infonce, symmetric (the SGCL code's q), symmetric-q1 (q = 1).
Each loss's curve is drawn (and tabulated) at its contrastive weight chosen on validation: of the weights the CSV
holds for that loss at share 0, the one with the best mean valid/recall@20 over the seeds.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .common import REPO, Table

LOSSES = {"infonce": {"ssl_loss": "infonce"}, "symmetric": {"ssl_loss": "symmetric"},
          "symmetric-q1": {"ssl_loss": "symmetric", "ssl_q": 1.0}}
FIELDS = ["loss", "ssl_weight", "share", "seed", "best_epoch", "valid_recall@20", "test_recall@20", "test_ndcg@20",
          "train_s"]


def run_config(loss: str, weight: float, share: float, seed: int, args: argparse.Namespace, folder: str) -> dict:
    """The raw config of one run."""
    from graphrec.config import read_yaml
    base = read_yaml(REPO / "experiments" / "lightgcn-ml-latest-small.yaml")
    model = {"name": "sgcl", "embedding_dim": 64, "num_layers": 2, "ssl_weight": weight,
             "ssl_noise_share": share, **LOSSES[loss]}
    return {"name": f"robustness-{loss}-{weight}-{share}-{seed}", "seed": seed, "device": "cpu", "data": base["data"],
            "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.2},
            "model": model, "output_dir": folder, "tracking": {"mode": "disabled"},
            "train": {"epochs": args.epochs, "batch_size": 2048, "lr": args.lr, "reg": 1.0e-4, "eval_every": 2,
                      "patience": 3, "select_metric": "recall@20", "threads": args.threads, "progress": False},
            "eval": {"topk": [20], "metrics": ["recall", "ndcg"]}}


def run_one(loss: str, weight: float, share: float, seed: int, args: argparse.Namespace) -> dict:
    """Train one run and return its CSV row."""
    from graphrec.config import build_config
    from graphrec.trainer import Trainer
    with tempfile.TemporaryDirectory() as folder:
        cfg = build_config(run_config(loss, weight, share, seed, args, folder), base_dir=str(REPO))
        trainer = Trainer(cfg)
        started = time.perf_counter()
        metrics = trainer.fit()
        seconds = time.perf_counter() - started
    return {"loss": loss, "ssl_weight": weight, "share": share, "seed": seed, "best_epoch": metrics.get("best_epoch"),
            "valid_recall@20": metrics.get("valid/recall@20"), "test_recall@20": metrics.get("test/recall@20"),
            "test_ndcg@20": metrics.get("test/ndcg@20"), "train_s": round(seconds, 1)}


def merge(path: Path, rows: list[dict]) -> list[dict]:
    """The CSV's rows with `rows` added (replacing those of the same loss, weight, share and seed), written back."""
    key = lambda r: (r["loss"], float(r["ssl_weight"]), float(r["share"]), int(r["seed"]))  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.exists() else []
    table = {key(r): r for r in old}
    table.update({key(r): r for r in rows})
    ordered = [table[k] for k in sorted(table)]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(ordered)
    return ordered


def selected_weights(rows: list[dict]) -> dict[str, float]:
    """Per loss, the weight whose share-0 runs have the best mean valid/recall@20 (losses without share 0 left out)."""
    valid: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        if float(r["share"]) == 0:
            valid.setdefault((r["loss"], float(r["ssl_weight"])), []).append(float(r["valid_recall@20"]))
    best: dict[str, tuple[float, float]] = {}
    for (loss, weight), values in valid.items():
        mean = sum(values) / len(values)
        if loss not in best or mean > best[loss][0]:
            best[loss] = (mean, weight)
    return {loss: weight for loss, (_, weight) in best.items()}


def curves(rows: list[dict]) -> dict[str, dict[float, list[float]]]:
    """'loss (weight w)' -> share -> the seeds' test Recall@20, at each loss's selected weight."""
    weights = selected_weights(rows)
    out: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        if weights.get(r["loss"]) == float(r["ssl_weight"]):
            label = f"{r['loss']} (weight {weights[r['loss']]:g})"
            out.setdefault(label, {}).setdefault(float(r["share"]), []).append(float(r["test_recall@20"]))
    return out


def table(rows: list[dict]) -> Table:
    """Test Recall@20, mean (min-max) over seeds, a row per loss at its selected weight and a column per share."""
    by_label = curves(rows)
    shares = sorted({s for by_share in by_label.values() for s in by_share})
    out = Table("test Recall@20, mean (min-max) over seeds; each loss at its weight chosen on valid at share 0",
                ["loss"] + [f"share {s:g}" for s in shares])
    for label, by_share in by_label.items():
        cells = [f"{sum(v) / len(v):.4f} ({min(v):.4f}-{max(v):.4f}, {len(v)} seed{'s' * (len(v) > 1)})"
                 if (v := by_share.get(s)) else "-" for s in shares]
        out.add(label, *cells)
    return out


def plot(rows: list[dict], png: Path) -> None:
    """Test Recall@20 against the noisy share, one line per loss at its selected weight (mean, bars min..max)."""
    from graphrec.report import pyplot
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    for label, by_share in curves(rows).items():
        shares = sorted(by_share)
        means = [sum(by_share[s]) / len(by_share[s]) for s in shares]
        low = [m - min(by_share[s]) for m, s in zip(means, shares)]
        high = [max(by_share[s]) - m for m, s in zip(means, shares)]
        ax.errorbar(shares, means, yerr=[low, high], marker="o", capsize=3, label=label)
    ax.set_xlabel("share of pure-noise second views (model.ssl_noise_share)")
    ax.set_ylabel("test Recall@20 (selected on valid)")
    ax.set_title("SGCL base on ml-latest-small")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the requested grid cells, merge them into the CSV, and plot when asked."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robustness", description=__doc__.splitlines()[0])
    parser.add_argument("--shares", default="0,0.2,0.4,0.6,0.8")
    parser.add_argument("--losses", default="infonce,symmetric", help="comma-separated of " + ", ".join(LOSSES))
    parser.add_argument("--seeds", default="1", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--ssl-weights", default="0.1", help="comma-separated model.ssl_weight values, each run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default=str(REPO / "docs" / "robustness.csv"))
    parser.add_argument("--png", default=str(REPO / "docs" / "robustness.png"))
    parser.add_argument("--plot", action="store_true", help="draw the CSV into --png at the end")
    args = parser.parse_args(argv)
    shares = [float(s) for s in args.shares.split(",") if s]
    weights = [float(w) for w in args.ssl_weights.split(",") if w]
    if args.plot:
        from graphrec.errors import GraphrecError
        from graphrec.report import pyplot
        try:
            pyplot()  # before any run: matplotlib is an extra
        except GraphrecError as err:
            parser.error(str(err))
    losses = [name for name in args.losses.split(",") if name]
    unknown = sorted(set(losses) - set(LOSSES))
    if unknown:
        parser.error(f"unknown loss {unknown[0]!r}; choose from {', '.join(LOSSES)}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for share in shares:
            for loss in losses:
                for weight in weights:
                    row = run_one(loss, weight, share, seed, args)
                    print(" ".join(f"{k}={row[k]}" for k in FIELDS), flush=True)
                    rows.append(row)
    merged = merge(Path(args.csv), rows)
    print(table(merged).markdown())
    if args.plot:
        plot(merged, Path(args.png))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
