"""The `graphrec` command: train | eval | models | data info."""
from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import GraphrecError, one_line


def _check_output_dir(output_dir: str) -> None:
    """One-line error before any work when output_dir cannot hold run folders."""
    path = Path(os.path.expanduser(output_dir))
    path = path if path.is_absolute() else Path.cwd() / path
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise GraphrecError(f"output_dir '{output_dir}': '{probe}' is a file, not a folder; set output_dir to a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise GraphrecError(f"output_dir '{output_dir}': no permission to write in '{probe}'; set output_dir "
                            "to a writable folder")


def refit_config(run_dir: Path, overrides: list[str]):
    """The config of the refit run of a validation-protocol run: its settings, trained on train + valid for the
    epochs it selected (best_epoch + 1) with its learning rates (a cosine schedule keeps the run's length, so it
    is cut at the selected epoch rather than squeezed into it), named <name>-refit."""
    import json
    from .config import config_from_file
    metrics_file = run_dir / "metrics.json"
    if not (run_dir / "config.yaml").is_file() or not metrics_file.is_file():
        raise GraphrecError(f"--refit '{run_dir}': not a finished run folder (needs config.yaml and metrics.json); "
                            "pass runs/<name>-<time>/ of a run trained with protocol validation")
    try:
        metrics = json.loads(metrics_file.read_text())
    except (ValueError, OSError):
        raise GraphrecError(f"--refit: {metrics_file} is not readable JSON; retrain the run") from None
    if metrics.get("protocol") != "validation" or int(metrics.get("best_epoch", -1)) < 0:
        raise GraphrecError(f"--refit '{run_dir}': the run was not selected on a validation split (protocol "
                            f"{metrics.get('protocol')!r}); refit needs a validation-protocol run")
    selected = config_from_file(run_dir / "config.yaml", [], base_dir=str(run_dir)).train
    length = selected.lr_schedule_epochs or selected.epochs
    cfg = config_from_file(run_dir / "config.yaml", ["protocol=refit", f"train.epochs={int(metrics['best_epoch']) + 1}",
                                                     f"train.lr_schedule_epochs={length}", *overrides],
                           base_dir=str(run_dir))
    cfg.name = f"{cfg.name}-refit"
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from .config import config_from_file
    from .distributed import launch_rank
    from .runs import RESUME_GRACE_S, RunLock, check_resumable
    from .trainer import Trainer
    if args.seeds is None and (args.workers is not None or args.threads is not None):
        raise GraphrecError("--workers and --threads go with --seeds (several seeds at once); one run takes "
                            "--set train.threads=N")
    if args.seeds is not None:
        if args.resume or args.refit or not args.config:
            raise GraphrecError("--seeds trains a config file once per seed: graphrec train CONFIG --seeds 1-5 (a "
                                "stopped seeds folder continues with graphrec sweep --resume DIR)")
        from .sweep.seeds import run_seeds
        folder = run_seeds(args.config, args.seeds, args.workers or 1, args.threads, args.set)
        print(f"seeds folder: {folder}")
        print(f"table: graphrec report {folder}", file=sys.stderr)
        return 0
    if args.resume:
        run_dir = Path(args.resume)
        check_resumable(run_dir)
        if launch_rank() == 0:  # the lock is rank 0's (the writer's): other ranks do not check it
            RunLock(run_dir, wait=RESUME_GRACE_S).release()  # in use by another process? say so before reading data
        if args.config:
            cfg = config_from_file(args.config, args.set)
        else:
            cfg = config_from_file(run_dir / "config.yaml", args.set, base_dir=str(run_dir))
        trainer = Trainer(cfg, run_dir=run_dir, resume=True)
    elif args.refit:
        if args.config:
            raise GraphrecError("--refit RUN takes its settings from the run; pass no config file (use --set to "
                                "change a key)")
        cfg = refit_config(Path(args.refit), args.set)
        _check_output_dir(cfg.output_dir)
        trainer = Trainer(cfg)
    else:
        if not args.config:
            raise GraphrecError("graphrec train needs a config file (e.g. experiments/quickstart.yaml) or --resume RUN")
        cfg = config_from_file(args.config, args.set)
        _check_output_dir(cfg.output_dir)
        trainer = Trainer(cfg)
    if trainer.is_writer and args.resume:  # a new run's folder is announced when its first checkpoint makes it
        print(f"run folder: {trainer.run_dir}", file=sys.stderr)
    metrics = trainer.fit()
    if trainer.is_writer:
        from .report import eval_table
        print(eval_table(metrics))
        print(f"saved to {trainer.run_dir}")
    return 0


