"""libFM files (`label idx:val idx:val ...`) read into feature-field rows with one feature per field."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..errors import GraphrecError, WarningLog
from .fields import FieldRows, FieldSpace
from .formats import BadLines, _open_text, id_problem, is_number, parse_id, parse_number, split_fields

LAYOUT = "`label idx:value idx:value ...` with the same number of features on every line"


@dataclass
class LibfmTable:
    """One libFM file: (n,) float32 labels, (n, w) int64 raw feature indices and float32 values, (n,) line numbers."""

    path: Path
    label: np.ndarray
    index: np.ndarray
    value: np.ndarray
    lineno: np.ndarray

    def where(self, row: int) -> str:
        """'file line N' of a row, for error messages."""
        return f"{self.path} line {self.lineno[row]}"


def read_libfm(path: Path, skip_bad_lines: bool, warnings: WarningLog) -> LibfmTable:
    """Read `label idx:val ...` lines; malformed lines or lines with another feature count are refused or skipped."""
    path = Path(path)
    lines = _open_text(path)
    counts = Counter(len(split_fields(line)) - 1 for line in lines[:2000] if line.strip())
    width = counts.most_common(1)[0][0]
    if width < 1:
        raise GraphrecError(f"{path}: lines hold a label but no features; is this a libFM file? ({LAYOUT})")
    bad = BadLines(path, skip_bad_lines, warnings)
    labels: list[float] = []
    indices: list[list[int]] = []
    values: list[list[float]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines, 1):
        tokens = split_fields(line)
        if not tokens:
            continue
        if len(tokens) - 1 != width:
            bad.bad(lineno, f"{len(tokens) - 1} features where the rest of the file has {width} ({LAYOUT})")
            continue
        try:  # the readers' one id and number parsers: no '1_0', no NaN, no id beyond int64
            label = parse_number(tokens[0])
            pairs = [token.split(":") for token in tokens[1:]]
            index = [parse_id(i) for i, _ in pairs]
            value = [parse_number(v) for _, v in pairs]
        except ValueError:
            bad.bad(lineno, _why_malformed(tokens))
            continue
        labels.append(label)
        indices.append(index)
        values.append(value)
        linenos.append(lineno)
    bad.finish()
    if not labels:
        raise GraphrecError(f"{path}: all {len(bad.lines)} line(s) were malformed and skipped; is this a libFM "
                            f"file? ({LAYOUT})")
    return LibfmTable(path, np.asarray(labels, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                      np.asarray(values, dtype=np.float32), np.asarray(linenos, dtype=np.int64))


def _why_malformed(tokens: list[str]) -> str:
    """The first token of a malformed line that does not parse, and why."""
    if not is_number(tokens[0]):
        return f"the label '{tokens[0]}' is not a number ({LAYOUT})"
    for token in tokens[1:]:
        index, sep, value = token.partition(":")
        if not sep or ":" in value:
            return f"'{token}' is not one idx:value pair ({LAYOUT})"
        if id_problem(index):
            return f"the feature index in '{token}' is not a non-negative integer within int64 ({LAYOUT})"
        if not is_number(value):
            return f"the value in '{token}' is not a finite number ({LAYOUT})"
    return f"malformed line ({LAYOUT})"


def to_field_rows(tables: Mapping[str, LibfmTable], field_map: Optional[Mapping[str, Sequence[int]]] = None
                  ) -> tuple[dict[str, FieldRows], FieldSpace]:
    """Rows with fields inferred from disjoint per-position index ranges, or from `field_map` {name: [first, last]};
    raw indices are re-indexed to 0..n-1 over the union of the files, grouped by field."""
    if field_map is None:
        first, last, names = _inferred_fields(tables)
    else:
        first, last, names = _declared_fields(field_map)
    slotted = {split: _by_field(table, first, last, field_map is not None) for split, table in tables.items()}
    raw = np.unique(np.concatenate([index.ravel() for index, _ in slotted.values()]))
    raw_field = _field_of(raw, first, last)
    by_field = np.lexsort((raw, raw_field))  # field 0's features first, then field 1's, ...
    raw, raw_field = raw[by_field], raw_field[by_field]
    order = np.argsort(raw)
    rows = {}
    for split, (index, value) in slotted.items():
        features = order[np.searchsorted(raw, index, sorter=order)].astype(np.int64)
        rows[split] = FieldRows(features, value, tables[split].label)
    space = FieldSpace(len(raw), raw_field.astype(np.int64), names)
    return rows, space


def _inferred_fields(tables: Mapping[str, LibfmTable]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Field j = feature position j: its [first, last] index range over all files, checked disjoint from the others."""
    widths = {split: table.index.shape[1] for split, table in tables.items()}
    if len(set(widths.values())) > 1:
        shown = ", ".join(f"{tables[s].path} has {w}" for s, w in widths.items())
        raise GraphrecError(f"the files disagree on the number of features per line ({shown}); every row needs one "
                            "feature per field")
    first = np.min([table.index.min(axis=0) for table in tables.values()], axis=0)
    last = np.max([table.index.max(axis=0) for table in tables.values()], axis=0)
    by_start = np.argsort(first, kind="stable")
    for a, b in zip(by_start[:-1], by_start[1:]):
        if first[b] <= last[a]:
            raise GraphrecError(f"fields cannot be inferred: feature position {a + 1} spans indices "
                                f"{first[a]}-{last[a]} and position {b + 1} spans {first[b]}-{last[b]}, which "
                                "overlap; give the fields as data.fields: {name: [first, last], ...}")
    return first, last, [f"field{j}" for j in range(len(first))]


