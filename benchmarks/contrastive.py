"""Epoch time of the contrastive models relative to LightGCN at the same batch size and depth, from timed batches.

    python -m benchmarks.contrastive --data gowalla --batch-size 2048 --threads 1 --clock cpu [--profile 3]
    python -m benchmarks.contrastive --device cuda --data-path gowalla-copy/ [--peak-memory]   # on a GPU

Every model trains on the same dataset object with Trainer.step, in alternating rounds (so background load hits all
alike); an epoch is estimated as the median step time x batches per epoch + the epoch's view drawing
(on_epoch_start). `--clock cpu` times the process's CPU seconds instead of wall seconds (steadier when other jobs
share the cores). `--profile N` then prints torch.profiler's top operators over N more steps of each model. The
data block (and the validation carve) is the one of experiments/sgl-<data>.yaml; `--data-path` points it at a copy
of that dataset's folder (the device machine has no ../shared). On `--device cuda` every clock read waits for the
GPU (torch.cuda.synchronize), and `--peak-memory` reports torch's peak of allocated GPU memory beside the RSS.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .common import CLOCKS, REPO, Timing, peak_rss_mib
from .dense_floor import contrastive_products, gflops, time_products
from .workloads import interleaved

MODELS = {  # label -> (model keys, train keys); 2 layers everywhere, as the contrastive models' defaults
    "lightgcn": ({"name": "lightgcn", "num_layers": 2}, {}),
    "sgl": ({"name": "sgl"}, {}),
    "sgcl": ({"name": "sgcl"}, {}),
    "sgcl+mixgcf": ({"name": "sgcl", "mixgcf": True}, {"negative_candidates": 40}),
    "simgcl": ({"name": "simgcl"}, {}),
    "xsimgcl": ({"name": "xsimgcl"}, {}),
}


def build_trainers(data: str, batch_size: int, threads: int, folder: Path, models: Sequence[str],
                   device: str = "cpu", data_path: Optional[str] = None) -> dict:
    """One Trainer per model label over one shared dataset, run folders under `folder`."""
    from graphrec.config import build_config, read_yaml
    from graphrec.data.loader import load_dataset
    from graphrec.trainer import Trainer
    base = read_yaml(REPO / "experiments" / f"sgl-{data}.yaml")
    data_block = {**base["data"], **({"path": str(Path(data_path).resolve())} if data_path else {})}
    raw = {"seed": 2020, "device": device, "data": data_block, "split": base.get("split", {}),
           "train": {"batch_size": batch_size, "threads": threads, "progress": False}, "output_dir": str(folder)}
    dataset = None
    trainers = {}
    for label in models:
        model, train = MODELS[label]
        cfg = build_config({**raw, "model": model, "train": {**raw["train"], **train}}, base_dir=str(REPO))
        dataset = dataset or load_dataset(cfg)
        trainers[label] = Trainer(cfg, run_dir=folder / label, dataset=dataset)
    return trainers


def endless_batches(trainer):
    """The trainer's training batches, epoch after epoch (so any number of timed steps fits any dataset)."""
    while True:
        yield from trainer.batches()


def measure(trainers: dict, rounds: int, per_round: int, warmup: int, clock=time.perf_counter) -> dict:
    """Per model: step Timing, view-drawing seconds, batches per epoch and the estimated epoch seconds."""
    streams, draws = {}, {}
    for label, trainer in trainers.items():
        started = clock()
        trainer.model.on_epoch_start(0, trainer.view_gen)
        draws[label] = clock() - started
        streams[label] = endless_batches(trainer)
        trainer.model.train()
        for _ in range(warmup):
            trainer.step(next(streams[label]))
    steps = interleaved({label: (lambda t=trainer, s=streams[label]: t.step(next(s)), per_round)
                         for label, trainer in trainers.items()}, rounds, clock)
    out = {}
    for label, trainer in trainers.items():
        batches = trainer._epoch_batches()
        timing: Timing = steps[label]
        out[label] = {"step_median_s": timing.median, "step_mean_s": timing.mean, "steps": timing.n,
                      "view_draw_s": draws[label], "batches_per_epoch": batches,
                      "epoch_estimate_s": timing.median * batches + draws[label]}
        products = contrastive_products(trainer.model, next(streams[label])) if label != "lightgcn" else []
        dense_s = time_products(products, clock, device=trainer.device) if products else 0.0
        out[label].update(dense_gflop=gflops(products), dense_s=dense_s)
    reference = out["lightgcn"]["epoch_estimate_s"] if "lightgcn" in out else None
    step = out["lightgcn"]["step_median_s"] if "lightgcn" in out else None
    for row in out.values():
        row["vs_lightgcn"] = row["epoch_estimate_s"] / reference if reference else None
        row["dense_vs_lightgcn_step"] = row["dense_s"] / step if step else None
    return out


