"""`profile`: torch.profiler over graphrec LightGCN training batches; the operators that take the time."""
from __future__ import annotations

import argparse

from .common import Table, environment, fmt_s, publish, set_threads
from .workloads import GraphrecSession


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    from torch.profiler import ProfilerActivity, profile, record_function
    session = GraphrecSession(args.data, args.threads, quick=args.quick)
    batches = session.batches()
    for _ in range(2 if args.quick else 5):
        session.step(next(batches))
    n = 2 if args.quick else args.batches
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            batch = next(batches)
            with record_function("graphrec_training_batch"):
                session.step(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)  # microseconds of self time, all operators
    batch_us = next((e.cpu_time_total for e in events if e.key == "graphrec_training_batch"), total)
    table = Table(f"torch.profiler: top operators by self CPU time over {n} graphrec training batches "
                  f"({session.dataset.name}, batch {session.cfg.train.batch_size})",
                  ["operator", "self CPU per batch", "share of batch", "calls per batch"])
    top = sorted((e for e in events if e.key != "graphrec_training_batch"), key=lambda e: -e.self_cpu_time_total)
    for e in top[:args.top]:
        table.add(e.key, fmt_s(e.self_cpu_time_total / n / 1e6), f"{100 * e.self_cpu_time_total / batch_us:.1f}%",
                  f"{e.count / n:g}")
    table.notes.append(f"one batch = {fmt_s(batch_us / n / 1e6)} under the profiler (profiling adds overhead). "
                       "Custom autograd functions appear under their own names (e.g. _WeightedPropagation); their "
                       "SpMMs show as aten::addmm / aten::_sparse_addmm or the MKL sparse kernels.")
    publish("profile", [table], environment(args.threads), {"batch_s": batch_us / n / 1e6,
            "top": [[e.key, e.self_cpu_time_total / n / 1e6] for e in top[:args.top]]},
            write=not (args.quick or args.no_write))
    session.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
