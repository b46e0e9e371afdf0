"""Training-step time of LightGCN on a synthetic 1M-event graph: one process vs data-parallel vs row-partitioned.

    python -m benchmarks.partitioned --setup single --procs 1 --threads 2
    python -m benchmarks.partitioned --setup data --procs 2 --threads 1
    python -m benchmarks.partitioned --setup partitioned --procs 2 --threads 1

Each process builds the run's Trainer, trains `--warmup` batches, then times `--batches` training steps (ranks meet
at a barrier before and after); prints one JSON line: the median step, the epoch estimate (median step x global
batches per epoch), and for a single process the seconds per adjacency entry of one (num_nodes, 64) product, for
partitioned the halo rows each rank receives per layer (4 * dim bytes each, the same again backward).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.multiprocessing as mp

from graphrec.config import build_config
from graphrec.trainer import Trainer, ddp_loss_scale

CONFIG = {
    "name": "partitioned-bench", "seed": 2020, "device": "cpu",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 52000, "num_items": 26000, "num_communities": 20, "mean_degree": 25,
                           "seed": 7}},
    "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.2},
    "model": {"name": "lightgcn", "embedding_dim": 64, "num_layers": 3},
    "train": {"batch_size": 2048, "lr": 0.005, "progress": False},
    "tracking": {"mode": "disabled"},
}


def measure(rank: int, world: int, setup: str, threads: int, warmup: int, batches: int, out_dir: str,
            partitioner: str = "label_propagation") -> dict:
    """Median training-step seconds of this rank (and the graph facts) under one setup."""
    cfg = build_config({**CONFIG, "output_dir": out_dir,
                        "train": {**CONFIG["train"], "threads": threads, "partitioner": partitioner,
                                  "distributed": "none" if setup == "single" else setup}}, source="benchmark")
    trainer = Trainer(cfg)
    world_for_scale = world if setup == "data" else 1
    steps, stream = [], trainer.batches()
    for index in range(warmup + batches):
        batch = next(stream)
        trainer.dist.barrier()
        start = time.perf_counter()
        trainer.step(batch, ddp_loss_scale(len(batch), cfg.train.batch_size, world_for_scale) if world > 1 else 1.0)
        trainer.dist.barrier()
        if index >= warmup:
            steps.append(time.perf_counter() - start)
    step = statistics.median(steps)
    events = len(trainer.train_users)
    out = {"setup": setup, "partitioner": partitioner, "procs": world, "threads": threads, "train_events": events,
           "nodes": trainer.dataset.num_users + trainer.dataset.num_items, "step_s": step,
           "steps_s": [round(s, 4) for s in steps], "epoch_s_estimate": step * -(-events // cfg.train.batch_size),
           "load_avg": os.getloadavg()[0]}
    partition = trainer.model.partition
    if partition is not None:
        out.update(halo_rows=partition.halo_rows(), owned_rows=len(partition.owned), block_nnz=partition.nnz,
                   table_rows=trainer.model.embedding.shape[0])
    elif setup == "single":
        adj, x = trainer.model.graph, torch.randn(out["nodes"], 64)
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            torch.sparse.mm(adj.csr, x)
            timings.append(time.perf_counter() - start)
        out.update(nnz=adj.nnz, spmm_s=statistics.median(timings), s_per_nnz=statistics.median(timings) / adj.nnz)
    trainer._release(discard=True)
    trainer.dist.close()
    return out


def _rank(rank: int, world: int, port: int, args, results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    results[rank] = measure(rank, world, args.setup, args.threads, args.warmup, args.batches, args.out,
                            args.partitioner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=["single", "data", "partitioned"], required=True)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--partitioner", choices=["label_propagation", "ranges"], default="label_propagation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        args.out = out
        if args.procs == 1:
            print(json.dumps(measure(0, 1, args.setup, args.threads, args.warmup, args.batches, out,
                                     args.partitioner)))
            return
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with mp.Manager() as manager:
            results = manager.dict()
            mp.start_processes(_rank, args=(args.procs, port, args, results), nprocs=args.procs, start_method="fork")
            ranks = [results[r] for r in range(args.procs)]
    slowest = max(ranks, key=lambda r: r["step_s"])
    kept = ("step_s", "halo_rows", "owned_rows", "table_rows", "block_nnz")
    print(json.dumps({**slowest, "ranks": [{k: r[k] for k in r if k in kept} for r in ranks]}))


if __name__ == "__main__":
    main()
