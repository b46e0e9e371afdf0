"""`graphrec sweep`: a sweep file online or --offline (all its runs, --count N or --trials 7-11), --dry-run, and
`graphrec sweep --resume DIR`."""
from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import GraphrecError


def add_parser(subparsers) -> None:
    """Add the `sweep` subcommand to an argparse subparsers object."""
    sweep = subparsers.add_parser("sweep", help="run a W&B sweep YAML online (wandb.agent) or --offline (locally)")
    sweep.add_argument("sweep_file", nargs="?", help="sweep YAML, e.g. experiments/sweeps/lightgcn-quickstart.yaml")
    sweep.add_argument("--count", type=int, help="runs in the sweep in all (default for grid: every combination)")
    sweep.add_argument("--offline", action="store_true", help="propose locally, no W&B login or network")
    sweep.add_argument("--workers", type=int, default=1, help="offline: runs at once, cores split between them")
    sweep.add_argument("--threads", type=int, help="offline: threads per run (default: cores // workers; 1 on a "
                       "machine other jobs already keep busy)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key in every run, e.g. --set train.epochs=5 (repeatable)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue an offline sweep folder")
    sweep.add_argument("--retry-failed", action="store_true", help="with --resume: run the failed runs again from "
                       "scratch with their parameters (after a fix; their old run folders stay, marked failed)")
    sweep.add_argument("--trials", metavar="TRIALS", help="offline grid or random sweep: run only these proposals, "
                       "e.g. 7-11 or 0,3 (run r007-r011 or r000 and r003, each with its parameters in the whole "
                       "sweep); replaces --count; with --resume, the folder's trials from now on (every run it "
                       "has begun kept), so that the others can run in another folder at once")
    sweep.add_argument("--dry-run", action="store_true", help="print the `graphrec train` command of each run an "
                       "offline grid or random sweep would start (exact values), start none, write nothing")
    sweep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep the arguments describe; 0 when every run was launched and recorded."""
    if args.resume and args.sweep_file:
        raise GraphrecError(f"pass either a sweep file or --resume {args.resume}, not both (a resumed sweep keeps "
                            "its own sweep.yaml)")
    from .agent import check_retry_failed
    check_retry_failed(args.retry_failed, bool(args.resume))  # before --dry-run and the online path ignore it
    if args.dry_run:
        return _dry_run(args)
    if args.offline or args.resume:
        from .agent import run_offline
        folder = run_offline(args.sweep_file, args.count, args.workers, args.set,
                             sweep_dir=args.resume, resume=bool(args.resume), threads=args.threads,
                             retry_failed=args.retry_failed, trials=args.trials)
        print(f"sweep folder: {folder}")
        print(f"best runs: graphrec report {folder} --best <metric>", file=sys.stderr)
        return 0
    if args.sweep_file is None:
        raise GraphrecError("graphrec sweep needs a sweep file, e.g. graphrec sweep "
                            "experiments/sweeps/lightgcn-quickstart.yaml --count 12 --offline")
    if args.trials is not None:
        raise GraphrecError(f"--trials {args.trials} needs --offline (W&B's agent proposes the online runs)")
    if args.workers != 1 or args.threads is not None:
        raise GraphrecError("--workers and --threads need --offline; online, start one graphrec sweep per machine "
                            "instead and set train.threads with --set")
    from .online import run_online
    print(f"W&B sweep: {run_online(args.sweep_file, args.count, args.set)}")
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    """Print each planned run as `rNNN  graphrec train ...`; 0."""
    if args.resume or args.sweep_file is None:
        raise GraphrecError("--dry-run lists the runs of a new sweep: graphrec sweep SWEEP.yaml --count N --dry-run "
                            "(a sweep folder's runs are in its runs.jsonl)")
    from .agent import plan_offline
    for run_id, train_args in plan_offline(args.sweep_file, args.count, args.set, args.trials):
        print(f"{run_id}  graphrec {shlex.join(train_args)}")
    return 0