def _check_run_folder(run_dir: Path, checkpoint: str) -> None:
    """One-line errors for a path that is not a run folder, a missing checkpoint or a config.yaml that no longer
    matches the checkpoint; all before any data is read."""
    from .checkpoint import load_checkpoint
    from .config import config_from_file, config_to_dict
    from .runs import failure_reason, first_difference
    if not run_dir.exists():
        raise GraphrecError(f"run folder '{run_dir}' not found; pass runs/<name>-<time>/ as printed by graphrec train")
    if not run_dir.is_dir():
        raise GraphrecError(f"'{run_dir}' is a file; pass its run folder runs/<name>-<time>/")
    if not (run_dir / "config.yaml").is_file():
        runs = sorted(p.name for p in run_dir.iterdir() if (p / "config.yaml").is_file())[:3]
        hint = (f"; it holds runs: {', '.join(runs)}" if runs else
                "; pass runs/<name>-<time>/ as written by graphrec train")
        raise GraphrecError(f"'{run_dir}' is not a run folder (no config.yaml){hint}")
    reason = failure_reason(run_dir)
    if reason is not None:
        raise GraphrecError(f"'{run_dir}' is a failed run ({reason}); it has no result to evaluate: train it again "
                            "with graphrec train CONFIG")
    if not (run_dir / checkpoint).is_file():
        present = sorted(p.name for p in run_dir.glob("*.pt"))
        hint = (f"pass --checkpoint {present[0]}" if present else
                "the run saved no checkpoint: train it again with graphrec train CONFIG")
        raise GraphrecError(f"no checkpoint '{checkpoint}' in run folder '{run_dir}'; {hint}")
    cfg = config_from_file(run_dir / "config.yaml", base_dir=str(run_dir))
    saved = load_checkpoint(run_dir / checkpoint).get("config")
    if isinstance(saved, dict):
        diff = first_difference(config_to_dict(cfg), saved)
        if diff and (diff[0].startswith("model.") or diff[0].startswith("data.")):
            raise GraphrecError(f"{run_dir / 'config.yaml'} says '{diff[0]}' is {diff[1]!r} but {checkpoint} was "
                                f"trained with {diff[2]!r}: one of them was edited or copied from another run; put "
                                "back the run's own files")


# protocols that keep the run's data: a checkpoint can be evaluated under either (refit changes train)
EVAL_PROTOCOLS = ("validation", "leaky")


def _check_eval_overrides(overrides: list[str]) -> None:
    """One line for an eval `--set` outside model.* / eval.* / protocol=validation|leaky (the rest change the data or
    the training, not how the trained parameters evaluate) or one that renames the model."""
    from .config import parse_override
    for text in overrides:
        path, value = parse_override(text)
        if path == ["protocol"]:
            if value not in EVAL_PROTOCOLS:
                raise GraphrecError(f"eval --set {text}: a trained run evaluates under protocol "
                                    f"{' or '.join(EVAL_PROTOCOLS)}; refit trains on other data (graphrec train "
                                    "--refit RUN)")
        elif path[0] not in ("model", "eval") or path == ["model", "name"]:
            raise GraphrecError(f"eval --set {text}: only model.* and eval.* keys (not model.name) and protocol="
                                f"{'|'.join(EVAL_PROTOCOLS)} change how a trained run evaluates, e.g. --set "
                                "eval.topk=[10,50]; retrain for any other key")


