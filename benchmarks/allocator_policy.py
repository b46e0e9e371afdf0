"""`alloc`: LightGCN training steps on synthetic graphs under each large-buffer memory policy (graphrec/allocator.py),
each size and policy in a fresh process: wall and CPU seconds per step, peak RSS."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from .common import Table, environment, fmt_count, fmt_mib, fmt_s, parse_count, publish, run_worker

POLICIES = {
    "default: heap keeps buffers <= 512 MiB, huge pages above": {},
    "heap keeps buffers <= 512 MiB, no huge pages": {"THP_MEM_ALLOC_ENABLE": "0"},
    "heap keeps buffers <= 1024 MiB, no huge pages (default before 2026-12-04)":
        {"GRAPHREC_MALLOC_KEEP_MIB": "1024", "THP_MEM_ALLOC_ENABLE": "0"},
    "glibc's defaults (GRAPHREC_MALLOC_TUNING=0)": {"GRAPHREC_MALLOC_TUNING": "0"},
}
DEFAULT_POLICY = next(iter(POLICIES))  # graphrec's own policy: the environment adds nothing


def policy_numbers(text: str) -> list[int]:
    """`--policies 1,3` as [1, 3]; anything but numbers of POLICIES is argparse's one-line usage error."""
    try:
        picks = [int(p) for p in text.split(",")]
    except ValueError:
        picks = []
    if not picks or not all(1 <= p <= len(POLICIES) for p in picks):
        raise argparse.ArgumentTypeError(f"expected numbers from 1 to {len(POLICIES)}, e.g. 1,3; got {text!r}")
    return picks


def run(args: argparse.Namespace) -> int:
    sizes = [parse_count(s) for s in (args.sizes or ("30k" if args.quick else "10M,30M")).split(",")]
    table = Table("Large-buffer memory policies (graphrec LightGCN training steps, dim 64, 3 layers, ~400 batches "
                  "per epoch)", ["target", "policy", "adjacency nnz", "step: wall (median)", "step: CPU (median)",
                             "page faults per step (median)", "peak RSS"])
    rows: list[dict[str, Any]] = []
    chosen = [list(POLICIES.items())[p - 1] for p in args.policies]
    for size in sorted(sizes):
        label = fmt_count(size)
        for name, env in chosen:
            print(f"{label}, {name}: fresh process ...", flush=True)
            spec = {"size": size, "batches": 2 if args.quick else args.steps, "warmup": 2, "eval": False}
            r = run_worker("scale_one", spec, args.threads, timeout=args.timeout, env=env)
            rows.append({"label": label, "policy": name, **{k: r.get(k) for k in (
                "nnz", "batch_s", "batch_cpu_s", "batch_faults", "peak_rss_mib", "error")}})
            if "error" in r:
                table.add(label, name, "", "", "", "", r["error"])
                continue
            table.add(label, name, f"{r['nnz']:,}", fmt_s(statistics.median(r["batch_s"])),
                      fmt_s(statistics.median(r["batch_cpu_s"])), f"{statistics.median(r['batch_faults']):,.0f}",
                      fmt_mib(r["peak_rss_mib"]))
    table.notes.append("Data and batch size as in the scale benchmark (graphrec.data.synthetic, ~400 batches per "
                       "epoch); timed steps after 2 warm-up steps. Peak RSS = ru_maxrss of the process (data, "
                       "adjacency, model, Adam state, the steps). CPU = process time of the step (all threads); "
                       "page faults = the process's minor faults during the step (each first touch of a fresh 4 KiB "
                       "page, or of a 2 MiB huge page).")
    publish("alloc", [table], environment(args.threads), {"rows": rows}, write=not (args.quick or args.no_write))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default=None, help="training events per graph, e.g. 10M,30M (default)")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per size and policy")
    parser.add_argument("--policies", type=policy_numbers, default=list(range(1, len(POLICIES) + 1)),
                        help=f"comma-separated policy numbers to run, 1-{len(POLICIES)} in the table's order "
                        "(default: all)")
    parser.add_argument("--timeout", type=float, default=3000.0, help="seconds per size and policy")
