"""The `graphrec` command: train | eval | models | data info."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import GraphrecError


def format_table(metrics: dict[str, float]) -> str:
    """Metrics '<split>/<metric>@<K>' as one row per split and metric, one column per K."""
    rows: dict[tuple[str, str], dict[int, float]] = {}
    for key, value in metrics.items():
        if "/" not in key or "@" not in key:
            continue
        split, metric = key.split("/", 1)
        name, k = metric.split("@")
        rows.setdefault((split, name), {})[int(k)] = value
    ks = sorted({k for row in rows.values() for k in row})
    lines = [f"{'split':<10} {'metric':<10} " + " ".join(f"{'@' + str(k):>8}" for k in ks)]
    for (split, name), row in rows.items():
        lines.append(f"{split:<10} {name:<10} " + " ".join(f"{row.get(k, float('nan')):>8.4f}" for k in ks))
    extras = {k: v for k, v in metrics.items() if "@" not in k and "/" not in k}
    if extras:
        lines.append("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in extras.items()))
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config, load_config, read_yaml, apply_overrides
    from .trainer import Trainer
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise GraphrecError(f"--resume '{run_dir}' is not a run folder (no config.yaml)")
        if args.config:
            cfg = load_config(args.config, args.set)
        else:
            raw = apply_overrides(read_yaml(run_dir / "config.yaml"), args.set)
            cfg = build_config(raw, source=str(run_dir / "config.yaml"), base_dir=str(run_dir))
        trainer = Trainer(cfg, run_dir=run_dir, resume=True)
    else:
        if not args.config:
            raise GraphrecError("graphrec train needs a config file (e.g. experiments/quickstart.yaml) or --resume RUN")
        cfg = load_config(args.config, args.set)
        trainer = Trainer(cfg)
    if trainer.is_writer:
        print(f"run folder: {trainer.run_dir}", file=sys.stderr)
    metrics = trainer.fit()
    if trainer.is_writer:
        print(format_table(metrics))
        print(f"saved to {trainer.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .trainer import evaluate_run
    splits = [s.strip() for s in args.splits.split(",")] if args.splits else None
    print(format_table(evaluate_run(Path(args.run), splits, args.checkpoint)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:  # noqa: ARG001
    from .models import MODELS
    for name, cls in sorted(MODELS.items()):
        print(f"{name:<12} {cls.summary}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from .config import build_config
    from .data.loader import load_dataset
    path = Path(args.path)
    data: dict = {"path": str(path.resolve()) if path.exists() else args.path}
    if args.format:
        data["format"] = args.format
    if args.files:
        data["files"] = dict(part.split("=", 1) for part in args.files.split(","))
    cfg = build_config({"data": data, "split": {"method": args.split}} if args.split else {"data": data},
                       source="graphrec data info")
    dataset = load_dataset(cfg)
    print(f"dataset {dataset.name}")
    for key, value in dataset.summary().items():
        print(f"  {key:<22} {value:.6g}" if isinstance(value, float) else f"  {key:<22} {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="graphrec", description="Graph-based recommendation from YAML experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model from a YAML experiment")
    train.add_argument("config", nargs="?", help="experiment YAML, e.g. experiments/quickstart.yaml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=5 (repeatable)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="re-evaluate a run folder's best checkpoint")
    ev.add_argument("run", help="run folder, runs/<name>-<time>/")
    ev.add_argument("--splits", help="comma-separated splits (default: all of the run's)")
    ev.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    ev.set_defaults(func=cmd_eval)
    models = sub.add_parser("models", help="list the registered models")
    models.set_defaults(func=cmd_models)
    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="users, items, interactions, density and degree statistics")
    info.add_argument("path", help="dataset folder (known folders use their registry preset) or file")
    info.add_argument("--format", help="lightgcn, pairs, atomic or csv (default: the preset's)")
    info.add_argument("--files", help="split=file pairs, e.g. train=train.txt,test=test.txt")
    info.add_argument("--split", help="split method for one-file data (random, loo, temporal, temporal_global)")
    info.set_defaults(func=cmd_data_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; user mistakes print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraphrecError as err:
        print(f"graphrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphrec: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script wrapper that exits with main()'s code."""
    sys.exit(main())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    entry()