def cmd_eval(args: argparse.Namespace) -> int:
    from .trainer import evaluate_run
    run_dir = Path(args.run)
    _check_eval_overrides(args.set)
    _check_run_folder(run_dir, args.checkpoint)
    from .report import eval_table, plot_eval, pyplot
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    if args.plot:
        pyplot()  # a missing extra is reported before any work
    metrics = evaluate_run(run_dir, splits, args.checkpoint, args.set)
    print(eval_table(metrics, splits, args.format))
    if args.plot:
        plot_eval(metrics, args.plot, splits)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:  # noqa: ARG001
    from .models import MODELS
    for name, cls in sorted(MODELS.items()):
        print(f"{name:<14} {cls.summary}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from .split_cmd import data_block
    from .config import apply_overrides, build_config, override_origin
    from .data.loader import load_dataset
    from .data.field_loader import FIELD_FORMATS, fields_summary
    from .data.registry import PRESETS, data_format, preset_for
    from .data.paths import fetch_hint
    path = Path(os.path.expanduser(args.path))
    if not path.exists():
        env = os.environ.get("GRAPHREC_DATA")
        under = Path(env) / path if env and not path.is_absolute() else None
        if under is None or not under.exists():
            looked = os.path.abspath(path) + (f" and {under}" if under is not None else "")
            hint = "" if env else " (or set GRAPHREC_DATA to the folder that holds your datasets)"
            known = fetch_hint(args.path)
            raise GraphrecError(f"data info: '{args.path}' not found (looked in {looked}); "
                                + (known or f"pass a dataset folder or file{hint}"))
        path = under
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    rows = data_format(args.format or "synthetic", str(folder if path.is_dir() else path)) in FIELD_FORMATS
    if not args.format and not (path.is_dir() and preset_for(path.name)):
        what = "folder" if path.is_dir() else "file"
        raise GraphrecError(f"data info: '{args.path}' is not a known dataset folder ({', '.join(sorted(PRESETS))}); "
                            f"pass --format (lightgcn, pairs, atomic, csv, libfm) and, for a {what}, "
                            + ("--files train=train.txt,test=test.txt" if path.is_dir() else "nothing else"))
    if path.is_dir() and args.format and not args.files and not preset_for(folder.name):
        listing = ", ".join(sorted(p.name for p in folder.iterdir())[:8])
        raise GraphrecError(f"data info: pass --files to say which file is which, e.g. --files "
                            f"train=train.txt,test=test.txt (the folder has: {listing})")
    data = {**data_block(args), "path": str(path)}
    preset_files = (preset_for(folder.name) or {}).get("files", {})
    files = data.get("files") or ({"all": path.name} if path.is_file() else preset_files)
    if args.split:
        split = {"method": args.split}
    elif "all" in files:  # one set of events: shown whole, as train
        split = {"method": "random", "valid_ratio": 0.0, "test_ratio": 0.0}
    else:  # the files as they are: no validation carved from train
        split = {} if "valid" in files else {"valid_ratio": 0.0}
    model = {"name": "fm" if rows else "lightgcn"}  # a model of the data's kind; nothing is trained
    raw = apply_overrides({"data": data, "split": split, "model": model}, args.set)
    cfg = build_config(raw, source="graphrec data info", origin=override_origin("graphrec data info", args.set))
    dataset = load_dataset(cfg)
    if dataset.fields is not None:
        print(f"dataset {dataset.name}")
        for key, value in fields_summary(dataset).items():
            print(f"  {key:<22} {value:.6g}" if isinstance(value, float) else f"  {key:<22} {value}")
        return 0
    summary = dataset.summary()
    interactions = len(dataset.train) + sum(len(s) for s in dataset.eval_splits().values())
    ordered = {"users": summary.pop("users"), "items": summary.pop("items"), "interactions": interactions}
    ordered.update(summary)
    print(f"dataset {dataset.name}")
    for key, value in ordered.items():
        if key in dataset.tests and not value:
            continue  # one file summarized without a split: no test part
        print(f"  {key:<22} {value:.6g}" if isinstance(value, float) else f"  {key:<22} {value}")
    if args.split:
        from .data.shift import format_shift, shift_summary
        print(format_shift(shift_summary(dataset.train, dataset.eval_splits(), dataset.num_items)))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage mistakes reported as one `graphrec: error:` line with a did-you-mean."""

    def error(self, message: str):  # noqa: D102 - argparse API
        hint = ""
        match = re.search(r"invalid choice: '?([^'\s]*)'? \(choose from (.*)\)", message)
        if match:
            choices = [c.strip().strip("'\"") for c in match.group(2).split(",")]
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            hint = f", did you mean '{close[0]}'?" if close else ""
        where = f"{self.prog}: " if self.prog != "graphrec" else ""
        self.exit(2, one_line(f"graphrec: error: {where}{message}{hint} (see {self.prog} --help)") + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from . import analyze, archive, features_cmd, report, split_cmd
    from .data import catalog, prepare
    from .sweep import cli as sweep_cli
    parser = OneLineParser(prog="graphrec", description="Graph-based recommendation from YAML experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model from a YAML experiment")
    train.add_argument("config", nargs="?", help="experiment YAML, e.g. experiments/quickstart.yaml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=5 (repeatable)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    train.add_argument("--seeds", metavar="SEEDS", help="train the config once per seed, e.g. 1-5 or 1,3,7, as an "
                       "offline sweep over seed (resumable: graphrec sweep --resume DIR)")
    train.add_argument("--workers", type=int, help="with --seeds: runs at once, cores split between them")
    train.add_argument("--threads", type=int, help="with --seeds: threads per run (default: cores // workers)")
    train.add_argument("--refit", metavar="RUN_DIR", help="protocol refit: RUN_DIR's settings trained on train + "
                       "valid for its selected epoch count, tests read once at the end")
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="re-evaluate a run folder's best checkpoint")
    ev.add_argument("run", help="run folder, runs/<name>-<time>/")
    ev.add_argument("--splits", help="comma-separated splits (default: all of the run's)")
    ev.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    ev.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"],
                    help="output format of the split x metric table (default: table)")
    ev.add_argument("--plot", metavar="PNG", help="also write grouped bars per metric and split (graphrec[plot])")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="evaluate with a model.* or eval.* key changed, e.g. --set eval.topk=[10,50] or --set "
                    "model.diffusion.sampling_steps=0, or under --set protocol=leaky (the official codes' evaluation: "
                    "the split's edges in the propagation graph, nothing masked) (repeatable; the parameters stay "
                    "the checkpoint's)")
    ev.set_defaults(func=cmd_eval)
    split_cmd.add_parser(sub)
    report.add_parser(sub)
    archive.add_parser(sub)
    sweep_cli.add_parser(sub)
    features_cmd.add_parser(sub)
    models = sub.add_parser("models", help="list the registered models")
    models.set_defaults(func=cmd_models)
    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="users, items, interactions, density and degree statistics")
    info.add_argument("path", help="dataset folder (known folders use their registry preset) or file")
    info.add_argument("--format", help="lightgcn, pairs, atomic, csv, libfm or csv_fields (default: the preset's)")
    info.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="any other data key, e.g. --set data.csv_fields.categorical=[user,item] (repeatable)")
    info.add_argument("--files", help="split=file pairs, e.g. train=train.txt,test=test.txt")
    info.add_argument("--split", help="show the split of this method (random, loo, temporal, temporal_global, "
                      "popularity, degree) with default ratios and its shift summary; by default the files are "
                      "summarized as they are")
    info.add_argument("--columns", help="format csv/atomic: role=column pairs, e.g. user=0,item=1,rating=2")
    info.add_argument("--no-header", action="store_true", help="format csv: the first line is data, not names")
    info.add_argument("--delimiter", help="field separator (default: whitespace for pairs, ',' for csv)")
    info.set_defaults(func=cmd_data_info)
    catalog.add_parser(data_sub)
    prepare.add_parser(data_sub)
    analyze.add_parser(sub)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to flush to a pipe
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; user mistakes print one line and return 2."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage mistakes (one line, printed by OneLineParser) and --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return args.func(args)
    except GraphrecError as err:
        print(f"graphrec: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout stopped early (`graphrec report ... | head`): end quietly, as
        _silence_stdout()  # a tool killed by SIGPIPE does
        return 141
    except OSError as err:  # a file the user pointed at cannot be read or written
        where = f"'{err.filename}'" if err.filename else "a file"
        print(one_line(f"graphrec: error: cannot access {where}: {err.strerror or err}; check the path and its "
                       "permissions"), file=sys.stderr)
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
