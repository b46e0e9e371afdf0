"""Epoch time of the OOD models against LightGCN, measured in one process on one dataset (docs/ood-models.md).

    python -m benchmarks.ood_epoch_times --dataset ood-food --threads 1 --rounds 3 --batches 5

Each model's trainer is built from experiments/<model>-<dataset>.yaml over one shared dataset; rounds interleave the
models (a few pairwise batches of each, then whole-graph steps of the pre-training stages), so drift of the machine
hits them alike. An epoch's time is the median batch time x batches per epoch (+ pre-training is reported apart).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from graphrec.config import load_config
from graphrec.data.loader import load_dataset
from graphrec.trainer import Trainer

MODELS = ("lightgcn", "lightgcn-dro", "drgo", "causaldiffrec")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def timed(step) -> float:
    """Seconds one call of `step` takes."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    """Print a markdown table of per-batch, per-epoch and pre-training times and the ratio to LightGCN's epoch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ood-food")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5, help="pairwise batches per model and round")
    args = parser.parse_args()
    out = tempfile.mkdtemp()
    overrides = [f"train.threads={args.threads}", "data.skip_bad_lines=true", "train.progress=false", f"output_dir={out}", "device=cpu"]
    configs = {m: load_config(EXPERIMENTS / f"{m}-{args.dataset}.yaml", overrides) for m in MODELS}
    dataset = load_dataset(configs["lightgcn"])
    trainers = {m: Trainer(cfg, dataset=dataset) for m, cfg in configs.items()}
    streams, main_times, graph_times = {}, {m: [] for m in MODELS}, {m: [] for m in MODELS}
    for name, trainer in trainers.items():
        pre = trainer.stages[0].epochs if len(trainer.stages) > 1 else 0
        trainer.state.epoch = pre  # the main (pairwise) stage
        trainer.model.on_epoch_start(pre, trainer.view_gen)
        streams[name] = trainer.batches()
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            trainer.model.train()
            for _ in range(args.batches):
                batch = next(streams[name])
                main_times[name].append(timed(lambda: trainer.step(batch)))
            if len(trainer.stages) > 1:  # one whole-graph pre-training step
                trainer.state.epoch = 0
                step = next(trainer.batches())
                graph_times[name].append(timed(lambda: trainer.step(step)))
                trainer.state.epoch = trainer.stages[0].epochs
    base = None
    print(f"dataset {args.dataset}, {dataset.train.user.size} training events, torch threads "
          f"{torch.get_num_threads()}, {args.rounds} rounds x {args.batches} batches\n")
    print("| model | batch (ms) | batches / epoch | epoch (s) | x LightGCN | pre-training step (s) |")
    print("|---|---|---|---|---|---|")
    for name, trainer in trainers.items():
        per_batch = statistics.median(main_times[name])
        epoch = per_batch * trainer._epoch_batches()
        base = base or epoch
        graph = f"{statistics.median(graph_times[name]):.2f}" if graph_times[name] else "-"
        print(f"| {name} | {per_batch * 1000:.1f} | {trainer._epoch_batches()} | {epoch:.2f} | {epoch / base:.2f} | "
              f"{graph} |")


if __name__ == "__main__":
    main()
