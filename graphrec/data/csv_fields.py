"""CSV files with named columns read into feature-field rows (format csv_fields): a categorical column is a field
whose values get feature ids from the train file, a numeric column a field of one feature valued by the number."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ..errors import GraphrecError, WarningLog
from ..schema import CsvFieldsConfig
from .fields import FieldRows, FieldSpace
from .formats import BadLines, csv_records, header_column, parse_number

FIT_SPLITS = ("train", "all")  # the file whose values are the categorical features (a missing one is carved later)


@dataclass
class CsvFieldsTable:
    """One file's columns: (n, c) str categorical values, (n, m) float32 numbers, (n,) float32 labels and (n,) line
    numbers, in the order of data.csv_fields.categorical and .numeric."""

    path: Path
    categorical: np.ndarray
    numeric: np.ndarray
    label: np.ndarray
    lineno: np.ndarray


def read_csv_fields(path: Path, spec: CsvFieldsConfig, delimiter: Optional[str], skip_bad_lines: bool,
                    warnings: WarningLog) -> CsvFieldsTable:
    """The columns named in `spec` of a CSV file with a header; a line with another column count or a non-number in
    a numeric or label column is refused (file:line) or skipped and counted."""
    path = Path(path)
    bad = BadLines(path, skip_bad_lines, warnings)
    lines, delim, records = csv_records(path, delimiter, True, bad)
    names = [h.strip() for h in records[0][1]]

    def columns(key: str, wanted: list[str]) -> list[int]:
        return [header_column(path, names, name, f"{key}[{i}]", delim, lines[0], numbered=False)
                for i, name in enumerate(wanted)]

    categorical = columns("data.csv_fields.categorical", spec.categorical)
    numbers = columns("data.csv_fields.numeric", spec.numeric) + [
        header_column(path, names, spec.label, "data.csv_fields.label", delim, lines[0], numbered=False)]
    number_keys = ["data.csv_fields.numeric"] * len(spec.numeric) + ["data.csv_fields.label"]
    cats: list[list[str]] = []
    nums: list[list[float]] = []
    linenos: list[int] = []
    for lineno, row in records[1:]:
        if not row:
            continue  # a blank line
        if len(row) != len(names):
            bad.bad(lineno, f"{len(row)} columns where the header has {len(names)}")
            continue
        parsed = []
        for column, key in zip(numbers, number_keys):
            try:
                parsed.append(parse_number(row[column]))
            except ValueError as exc:
                bad.bad(lineno, f"column '{names[column]}' ({key}) holds '{row[column].strip()}', which is {exc}")
                break
        if len(parsed) < len(numbers):
            continue
        nums.append(parsed)
        cats.append([row[i].strip(" \t") for i in categorical])
        linenos.append(lineno)
    bad.finish()
    if not linenos:
        why = f"all {len(bad.lines)} data line(s) were malformed and skipped" if bad.lines else "no line below the header"
        raise GraphrecError(f"{path}: {why}; the file needs a header naming its columns and one row per line")
    values = np.asarray(nums, dtype=np.float64)
    beyond = np.abs(values) > np.finfo(np.float32).max
    if beyond.any():
        row = int(np.argwhere(beyond)[0, 0])
        raise GraphrecError(f"{path} line {linenos[row]}: a number beyond float32 (about 3.4e38); rescale the column")
    values = values.astype(np.float32)
    return CsvFieldsTable(path, np.asarray(cats, dtype=np.str_).reshape(len(cats), len(categorical)),
                          values[:, :-1], values[:, -1], np.asarray(linenos, dtype=np.int64))


def csv_field_rows(tables: Mapping[str, CsvFieldsTable], spec: CsvFieldsConfig, warnings: WarningLog
                   ) -> tuple[dict[str, FieldRows], FieldSpace]:
    """Rows of every split in one feature space: the categorical fields (ids: each field's train values, sorted,
    then its unknown feature when another split has unseen values), then one feature per numeric field."""
    fit = next(tables[s] for s in FIT_SPLITS if s in tables)
    vocab = [np.unique(fit.categorical[:, j]) for j in range(len(spec.categorical))]
    codes, seen = {}, {}
    for split, table in tables.items():
        codes[split], seen[split] = _encode(table.categorical, vocab)
        _report_unseen(table, seen[split], spec, warnings)
    unknown = np.any([~s.all(axis=0) for s in seen.values()], axis=0)  # (c,) fields with unseen values
    sizes = np.concatenate([np.asarray([len(v) for v in vocab], dtype=np.int64) + unknown,
                            np.ones(len(spec.numeric), dtype=np.int64)])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = {}
    for split, table in tables.items():
        n, c = table.categorical.shape
        features = np.tile(offsets, (n, 1))
        features[:, :c] += codes[split]
        values = np.concatenate([np.ones((n, c), np.float32), table.numeric], axis=1)
        rows[split] = FieldRows(features, values, table.label)
    field_of_feature = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    return rows, FieldSpace(int(sizes.sum()), field_of_feature, list(spec.categorical) + list(spec.numeric))


def _encode(values: np.ndarray, vocab: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) int64 position of each value in its field's sorted vocabulary (its size when unseen) and the (n, c)
    mask of seen values."""
    codes = np.zeros(values.shape, dtype=np.int64)
    seen = np.ones(values.shape, dtype=bool)
    for j, words in enumerate(vocab):
        pos = np.minimum(np.searchsorted(words, values[:, j]), len(words) - 1)
        seen[:, j] = words[pos] == values[:, j]
        codes[:, j] = np.where(seen[:, j], pos, len(words))
    return codes, seen


def _report_unseen(table: CsvFieldsTable, seen: np.ndarray, spec: CsvFieldsConfig, warnings: WarningLog) -> None:
    """Refuse (unseen: error) or warn about, with counts per field, the categorical values the train file lacks."""
    if seen.all():
        return
    row, col = np.argwhere(~seen)[0]
    first = f"line {table.lineno[row]}: column '{spec.categorical[col]}' holds '{table.categorical[row, col]}'"
    if spec.unseen == "error":
        raise GraphrecError(f"{table.path} {first}, which the train file does not; fix the line, or set "
                            "data.csv_fields.unseen: unknown to map unseen values to their field's unknown feature")
    counts = (~seen).sum(axis=0)
    per_field = ", ".join(f"{name} {k}" for name, k in zip(spec.categorical, counts) if k)
    warnings.warn("unseen_values", int(counts.sum()),
                  f"{table.path}: {int(counts.sum())} value(s) that the train file lacks map to their field's "
                  f"unknown feature ({per_field}; first: {first})")
