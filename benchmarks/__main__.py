"""python -m benchmarks <epoch|eval|scale|memory|alloc|tta|profile|ood|knn> [--data DIR] [--quick] [--threads 2]
[--no-write]"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Optional, Sequence

COMMANDS = {
    "epoch": "per-batch and per-epoch LightGCN training time: graphrec vs PyG vs RecBole vs the SpMM floor",
    "eval": "full-ranking evaluation of all test users: graphrec vs RecBole vs a dense reference (metrics checked)",
    "scale": "synthetic graphs of growing size: ns per adjacency non-zero, epoch time, peak RSS, evaluation",
    "memory": "peak RSS of training and of evaluation, each in a fresh process",
    "alloc": "training steps at 10M and 30M events under each large-buffer memory policy: time and peak RSS",
    "tta": "time until test Recall@20 first reaches a target (paper protocol), with the curve as CSV and PNG; "
           "--protocol refit: epochs selected on valid, one timed run on train + valid",
    "profile": "torch.profiler of graphrec training batches: the top operators",
    "ood": "OOD evaluation targets: a popularity split of 30M events and graphrec report over 100 run folders",
    "knn": "cosine kNN item graph of 100k synthetic items x 384-d (wall, CPU, peak RSS) and graphrec features text "
           "throughput",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from . import allocator_policy, epoch, evaluation, knn, memory, ood, profile, scale, tta
    modules = {"epoch": epoch, "eval": evaluation, "scale": scale, "memory": memory, "alloc": allocator_policy,
               "tta": tta, "profile": profile, "ood": ood, "knn": knn}
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data", default=None, help="LightGCN-format folder (train.txt, test.txt), e.g. "
                       "/work/shared/data/gowalla; default: $GRAPHREC_DATA/gowalla")
        p.add_argument("--quick", action="store_true", help="small synthetic data, no RecBole, no docs, < 1 minute")
        p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
        p.add_argument("--no-write", action="store_true", help="print only; do not append to docs/benchmarks.md")
        p.add_argument("--device", default="cpu", help="graphrec's device (cpu, cuda); the references (SpMM floor, "
                       "PyG, RecBole, dense ranking check) stay on the CPU")
        p.add_argument("--omp-wait", choices=["passive", "active", "default"], default="passive",
                       help="OMP_WAIT_POLICY for this run and its subprocesses (default passive: robust on a busy "
                       "machine; 'default' leaves the environment alone)")
        modules[name].add_arguments(p)
        p.set_defaults(run=modules[name].run)
    return parser


def default_data() -> Optional[str]:
    """$GRAPHREC_DATA/gowalla, else ../shared/data/gowalla next to the repo, if it exists."""
    from .common import REPO
    for base in (os.environ.get("GRAPHREC_DATA"), REPO.parent / "shared" / "data"):
        if base and os.path.isdir(os.path.join(base, "gowalla")):
            return os.path.join(base, "gowalla")
    return None


def set_omp_wait_policy(argv: list[str]) -> None:
    """Apply --omp-wait (default passive) as OMP_WAIT_POLICY before torch is imported; children inherit it.

    On a shared machine, OpenMP's default of spinning while waiting for a descheduled sibling thread inflated
    2-thread batch times by 3-40x in our runs (PyG most); passive waiting keeps the ratios meaningful.
    """
    choice = "passive"
    for i, arg in enumerate(argv):
        if arg == "--omp-wait" and i + 1 < len(argv):
            choice = argv[i + 1]
        elif arg.startswith("--omp-wait="):
            choice = arg.split("=", 1)[1]
    explicit = any(a == "--omp-wait" or a.startswith("--omp-wait=") for a in argv)
    if choice == "default":
        if explicit:
            os.environ.pop("OMP_WAIT_POLICY", None)
        return
    if explicit or "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = choice.upper()  # in-process callers that already imported torch (tests):
        # only their subprocesses see it


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["_worker"]:
        set_omp_wait_policy(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
    if argv[:1] == ["_worker"]:  # internal: python -m benchmarks _worker KIND SPEC_JSON OUT THREADS
        from .workers import run_worker_main
        return run_worker_main(argv[1], json.loads(argv[2]), argv[3], int(argv[4]))
    args = build_parser().parse_args(argv)
    from .common import START_LOAD
    START_LOAD[0] = os.getloadavg()[0]
    if args.quick:
        args.data = None
    elif args.data is None and args.command not in ("scale", "knn"):
        args.data = default_data()
        if args.data is None:
            print("benchmarks: no --data given and no gowalla folder under $GRAPHREC_DATA; pass --data DIR "
                  "or --quick", file=sys.stderr)
            return 2
    if args.data is not None and not os.path.isfile(os.path.join(args.data, "train.txt")):
        print(f"benchmarks: --data {args.data} has no train.txt (LightGCN format: train.txt, test.txt)",
              file=sys.stderr)
        return 2
    os.environ["GRAPHREC_BENCH_DEVICE"] = args.device  # graphrec_config reads it, in this process and in workers
    from graphrec.allocator import tune_allocator
    tune_allocator()  # what graphrec's Trainer does; applied before any reference runs in this process
    from graphrec.errors import GraphrecError
    try:
        return int(args.run(args) or 0)
    except GraphrecError as err:  # a bad --model, --model-set or data: graphrec's own one-line message
        print(f"benchmarks: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
