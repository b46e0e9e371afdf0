"""Item feature files (.npy + id list, or CSV keyed by raw item id) aligned to graphrec's item order."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional, Union

import numpy as np

from ..errors import GraphrecError, WarningLog

Missing = Literal["zeros", "mean", "error"]
MISSING_KEY = "data.item_features_missing"


@dataclass
class FeatureReport:
    """How a feature file matched the dataset: rows read, rows used, rows ignored, items filled in."""

    path: Path
    rows: int
    dim: int
    matched: int
    ignored: int
    missing: int
    filled_with: str

    def describe(self) -> str:
        """One line for the log, e.g. 'feats/text.npy: 8570 rows x 384, 8552 matched, 18 ignored ...'."""
        line = (f"{self.path}: {self.rows} rows x {self.dim}, {self.matched} matched, "
                f"{self.ignored} ignored (items outside the dataset)")
        return line + (f", {self.missing} item(s) without a row filled with {self.filled_with}" if self.missing else "")


def ids_path(npy_path: Union[str, Path]) -> Path:
    """The id list beside a feature matrix: feats/text.npy -> feats/text.ids.txt."""
    npy_path = Path(npy_path)
    return npy_path.with_name(npy_path.stem + ".ids.txt")


def read_item_features(path: Union[str, Path], raw_item_ids: np.ndarray, missing: Missing = "error",
                       id_column: Union[int, str] = 0, source_key: str = "data.item_features"
                       ) -> tuple[np.ndarray, FeatureReport]:
    """(num_items, d) float32 features in graphrec item order, read from .npy (+ .ids.txt) or CSV by raw item id.

    `raw_item_ids` (num_items,) are the dataset's raw ids in graphrec item order; `id_column` (number or header
    name) applies to CSV only. Rows of other items are ignored and counted; items without a row get zeros,
    the mean row, or an error, as `missing` says.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphrecError(f"{source_key}: feature file '{path}' not found; run `graphrec features` or fix the path")
    if path.suffix == ".npy":
        matrix, feature_ids = _read_npy_with_ids(path, source_key)
    else:
        matrix, feature_ids = _read_feature_csv(path, id_column, source_key)
    return align_item_features(matrix, feature_ids, raw_item_ids, missing, path, source_key)


def read_item_feature_set(paths: Mapping[str, Union[str, Path]], raw_item_ids: np.ndarray, missing: Missing,
                          warnings: Optional[WarningLog] = None) -> dict[str, np.ndarray]:
    """{modality: (num_items, d_m) float32} for data.item_features {modality: path}, each logged in one line."""
    out = {}
    for name, path in paths.items():
        out[name], report = read_item_features(path, raw_item_ids, missing, source_key=f"data.item_features.{name}")
        if warnings is not None:
            warnings.warn(f"item_features_{name}", report.ignored + report.missing, report.describe())
    return out


def align_item_features(matrix: np.ndarray, feature_ids: np.ndarray, raw_item_ids: np.ndarray, missing: Missing,
                        path: Path, source_key: str) -> tuple[np.ndarray, FeatureReport]:
    """(num_items, d) float32 rows of `matrix` (rows, d) put in graphrec item order by matching raw ids."""
    raw_item_ids = raw_item_ids.astype(str) if raw_item_ids.dtype == object else raw_item_ids
    if missing not in ("zeros", "mean", "error"):
        raise GraphrecError(f"{MISSING_KEY} is {missing!r}; use zeros, mean or error")
    if matrix.ndim != 2:
        raise GraphrecError(f"{path}: the features have shape {matrix.shape}, not (rows, dim)")
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GraphrecError(f"{path}: {int(bad.sum())} row(s) hold NaN or inf (first: row {row}, item id "
                            f"{feature_ids[row]}); recompute the features or drop those rows")
    keys = _as_dataset_ids(feature_ids, raw_item_ids)
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1][0]
        raise GraphrecError(f"{path}: item id {dup} has {int(counts[counts > 1][0])} rows; keep one row per item")
    order = np.argsort(raw_item_ids, kind="stable")
    sorted_ids = raw_item_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, keys), len(sorted_ids) - 1)
    found = sorted_ids[pos] == keys
    item_of_row = order[pos[found]]
    out = np.zeros((len(raw_item_ids), matrix.shape[1]), dtype=np.float32)
    out[item_of_row] = matrix[found]
    has_row = np.zeros(len(raw_item_ids), dtype=bool)
    has_row[item_of_row] = True
    lacking = np.flatnonzero(~has_row)
    if len(lacking) and missing == "error":
        shown = ", ".join(str(i) for i in raw_item_ids[lacking[:5]]) + (" ..." if len(lacking) > 5 else "")
        raise GraphrecError(f"{source_key}: {path} has no row for {len(lacking)} of the dataset's "
                            f"{len(raw_item_ids)} items (ids {shown}); add them, or set {MISSING_KEY}: "
                            "zeros or mean")
    if len(lacking) and missing == "mean" and has_row.any():
        out[lacking] = out[has_row].mean(axis=0)
    report = FeatureReport(path, int(matrix.shape[0]), int(matrix.shape[1]), int(found.sum()),
                           int((~found).sum()), len(lacking), "the mean row" if missing == "mean" else "zeros")
    return out, report


