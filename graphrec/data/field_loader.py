"""Datasets of feature-field rows (libFM files, CSV columns, synthetic fields) for pointwise tasks; their
interactions are empty."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import GraphrecError, WarningLog
from ..schema import Config, DataConfig
from .dataset import Dataset, FieldData, Interactions
from .csv_fields import csv_field_rows, read_csv_fields
from .fields import FieldRows, FieldSpace, random_row_split
from .libfm import read_libfm, to_field_rows
from .synthetic import generate_field_rows

FIELD_FORMATS = ("libfm", "csv_fields", "synthetic_fields")


def field_dataset(name: str, rows: dict[str, FieldRows], space: FieldSpace, warnings: WarningLog,
                  source: str | None) -> Dataset:
    """A Dataset holding feature rows per split ('train', 'valid', tests) and no user-item interactions."""
    none = np.zeros(0, dtype=np.int64)
    return Dataset(name, 0, 0, Interactions(none, none), None, {}, none, none, fields=FieldData(space, rows),
                   warnings=warnings, source=source)


def _split_seed(cfg: Config) -> int:
    return cfg.split.seed if cfg.split.seed is not None else cfg.seed


def _random_parts(rows: FieldRows, ratios: dict[str, float], seed: int) -> dict[str, FieldRows]:
    """The rows split at random by named ratios (seeded); empty parts are dropped."""
    parts = random_row_split(len(rows), ratios, np.random.default_rng(seed))
    return {name: rows.take(np.sort(index)) for name, index in parts.items() if len(index)}


def _three_way(cfg: Config, rows: FieldRows) -> dict[str, FieldRows]:
    """train / valid / test of one set of rows by split.valid_ratio and split.test_ratio."""
    valid, test = cfg.split.valid_ratio, cfg.split.test_ratio
    return _random_parts(rows, {"valid": valid, "test": test, "train": 1.0 - valid - test}, _split_seed(cfg))


def synthetic_field_dataset(cfg: Config) -> Dataset:
    """The planted-FM rows of data.synthetic_fields, split at random into train / valid / test."""
    s = cfg.data.synthetic_fields
    rows, space = generate_field_rows(s.rows, s.field_sizes, s.rank, s.labels, s.noise, s.seed)
    parts = _three_way(cfg, rows)
    return field_dataset("synthetic_fields", {k: parts[k] for k in ("train", "valid", "test") if k in parts}, space,
                         WarningLog(), None)


def libfm_dataset(cfg: Config, data: DataConfig, folder: Path, warnings: WarningLog) -> Dataset:
    """Rows of the libFM files of data.files, split by split_field_dataset."""
    tables = {key: read_libfm(folder / fname, data.skip_bad_lines, warnings) for key, fname in data.files.items()}
    rows, space = to_field_rows(tables, data.fields)
    return split_field_dataset(cfg, rows, space, folder, warnings)


def csv_fields_dataset(cfg: Config, data: DataConfig, folder: Path, warnings: WarningLog) -> Dataset:
    """Rows of the CSV files of data.files by the columns of data.csv_fields, split by split_field_dataset."""
    tables = {key: read_csv_fields(folder / fname, data.csv_fields, data.delimiter, data.skip_bad_lines, warnings)
              for key, fname in data.files.items()}
    rows, space = csv_field_rows(tables, data.csv_fields, warnings)
    return split_field_dataset(cfg, rows, space, folder, warnings)


def split_field_dataset(cfg: Config, rows: dict[str, FieldRows], space: FieldSpace, folder: Path,
                        warnings: WarningLog) -> Dataset:
    """The dataset of the rows of data.files: 'all' is split at random, a missing 'valid' is carved from train."""
    if cfg.split.method not in ("given", "random"):
        raise GraphrecError(f"split.method {cfg.split.method} does not apply to feature rows (no users or times); "
                            "use split.method: random (or given with train/valid/test files)")
    if "all" in rows:
        if cfg.split.method != "random":
            raise GraphrecError("the data is one file (data.files.all), so it needs a split: set split.method: "
                                "random")
        parts = _three_way(cfg, rows.pop("all"))
        rows = {k: parts[k] for k in ("train", "valid", "test") if k in parts}
    elif "valid" not in rows and cfg.split.valid_ratio > 0:
        carved = _random_parts(rows["train"], {"valid": cfg.split.valid_ratio, "train": 1.0}, _split_seed(cfg))
        rows.update(carved)
    ordered = {"train": rows.pop("train")}
    if "valid" in rows:
        ordered["valid"] = rows.pop("valid")
    ordered.update(rows)
    return field_dataset(folder.name, ordered, space, warnings, str(folder))


def fields_summary(dataset: Dataset) -> dict[str, object]:
    """Fields, features (per field), rows per split and the label values of a feature-row dataset."""
    space, rows = dataset.fields.space, dataset.fields.rows
    sizes = np.bincount(space.field_of_feature, minlength=space.num_fields)
    labels = np.unique(np.concatenate([r.label for r in rows.values()]))
    shown = ("{" + ", ".join(f"{v:g}" for v in labels) + "}" if len(labels) <= 6
             else f"{len(labels)} values in [{labels[0]:g}, {labels[-1]:g}]")
    out: dict[str, object] = {"fields": space.num_fields, "features": space.num_features,
                              "features_per_field": ", ".join(f"{n} {s}" for n, s in zip(space.field_names, sizes)),
                              "labels": shown}
    for name, part in rows.items():
        out[f"{name}_rows"] = len(part)
        out[f"{name}_positive_share"] = float((part.label > 0).mean()) if len(part) else 0.0
    return out
