"""Training throughput (rows/s) of graphrec's FM, DeepFM and their GEM versions beside a textbook PyTorch FM.

    python -m benchmarks.fm_throughput [--data data-prepared/frappe-nfm] [--batch-size 512] [--batches 150]

Every entry trains on the same shuffled batches of the training rows, one process, one thread, with the same Adam
(fused where torch has it). graphrec's entries run `Trainer.step` (loss, backward, optimizer step) over
`Trainer.batches()`, and GEM's per-epoch neighbour draw (`on_epoch_start`) is inside the timed span. The textbook FM
is the usual nn.Embedding model with the O(k n) pairwise identity and MSE, written here without graphrec.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from torch import nn

from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.data.sampling import row_batches
from graphrec.trainer import Trainer

from .common import environment

ENTRIES = {  # label -> model keys
    "graphrec FM": {"name": "fm"},
    "graphrec GEM-FM (1 layer, S=10)": {"name": "fm", "embedding": "gem"},
    "graphrec DeepFM [400, 400, 400]": {"name": "deepfm"},
    "graphrec GEM-DeepFM (1 layer, S=10)": {"name": "deepfm", "embedding": "gem"},
    "graphrec GEM-DeepFM (2 layers, S=10)": {"name": "deepfm", "embedding": "gem", "gem": {"layers": 2}},
}


class TextbookFM(nn.Module):
    """w0 + sum_i w_i + 0.5 sum_f ((sum_i v_if)^2 - sum_i v_if^2) over one-hot (b, f) feature ids."""

    def __init__(self, num_features: int, dim: int):
        super().__init__()
        self.w0 = nn.Parameter(torch.zeros(()))
        self.w = nn.Embedding(num_features, 1)
        self.v = nn.Embedding(num_features, dim)
        nn.init.zeros_(self.w.weight)
        nn.init.normal_(self.v.weight, std=0.01)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(b,) predictions of (b, f) feature ids."""
        v = self.v(features)
        pairwise = 0.5 * (v.sum(1).square() - v.square().sum(1)).sum(1)
        return self.w0 + self.w(features).squeeze(-1).sum(1) + pairwise


def config(model: dict, args: argparse.Namespace, output_dir: str):
    """A frappe-nfm regression config for the given model keys."""
    return build_config({"name": "bench", "seed": 0, "device": "cpu", "task": "regression", "output_dir": output_dir,
                         "data": {"path": args.data},
                         "model": {"embedding_dim": args.dim, "init_std": 0.01, **model},
                         "train": {"batch_size": args.batch_size, "lr": 0.001, "reg": 0.0, "threads": args.threads,
                                   "progress": False, "max_batches": args.batches}})


def time_graphrec(trainer: Trainer, warmup: int) -> tuple[float, int]:
    """Seconds and rows of one (capped) epoch of Trainer.step after `warmup` untimed batches."""
    model = trainer.model
    model.train()
    for index, batch in enumerate(trainer.batches()):
        if index == warmup:
            break
        trainer.step(batch)
    started, rows = time.perf_counter(), 0
    model.on_epoch_start(1, trainer.view_gen)
    for index, batch in enumerate(trainer.batches()):
        if index == trainer.cfg.train.max_batches:
            break
        trainer.step(batch)
        rows += len(batch)
    return time.perf_counter() - started, rows


def time_textbook(trainer: Trainer, args: argparse.Namespace, warmup: int) -> tuple[float, int]:
    """Seconds and rows of the textbook FM over the same number of batches of the same rows."""
    features, labels = trainer.point_features, trainer.point_labels
    model = TextbookFM(trainer.dataset.fields.space.num_features, args.dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)
    generator = torch.Generator().manual_seed(0)

    def step(index: torch.Tensor) -> None:
        loss = (model(features[index]) - labels[index]).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for index, rows in enumerate(row_batches(len(labels), args.batch_size, generator)):
        if index == warmup:
            break
        step(rows)
    started, count = time.perf_counter(), 0
    for index, rows in enumerate(row_batches(len(labels), args.batch_size, generator)):
        if index == args.batches:
            break
        step(rows)
        count += len(rows)
    return time.perf_counter() - started, count


def main() -> None:
    """Measure every entry once, print a markdown table and the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data-prepared/frappe-nfm", help="prepared frappe-nfm folder")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--batches", type=int, default=150, help="timed batches per entry (after 5 untimed)")
    parser.add_argument("--dim", type=int, default=64, help="embedding size")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as output_dir:
        dataset = load_dataset(config({"name": "fm"}, args, output_dir))
        results = {}
        for label, model in ENTRIES.items():
            trainer = Trainer(config(model, args, output_dir), dataset=dataset)
            if not results:
                seconds, rows = time_textbook(trainer, args, warmup=5)
                results["textbook PyTorch FM (nn.Embedding, MSE)"] = rows / seconds
            seconds, rows = time_graphrec(trainer, warmup=5)
            results[label] = rows / seconds
    base = next(iter(results.values()))
    print(f"frappe-nfm train rows, batch {args.batch_size}, embedding {args.dim}, {args.threads} thread(s), "
          f"{args.batches} timed batches each")
    print("| model | rows/s | vs textbook FM |\n|---|---:|---:|")
    for label, speed in results.items():
        print(f"| {label} | {speed:,.0f} | {speed / base:.2f}x |")
    print(json.dumps({"environment": environment(args.threads), "batch_size": args.batch_size, "dim": args.dim,
                      "rows_per_second": results}, indent=1))


if __name__ == "__main__":
    main()
