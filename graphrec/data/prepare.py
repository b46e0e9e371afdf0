"""`graphrec data prepare frappe-nfm`: the seeded rebuild of the NFM frappe protocol from the frappe-context log."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from ..errors import GraphrecError
from .derived import check_out_folder, write_folder_atomically
from .fields import random_row_split
from .formats import _open_text
from .libfm import write_libfm

FRAPPE_FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "weather", "country", "city")
NEGATIVES_PER_POSITIVE = 2
SPLIT_RATIOS = {"train": 0.7, "valid": 0.2, "test": 0.1}
FILES = {"train": "train.libfm", "valid": "validation.libfm", "test": "test.libfm"}
PROTOCOL = ("NFM frappe protocol rebuilt from frappe-context/final_app.csv: exact duplicate rows dropped; "
            f"{NEGATIVES_PER_POSITIVE} negatives per positive that replace the item (uniform over the items of the "
            "log), keep user and context, and never equal an observed or another negative row; labels 1 / -1; "
            "seeded random 7:2:1 split of all rows; feature ids contiguous per field in the order "
            + ", ".join(FRAPPE_FIELDS))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """`data prepare NAME --from DIR --out DIR [--seed N]` under the `data` subcommand."""
    prepare = subparsers.add_parser("prepare", help="build a derived dataset folder (frappe-nfm) with a SOURCE.json")
    prepare.add_argument("name", choices=["frappe-nfm"], help="the dataset to build")
    prepare.add_argument("--from", dest="source", required=True, metavar="DIR",
                         help="input folder (frappe-nfm: the frappe-context folder with final_app.csv)")
    prepare.add_argument("--out", required=True, metavar="DIR", help="new folder to write (must not exist)")
    prepare.add_argument("--seed", type=int, default=0, help="seed of the negatives and the split (default 0)")
    prepare.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the folder, print where it is and the `data:` block to paste into a YAML."""
    source, out = Path(args.source), Path(args.out)
    csv_path = source / "final_app.csv"
    if not csv_path.is_file():
        raise GraphrecError(f"--from '{source}': no final_app.csv there; pass the frappe-context folder")
    check_out_folder(out)
    raw = read_frappe_context(csv_path)
    command = f"graphrec data prepare {args.name} --from {source} --out {out} --seed {args.seed}"
    record = write_folder_atomically(out, lambda tmp: build_frappe_nfm(raw, args.seed, tmp, out.resolve()),
                                     command, [csv_path], args.seed)
    rows = ", ".join(f"{split} {n:,}" for split, n in record["counts"]["rows"].items())
    print(f"wrote {out}: {rows} rows; {record['counts']['features']:,} features in {len(FRAPPE_FIELDS)} fields")
    print(yaml.safe_dump({"data": record["data"]}, sort_keys=False, default_flow_style=None), end="")
    return 0


def read_frappe_context(path: Path) -> np.ndarray:
    """(n, 9) int64 raw columns user, item and the 7 context fields of final_app.csv, by header name."""
    lines = _open_text(path)
    header = [name.strip() for name in lines[0].split(",")]
    missing = [name for name in FRAPPE_FIELDS if name not in header]
    if missing:
        raise GraphrecError(f"{path} line 1: no column {missing[0]!r} in the header {header}; frappe-nfm needs "
                            f"the columns {', '.join(FRAPPE_FIELDS)}")
    body = [(lineno, line) for lineno, line in enumerate(lines[1:], 2) if line.strip()]
    columns = [header.index(name) for name in FRAPPE_FIELDS]
    try:
        table = np.loadtxt([line for _, line in body], delimiter=",", usecols=columns, dtype=np.float64, ndmin=2)
    except ValueError:
        raise _first_bad_row(path, body, len(header), columns) from None
    bad = ~((table == np.round(table)) & (table >= 0)).all(axis=1)
    if bad.any():
        raise GraphrecError(f"{path} line {body[int(np.flatnonzero(bad)[0])][0]}: ids must be non-negative integers")
    return table.astype(np.int64)


