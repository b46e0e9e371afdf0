"""Boundary rows and balance of the partitioners of train.distributed: partitioned, on Gowalla and the 1M synthetic.

    python -m benchmarks.partition_quality --data ../shared/data/gowalla
    python -m benchmarks.partition_quality            # the 1M-event synthetic graph of benchmarks.partitioned

Prints a markdown row per (ranks, partitioner): halo rows received per layer summed over ranks (each 4 * dim bytes
forward and again backward), that as a share of ranges', the largest rank's adjacency entries over an equal share,
and the seconds the partitioner took.
"""
from __future__ import annotations

import argparse
import time

import torch

from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.graph.partitioned import balanced_owner, label_propagation_owner
from graphrec.trainer import apply_protocol

from .partitioned import CONFIG


def halo_rows(owner: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> int:
    """Rows all ranks receive per layer: for each rank, the distinct remote endpoints of its rows' entries."""
    remote = owner[rows] != owner[cols]
    return len(torch.unique(owner[rows[remote]] * len(owner) + cols[remote]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a dataset folder (default: the synthetic graph)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    raw = CONFIG if args.data is None else {"name": "quality", "data": {"path": args.data},
                                            "model": {"name": "lightgcn"}}
    cfg = build_config({**raw, "output_dir": "unused"}, source="benchmark")
    dataset = apply_protocol(cfg, load_dataset(cfg))
    users = torch.from_numpy(dataset.train.user).long()
    items = torch.from_numpy(dataset.train.item).long() + dataset.num_users
    rows, cols = torch.cat([users, items]), torch.cat([items, users])
    degree = torch.bincount(rows, minlength=dataset.num_users + dataset.num_items)
    print(f"{args.data or 'synthetic'}: {len(degree)} nodes, {len(rows)} adjacency entries")
    print("| ranks | partitioner | halo rows per layer | vs ranges | largest rank / equal share | seconds |")
    print("|---|---|---|---|---|---|")
    for world in args.ranks:
        started = time.perf_counter()
        ranges = balanced_owner(degree, dataset.num_users, world)
        seconds = {"ranges": time.perf_counter() - started}
        started = time.perf_counter()
        propagated = label_propagation_owner(rows, cols, degree, ranges, world)
        seconds["label_propagation"] = time.perf_counter() - started + seconds["ranges"]
        base = halo_rows(ranges, rows, cols)
        for name, owner in (("ranges", ranges), ("label_propagation", propagated)):
            halo = halo_rows(owner, rows, cols)
            load = torch.bincount(owner, weights=degree.double(), minlength=world)
            print(f"| {world} | {name} | {halo:,} | {halo / base:.2f} | {load.max().item() * world / len(rows):.3f} "
                  f"| {seconds[name]:.2f} |")


if __name__ == "__main__":
    main()
