"""Training time per batch (and per epoch) of the multimodal models relative to LightGCN, in one process.

    python -m benchmarks.multimodal_epoch --data baby --batches 3 --rounds 2 --threads 1

The dataset (Baby's interactions by default) gets synthetic item features: a 384-d text-like and a 4096-d image-like
modality around the centres of 20 random item groups (graphrec.data.synthetic_features). Every model trains through
graphrec's Trainer.step on the same batches' kind; rounds interleave the models so that a change of machine load
hits them all. Epoch time = median time per batch x batches per epoch + the per-epoch hook (FREEDOM's pruning,
LATTICE's relearned neighbours).
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import numpy as np
import torch

from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.data.synthetic_features import synthetic_item_features
from graphrec.trainer import Trainer

from .common import CLOCKS
from .dense_floor import gflops, projection_products, time_products

MODELS = {
    "lightgcn": {"name": "lightgcn", "num_layers": 3},
    "vbpr": {"name": "vbpr"},
    "lattice": {"name": "lattice"},
    "freedom": {"name": "freedom"},
    "idsf": {"name": "idsf"},
    "idsf-no-cl": {"name": "idsf", "cl_weight": 0.0, "cl_items": 2},
    "idsf-all-items": {"name": "idsf", "cl_items": "all"},
}


def dataset_with_features(data: str, dims: dict[str, int], seed: int = 0):
    """The dataset with synthetic features of `dims` around 20 random item groups' centres."""
    block = {"path": data} if data != "synthetic" else {"synthetic": {"num_users": 2000, "num_items": 1500}}
    dataset = load_dataset(build_config({"data": block, "split": {"method": "random"} if data == "synthetic" else {}}))
    groups = np.random.default_rng(seed).integers(0, 20, dataset.num_items)
    for name, matrix in synthetic_item_features(groups, dims, noise=1.0, seed=seed).items():
        dataset.add_item_features(name, matrix)
    return dataset


def build_trainer(model: dict, dataset, output_dir: str, batch_size: int, threads: int) -> Trainer:
    """A Trainer of `model` (embedding 64) over the prepared dataset, writing its run folder under output_dir."""
    cfg = build_config({"name": "bench", "device": "cpu", "output_dir": output_dir, "model": {"embedding_dim": 64,
                        **model}, "train": {"batch_size": batch_size, "threads": threads, "progress": False},
                        "split": {"method": "random"}})
    return Trainer(cfg, dataset=dataset)


def time_batches(trainer: Trainer, count: int, clock=time.perf_counter) -> list[float]:
    """Seconds (of `clock`) of each of `count` training steps (fresh batches of one epoch)."""
    trainer.model.train()
    batches = trainer.batches()
    out = []
    for _ in range(count):
        batch = next(batches)
        start = clock()
        trainer.step(batch)
        out.append(clock() - start)
    return out


def main(argv=None) -> None:
    """Print a markdown table: per-batch median, epoch estimate and the ratio to LightGCN for each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="baby", help="data.path of the interactions, or 'synthetic'")
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--image-dim", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=3, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated keys of MODELS")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall seconds or process CPU seconds")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = dataset_with_features(args.data, {"text": args.text_dim, "image": args.image_dim})
    names = args.models.split(",")
    with tempfile.TemporaryDirectory() as folder:
        trainers, hooks = {}, {}
        for name in names:
            trainers[name] = build_trainer(MODELS[name], dataset, folder, args.batch_size, args.threads)
            start = time.perf_counter()
            trainers[name].model.on_epoch_start(0, trainers[name].view_gen)
            hooks[name] = time.perf_counter() - start
            time_batches(trainers[name], 1)  # warm-up
        timings = {name: [] for name in names}
        for _ in range(args.rounds):
            for name in names:
                timings[name] += time_batches(trainers[name], args.batches, CLOCKS[args.clock])
        dense = {name: projection_products(trainers[name].model, next(iter(trainers[name].batches())),
                                           MODELS[name]["name"]) if name != "lightgcn" else [] for name in names}
        dense_s = {name: time_products(products, CLOCKS[args.clock]) if products else 0.0
                   for name, products in dense.items()}
    per_epoch = math.ceil(len(dataset.train) / args.batch_size)
    epoch = {name: statistics.median(t) * per_epoch + hooks[name] for name, t in timings.items()}
    reference = epoch.get("lightgcn")
    print(f"{dataset.name}: {dataset.num_users} users, {dataset.num_items} items, {len(dataset.train)} training "
          f"events, {per_epoch} batches of {args.batch_size}; features text {args.text_dim}-d, image "
          f"{args.image_dim}-d; {args.threads} thread(s); {args.rounds} x {args.batches} timed steps per model\n")
    step = statistics.median(timings["lightgcn"]) if "lightgcn" in timings else None
    print("| model | s / batch (median) | epoch hook s | epoch s (estimate) | x LightGCN | feature projections: "
          "GFLOP / batch | their s alone | x LightGCN's step |\n|---|---|---|---|---|---|---|---|")
    for name in names:
        ratio = f"{epoch[name] / reference:.2f}" if reference else "-"
        floor = f"{dense_s[name] / step:.2f}" if step else "-"
        print(f"| {name} | {statistics.median(timings[name]):.3f} | {hooks[name]:.2f} | {epoch[name]:.1f} | {ratio} "
              f"| {gflops(dense[name]):.2f} | {dense_s[name]:.3f} | {floor} |")


if __name__ == "__main__":
    main()