def profile(trainers: dict, steps: int, rows: int = 12) -> str:
    """torch.profiler's top operators by self CPU time over `steps` further steps of each model, as text."""
    from torch.profiler import ProfilerActivity, profile as torch_profile
    parts = []
    for label, trainer in trainers.items():
        stream = endless_batches(trainer)
        batches = [next(stream) for _ in range(steps)]
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches:
                trainer.step(batch)
        parts.append(f"== {label} ({steps} steps)\n" + prof.key_averages().table(sort_by="self_cpu_time_total",
                                                                                row_limit=rows))
    return "\n".join(parts)


def synced(clock: Callable[[], float], device: str) -> Callable[[], float]:
    """`clock`, reading only after the GPU's queued work is done when `device` is CUDA (else `clock` itself)."""
    if not device.startswith("cuda"):
        return clock

    def read() -> float:
        torch.cuda.synchronize()
        return clock()
    return read


def table(results: dict) -> str:
    """A markdown table of the measurement."""
    lines = ["| model | s / batch (median) | views s / epoch | batches / epoch | epoch s (est.) | x LightGCN "
             "| loss's dense products: GFLOP / batch | their s alone | x LightGCN's step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, row in results.items():
        ratio, floor = (f"{row[key]:.2f}" if row[key] is not None else "-"
                        for key in ("vs_lightgcn", "dense_vs_lightgcn_step"))
        lines.append(f"| {label} | {row['step_median_s']:.3f} | {row['view_draw_s']:.2f} | {row['batches_per_epoch']} "
                     f"| {row['epoch_estimate_s']:.1f} | {ratio} | {row['dense_gflop']:.2f} | {row['dense_s']:.3f} "
                     f"| {floor} |")
    return "\n".join(lines)


def peak_memory(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run every model of --models alone in a fresh process and print its peak RSS after setup and after training."""
    import subprocess
    passed = [a for a in argv if a not in ("--peak-memory",)]
    lines = ["| model | peak RSS after setup (MiB) | peak RSS after training (MiB) | training adds (MiB) "
             "| peak GPU memory allocated (MiB) |", "|---|---|---|---|---|"]
    for label in args.models.split(","):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "result.json"
            subprocess.run([sys.executable, "-m", "benchmarks.contrastive", *passed, "--models", label, "--out",
                            str(out)], check=True, stdout=subprocess.DEVNULL)
            row = json.loads(out.read_text())["results"][label]
        setup, peak = row["peak_rss_after_setup_mib"], row["peak_rss_mib"]
        gpu = row.get("cuda_peak_allocated_mib")
        gpu_text = "-" if gpu is None else f"{gpu:.0f}"
        lines.append(f"| {label} | {setup:.0f} | {peak:.0f} | {peak - setup:.0f} | {gpu_text} |")
    print("\n".join(lines))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print the table, and write the numbers as JSON when --out is given."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contrastive", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="gowalla", help="gowalla, ood-yelp2018 or yahoo (experiments/sgl-<data>.yaml)")
    parser.add_argument("--data-path", help="the dataset's folder, instead of the YAML's path under GRAPHREC_DATA")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the clock then waits for the GPU)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated labels of " + ", ".join(MODELS))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall seconds or process CPU seconds")
    parser.add_argument("--profile", type=int, default=0, help="then profile this many steps of each model")
    parser.add_argument("--peak-memory", action="store_true", help="instead: each model alone in a fresh process "
                        "(--rounds x --per-round steps), its peak RSS after setup and after training")
    parser.add_argument("--out", help="write the numbers and settings as JSON here")
    args = parser.parse_args(argv)
    if args.peak_memory:
        return peak_memory(args, sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        trainers = build_trainers(args.data, args.batch_size, args.threads, Path(folder), args.models.split(","),
                                  args.device, args.data_path)
        setup_rss = peak_rss_mib()
        results = measure(trainers, args.rounds, args.per_round, args.warmup,
                          synced(CLOCKS[args.clock], args.device))
        gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if args.device.startswith("cuda") else None
        for row in results.values():
            row.update(peak_rss_after_setup_mib=setup_rss, peak_rss_mib=peak_rss_mib(), cuda_peak_allocated_mib=gpu)
        print(table(results))
        if args.profile:
            print(profile(trainers, args.profile))
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