def _first_bad_row(path: Path, body: list[tuple[int, str]], width: int, columns: list[int]) -> GraphrecError:
    """The error naming the first line that numpy could not read: wrong column count or a non-number."""
    for lineno, line in body:
        cells = line.split(",")
        if len(cells) != width:
            return GraphrecError(f"{path} line {lineno}: {len(cells)} columns where the header has {width}")
        for name, column in zip(FRAPPE_FIELDS, columns):
            try:
                float(cells[column])
            except ValueError:
                return GraphrecError(f"{path} line {lineno}: the {name} '{cells[column].strip()}' is not an id")
    return GraphrecError(f"{path}: not readable as comma-separated integer ids")


def encode_fields(raw: np.ndarray) -> tuple[np.ndarray, dict[str, list[int]]]:
    """(n, f) contiguous feature ids (field 0's first, then field 1's, ...) and each field's [first, last] id."""
    features = np.empty_like(raw)
    spans: dict[str, list[int]] = {}
    offset = 0
    for j, name in enumerate(FRAPPE_FIELDS):
        values, codes = np.unique(raw[:, j], return_inverse=True)
        features[:, j] = codes.ravel() + offset
        spans[name] = [offset, offset + len(values) - 1]
        offset += len(values)
    return features, spans


def sample_negatives(group: np.ndarray, item: np.ndarray, num_items: int, per_positive: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n, per_positive) items for each positive's group (user + context): never an item observed in the group,
    never twice in a group; uniform rejection sampling, vectorized over all slots."""
    num_groups = int(group.max()) + 1
    observed = np.unique(group * num_items + item)
    positives = np.bincount(group, minlength=num_groups)
    short = np.flatnonzero(num_items - positives < per_positive * positives)
    if len(short):
        raise GraphrecError(f"a user+context group has {positives[short[0]]} positive items of {num_items}: too "
                            f"few unobserved items for {per_positive} negatives each")
    slot_group = np.repeat(group, per_positive)
    keys = np.full(len(slot_group), -1, dtype=np.int64)
    pending = np.arange(len(slot_group))
    while len(pending):
        drawn = slot_group[pending] * num_items + rng.integers(0, num_items, len(pending))
        accepted = keys[keys >= 0]
        _, first = np.unique(drawn, return_index=True)
        fresh = np.zeros(len(pending), dtype=bool)
        fresh[first] = True
        ok = fresh & ~np.isin(drawn, observed) & ~np.isin(drawn, accepted)
        keys[pending[ok]] = drawn[ok]
        pending = pending[~ok]
    return (keys % num_items).reshape(-1, per_positive)


def build_frappe_nfm(raw: np.ndarray, seed: int, folder: Path, final: Path) -> dict:
    """Write train/validation/test libFM files into `folder`; return the SOURCE.json extras (counts, data block)."""
    rng = np.random.default_rng(seed)
    features, spans = encode_fields(raw)
    positives = np.unique(features, axis=0, return_index=True)[1]
    positive = features[np.sort(positives)]
    context = [j for j, name in enumerate(FRAPPE_FIELDS) if name != "item"]
    group = np.unique(positive[:, context], axis=0, return_inverse=True)[1].ravel()
    item_first = spans["item"][0]
    num_items = spans["item"][1] - item_first + 1
    negative_items = sample_negatives(group, positive[:, 1] - item_first, num_items, NEGATIVES_PER_POSITIVE, rng)
    negative = np.repeat(positive, NEGATIVES_PER_POSITIVE, axis=0)
    negative[:, 1] = negative_items.ravel() + item_first
    rows = np.concatenate([positive, negative])
    label = np.concatenate([np.ones(len(positive)), -np.ones(len(negative))])
    parts = random_row_split(len(rows), SPLIT_RATIOS, rng)
    for split, index in parts.items():
        write_libfm(folder / FILES[split], rows[index], label[index])
    num_features = spans[FRAPPE_FIELDS[-1]][1] + 1
    return {"dataset": "frappe-nfm", "protocol": PROTOCOL, "numpy_version": np.__version__,
            "counts": {"log_rows": len(raw), "duplicates_dropped": len(raw) - len(positive),
                       "positives": len(positive), "negatives": len(negative), "features": num_features,
                       "rows": {split: len(index) for split, index in parts.items()},
                       "positives_per_split": {split: int((label[index] > 0).sum()) for split, index in parts.items()}},
            "data": {"path": str(final), "format": "libfm", "files": dict(FILES), "fields": spans}}
