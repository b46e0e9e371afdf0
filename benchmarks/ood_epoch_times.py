"""Epoch time of the OOD models against LightGCN, measured in one process on one dataset (docs/ood-models.md).

    python -m benchmarks.ood_epoch_times --dataset ood-food --threads 1 --rounds 3 --batches 5
    python -m benchmarks.ood_epoch_times --memory gowalla --batches 3

Each model's trainer is built from experiments/<model>-<dataset>.yaml over one shared dataset; rounds interleave the
models (a few pairwise batches of each, then whole-graph steps of the pre-training stages), so drift of the machine
hits them alike. An epoch's time is the median batch time x batches per epoch (+ pre-training is reported apart); the
ratio to LightGCN is given for wall and for CPU time (1 thread: the CPU time is the work, whatever the load).
With --memory DATA, each OOD model instead runs in a fresh process on DATA (model keys from its ood-yelp2018 file):
one whole-graph pre-training step, `batches` pairwise batches, then an evaluation of the test split (the reverse chain
over all nodes and the ranking); the table gives each process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from graphrec.config import load_config
from graphrec.data.loader import load_dataset
from graphrec.trainer import Trainer

MODELS = ("lightgcn", "lightgcn-dro", "drgo", "causaldiffrec")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def timed(step) -> tuple[float, float]:
    """Wall and CPU seconds of one call of `step` (CPU time of this process: on a shared machine it is not inflated
    by waiting for a core, which wall time is)."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def memory_worker(model: str, data: str, threads: int, batches: int) -> dict:
    """Peak RSS (MiB) and seconds of one pre-training step, `batches` pairwise batches and a test evaluation of
    `model` on `data`, in this process."""
    overrides = [f"train.threads={threads}", "train.progress=false", f"output_dir={tempfile.mkdtemp()}", "device=cpu",
                 f"data.path={data}", "split.valid_ratio=0"]  # the whole training file is the graph
    trainer = Trainer(load_config(EXPERIMENTS / f"{model}-ood-yelp2018.yaml", overrides))
    peaks = {"setup": peak_rss_mib()}
    start = time.perf_counter()
    trainer.model.train()
    trainer.step(next(trainer.batches()))  # epoch 0: the whole-graph pre-training stage
    peaks["pre-training step"] = peak_rss_mib()
    trainer.state.epoch = trainer.stages[0].epochs
    trainer.model.on_epoch_start(trainer.state.epoch, trainer.view_gen)
    stream = trainer.batches()
    for _ in range(batches):
        trainer.step(next(stream))
    train_s = time.perf_counter() - start
    peaks["pairwise batches"] = peak_rss_mib()
    trainer.model.eval()
    trainer.evaluate(["test"])
    peaks["evaluation"] = peak_rss_mib()
    return {"peaks": peaks, "train_s": train_s, "eval_s": time.perf_counter() - start - train_s,
            "edges": len(trainer.model.graph.users)}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_table(data: str, threads: int, batches: int) -> None:
    """Print the peak RSS of each OOD model's short run on `data`, each in a fresh process."""
    phases = ("setup", "pre-training step", "pairwise batches", "evaluation")
    print("| model | training edges | " + " | ".join(f"peak RSS after {p} (MiB)" for p in phases)
          + f" | pre-training step + {batches} batches (s) | test evaluation (s) |")
    print("|---|---|" + "---|" * len(phases) + "---|---|")
    for model in ("drgo", "causaldiffrec"):
        out = Path(tempfile.mkdtemp()) / "result.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, "-m", "benchmarks.ood_epoch_times", "--memory-worker", model, "--memory", data,
                        "--threads", str(threads), "--batches", str(batches), "--out", str(out)], env=env, check=True)
        r = json.loads(out.read_text())
        peaks = " | ".join(f"{r['peaks'][p]:.0f}" for p in phases)
        print(f"| {model} | {r['edges']} | {peaks} | {r['train_s']:.1f} | {r['eval_s']:.1f} |")


def main() -> None:
    """Print a markdown table of per-batch, per-epoch and pre-training times and the ratio to LightGCN's epoch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ood-food")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5, help="pairwise batches per model and round")
    parser.add_argument("--memory", metavar="DATA", help="peak RSS of a short run of each OOD model on DATA instead")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        torch.set_num_threads(args.threads)
        Path(args.out).write_text(json.dumps(memory_worker(args.memory_worker, args.memory, args.threads,
                                                           args.batches)))
        return
    if args.memory:
        memory_table(args.memory, args.threads, args.batches)
        return
    load, out = os.getloadavg()[0], tempfile.mkdtemp()
    overrides = [f"train.threads={args.threads}", "train.progress=false", f"output_dir={out}", "device=cpu"]
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
    print(f"dataset {args.dataset}, {dataset.train.user.size} training events, torch threads "
          f"{torch.get_num_threads()}, {args.rounds} rounds x {args.batches} batches, 1-min load average "
          f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end\n")
    print("| model | batch wall (ms) | batch CPU (ms) | batches / epoch | epoch wall (s) | x LightGCN wall | "
          "x LightGCN CPU | pre-training step wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    base = [statistics.median(t[i] for t in main_times["lightgcn"]) for i in (0, 1)]
    for name, trainer in trainers.items():
        wall, cpu = (statistics.median(t[i] for t in main_times[name]) for i in (0, 1))
        graph = f"{statistics.median(t[0] for t in graph_times[name]):.2f}" if graph_times[name] else "-"
        print(f"| {name} | {wall * 1000:.1f} | {cpu * 1000:.1f} | {trainer._epoch_batches()} | "
              f"{wall * trainer._epoch_batches():.2f} | {wall / base[0]:.2f} | {cpu / base[1]:.2f} | {graph} |")


if __name__ == "__main__":
    main()