def _as_dataset_ids(feature_ids: np.ndarray, raw_item_ids: np.ndarray) -> np.ndarray:
    """Feature-file ids as the dataset compares them: int64 for integer datasets (-1 = cannot match), else str."""
    tokens = np.asarray(feature_ids).astype(str)
    if raw_item_ids.dtype.kind in "iu":
        stripped = np.char.strip(tokens)
        integer = np.char.isdigit(stripped) & (np.char.str_len(stripped) <= 18)
        out = np.full(len(tokens), -1, dtype=np.int64)
        out[integer] = stripped[integer].astype(np.int64)
        return out
    return np.char.strip(tokens).astype(raw_item_ids.dtype if raw_item_ids.dtype.kind == "U" else str)


def _read_npy_with_ids(path: Path, source_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, d) matrix of a .npy and the `rows` raw ids of its .ids.txt."""
    matrix = load_feature_npy(path)
    id_file = ids_path(path)
    if not id_file.is_file():
        raise GraphrecError(f"{source_key}: {path} needs its id list {id_file} (one raw item id per line, as "
                            "`graphrec features` writes it); write it, or use a CSV keyed by item id")
    feature_ids = np.asarray([line.strip() for line in id_file.read_text(encoding="utf-8").splitlines()
                              if line.strip()])
    if len(feature_ids) != matrix.shape[0]:
        raise GraphrecError(f"{id_file}: {len(feature_ids)} ids for the {matrix.shape[0]} rows of {path}; the two "
                            "files must come from the same `graphrec features` run")
    return matrix, feature_ids


def load_feature_npy(path: Path) -> np.ndarray:
    """(rows, d) float32 matrix of a .npy file; one-line errors for a truncated, non-numeric or non-2-D file."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise GraphrecError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]}); the file is truncated "
                            "or not a numeric array: write it again") from None
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiub":
        raise GraphrecError(f"{path}: expected a (items, dim) numeric matrix, found shape {matrix.shape} "
                            f"dtype {matrix.dtype}")
    return matrix.astype(np.float32, copy=False)


def read_csv_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    """All non-empty rows of a CSV file, with one-line errors for a missing, binary or badly quoted file."""
    if not Path(path).is_file():
        raise GraphrecError(f"'{path}' not found; check the path")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[:exc.start].count(b"\n") + 1
        raise GraphrecError(f"{path} line {line}: not UTF-8 text; convert the file to UTF-8") from None
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise GraphrecError(f"{path} line {reader.line_num}: {exc}; fix the quoting on that line") from None
    if not rows:
        raise GraphrecError(f"{path}: the file is empty")
    return rows


def column_index(path: Path, header: Optional[list[str]], column: Union[int, str], option: str) -> int:
    """The 0-based index of `column` (a number, or a name looked up in `header`); `option` names the setting."""
    if isinstance(column, int) or str(column).isdigit():
        return int(column)
    if header is None:
        raise GraphrecError(f"{path}: {option} {column!r} is a name but the file has no header; give a column number")
    names = [h.strip() for h in header]
    if column not in names:
        raise GraphrecError(f"{path} line 1: no column {column!r} ({option}) in the header {names}")
    return names.index(column)


def _read_feature_csv(path: Path, id_column: Union[int, str], source_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, d) float32 values and (rows,) raw ids of a CSV with one id column and d numeric columns.

    The first line is a header when any of its non-id cells is not a number.
    """
    rows = read_csv_rows(path)
    first = rows[0]
    by_name = not str(id_column).isdigit()
    idx = column_index(path, first, id_column, "id column")
    has_header = by_name or not all(_is_number(c) for i, c in enumerate(first) if i != idx)
    body = rows[1:] if has_header else rows
    start = 2 if has_header else 1
    width = len(first)
    if idx >= width:
        raise GraphrecError(f"{path}: the id column is {idx} but the lines have {width} columns")
    ids, values = [], []
    for lineno, row in enumerate(body, start):
        if len(row) != width:
            raise GraphrecError(f"{path} line {lineno}: {len(row)} columns, expected {width} like line {start - 1}")
        try:
            values.append([float(c) for i, c in enumerate(row) if i != idx])
        except ValueError:
            cell = next(c for i, c in enumerate(row) if i != idx and not _is_number(c))
            raise GraphrecError(f"{path} line {lineno}: {cell.strip()!r} is not a number; feature columns "
                                "must be numeric") from None
        ids.append(row[idx].strip())
    if not values:
        raise GraphrecError(f"{source_key}: {path} holds a header but no feature rows")
    return np.asarray(values, dtype=np.float32), np.asarray(ids)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