def _declared_fields(field_map: Mapping[str, Sequence[int]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """[first, last] index ranges and names from a field map, checked well-formed and disjoint."""
    if not field_map:
        raise GraphrecError("data.fields is empty; give {name: [first, last], ...} or leave it out to infer fields")
    for name, span in field_map.items():
        ok = (isinstance(span, Sequence) and len(span) == 2 and all(isinstance(v, int) and v >= 0 for v in span)
              and span[0] <= span[1])
        if not ok:
            raise GraphrecError(f"data.fields.{name} is {span!r}; give the field's [first, last] feature indices, "
                                "two non-negative integers with first <= last")
    names = list(field_map)
    first = np.asarray([field_map[n][0] for n in names], dtype=np.int64)
    last = np.asarray([field_map[n][1] for n in names], dtype=np.int64)
    by_start = np.argsort(first, kind="stable")
    for a, b in zip(by_start[:-1], by_start[1:]):
        if first[b] <= last[a]:
            raise GraphrecError(f"data.fields.{names[a]} {[int(first[a]), int(last[a])]} and data.fields.{names[b]} "
                                f"{[int(first[b]), int(last[b])]} overlap; fields need disjoint index ranges")
    return first, last, names


def _field_of(index: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Field number of each raw index (same shape), -1 outside every field."""
    by_start = np.argsort(first)
    pos = np.searchsorted(first[by_start], index, side="right") - 1
    field = by_start[np.maximum(pos, 0)]
    return np.where((pos >= 0) & (index <= last[field]), field, -1)


def _by_field(table: LibfmTable, first: np.ndarray, last: np.ndarray, declared: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """(n, f) raw indices and values of a table in field order; one-line error for a row that does not fit."""
    field = _field_of(table.index, first, last)
    if (field < 0).any():
        row, col = np.argwhere(field < 0)[0]
        raise GraphrecError(f"{table.where(row)}: feature index {table.index[row, col]} is outside the declared "
                            "fields (data.fields); add it to a field's [first, last] range or fix the line")
    if not declared:
        return table.index, table.value
    num_fields = len(first)
    if table.index.shape[1] != num_fields:
        raise GraphrecError(f"{table.where(0)}: {table.index.shape[1]} features per line for the {num_fields} fields "
                            "of data.fields; every line needs exactly one feature of each field")
    order = np.argsort(field, axis=1, kind="stable")
    field = np.take_along_axis(field, order, axis=1)
    repeats = field[:, 1:] == field[:, :-1]
    if repeats.any():
        row, col = np.argwhere(repeats)[0]
        a, b = table.index[row, order[row, col]], table.index[row, order[row, col + 1]]
        raise GraphrecError(f"{table.where(row)}: features {a} and {b} are in the same field of data.fields; every "
                            "line needs exactly one feature of each field")
    return np.take_along_axis(table.index, order, axis=1), np.take_along_axis(table.value, order, axis=1)


def write_libfm(path: Path, features: np.ndarray, label: np.ndarray) -> None:
    """Write (n,) integer labels and (n, f) feature ids as libFM lines `label id:1 id:1 ...` (one-hot values)."""
    table = np.column_stack([label.astype(np.int64), features.astype(np.int64)])
    np.savetxt(path, table, fmt="%d" + " %d:1" * features.shape[1])
