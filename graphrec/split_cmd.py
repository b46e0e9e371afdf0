"""`graphrec split PATH --method M --out DIR`: split files, their shift and a ready `data:` block, atomically."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import tempfile
import typing
from pathlib import Path

import numpy as np

from . import __version__
from .errors import GraphrecError
from .schema import SplitConfig

if typing.TYPE_CHECKING:
    from .config import Config
    from .data.dataset import Dataset

METHODS = [m for m in typing.get_args(SplitConfig.model_fields["method"].annotation) if m != "given"]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say how to read a dataset path (as `graphrec data info` takes them)."""
    parser.add_argument("path", help="dataset folder (known folders use their registry preset) or file")
    parser.add_argument("--format", help="lightgcn, pairs, atomic or csv (default: the preset's)")
    parser.add_argument("--files", help="split=file pairs, e.g. train=train.txt,test=test.txt")
    parser.add_argument("--columns", help="format csv/atomic: role=column pairs, e.g. user=0,item=1,rating=2")
    parser.add_argument("--no-header", action="store_true", help="format csv: the first line is data, not names")
    parser.add_argument("--delimiter", help="field separator (default: whitespace for pairs, ',' for csv)")


def _pairs(option: str, text: str, example: str) -> dict[str, str]:
    """'a=b,c=d' -> {'a': 'b', 'c': 'd'} with a one-line error naming the option."""
    out = {}
    for part in filter(str.strip, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise GraphrecError(f"{option} '{text}': '{part}' is not of the form name=value, e.g. {option} {example}")
        out[key.strip()] = value.strip()
    return out


def data_block(args: argparse.Namespace) -> dict:
    """The `data:` config block that the options of add_data_arguments describe."""
    data: dict = {"path": args.path}
    if args.format:
        data["format"] = args.format
    if args.files:
        data["files"] = _pairs("--files", args.files, "train=train.txt,test=test.txt")
    if args.columns:
        data["columns"] = _pairs("--columns", args.columns, "user=0,item=1,rating=2")
    if args.no_header:
        data["header"] = False
    if args.delimiter:
        data["delimiter"] = args.delimiter
    return data


def add_parser(subparsers) -> None:
    """The `graphrec split` subcommand."""
    parser = subparsers.add_parser("split", help="split a dataset (IID or OOD) into files with a shift summary")
    add_data_arguments(parser)
    parser.add_argument("--method", required=True, choices=METHODS,
                        help="random, loo, or an OOD kind that adds test_ood: popularity, degree, temporal, "
                             "temporal_global")
    parser.add_argument("--out", required=True, metavar="DIR", help="new folder for the files (must not exist "
                        "or be empty)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the split (default 2020)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a split or data key, e.g. --set split.alpha=0.5 --set data.kcore=10 (repeatable)")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Config:
    """The data and split blocks of the command as a validated config."""
    from .config import apply_overrides, build_config, parse_override
    for text in args.set:
        section = parse_override(text)[0][0]
        if section not in ("split", "data"):
            raise GraphrecError(f"--set {text}: graphrec split takes split.* and data.* keys only")
    raw = apply_overrides({"data": data_block(args), "split": {"method": args.method, "seed": args.seed}}, args.set)
    return build_config(raw, source="graphrec split", base_dir=os.getcwd())


def _check_out(out: Path) -> None:
    """One-line error unless --out is a new (or empty) folder whose parent can be written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraphrecError(f"--out '{out}' already exists{'' if out.is_dir() else ' as a file'}; choose a new "
                            "folder (nothing was written)")
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise GraphrecError(f"--out '{out}': cannot create a folder in '{probe}'; choose a writable place")


def _inputs(cfg: Config) -> list[dict]:
    """Each file the dataset is read from, with its size and sha256."""
    from .config import resolve_data_path
    from .data.loader import with_preset
    folder = resolve_data_path(cfg)
    if folder is None:
        return []
    paths = [folder] if folder.is_file() else [folder / f for f in with_preset(cfg.data, folder).files.values()]
    out = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        out.append({"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()})
    return out


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this split."""
    words = ["graphrec", "split", args.path, "--method", args.method, "--out", args.out, "--seed", str(args.seed)]
    for option in ("format", "files", "columns", "delimiter"):
        if getattr(args, option):
            words += [f"--{option}", getattr(args, option)]
    words += ["--no-header"] if args.no_header else []
    for text in args.set:
        words += ["--set", text]
    return shlex.join(words)


def write_split(dataset: Dataset, folder: Path, source: dict) -> dict:
    """Write every non-empty part as a pairs file of raw ids, shift.json and SOURCE.json into `folder`."""
    for ids, what in ((dataset.user_ids, "user"), (dataset.item_ids, "item")):
        if ids.dtype.kind not in "iu" or (len(ids) and ids.min() < 0):
            raise GraphrecError(f"graphrec split writes pairs files, which need non-negative integer {what} ids; "
                                f"this data has {what} ids like {ids[0]!r}")
    parts = {"train": dataset.train, **dataset.eval_splits()}
    files = {}
    for name, part in parts.items():
        if len(part):
            files[name] = f"{name}.txt"
            rows = np.column_stack([dataset.user_ids[part.user], dataset.item_ids[part.item]])
            np.savetxt(folder / files[name], rows, fmt="%d")
    (folder / "shift.json").write_text(json.dumps(source["shift"], indent=2) + "\n")
    source = {k: v for k, v in source.items() if k != "shift"}
    source["data"] = {**source["data"], "format": "pairs", "files": files}
    (folder / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
    return source["data"]


def run(args: argparse.Namespace) -> int:
    """Split, write DIR atomically (temp folder + os.replace), print the shift summary and the data: block."""
    from .data.loader import load_dataset
    from .data.shift import format_shift, shift_summary
    cfg = _config(args)
    out = Path(args.out)
    _check_out(out)
    dataset = load_dataset(cfg)
    summary = shift_summary(dataset.train, dataset.eval_splits(), dataset.num_items, cfg.eval.head_share,
                            cfg.eval.tail_share)
    source = {"command": _command(args), "inputs": _inputs(cfg), "seed": args.seed,
              "split": cfg.split.model_dump(), "graphrec_version": __version__,
              "data": {"path": args.out}, "shift": summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the result is an ordinary folder
    try:
        data = write_split(dataset, staging, source)
        if out.is_dir():
            out.rmdir()  # empty (checked above): os.replace needs the name free or an empty folder
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(format_shift(summary))
    files = ", ".join(f"{k}: {v}" for k, v in data["files"].items())
    print(f"wrote {out}/; use it with\ndata: {{path: {data['path']}, format: pairs, files: {{{files}}}}}")
    return 0
