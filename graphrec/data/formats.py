"""Readers of interaction files into raw columns; every malformed line is named by file and line number."""
from __future__ import annotations

import csv
import difflib
import math
import re
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import GraphrecError, WarningLog
from .dataset import Interactions


class BadLines:
    """Refuses (default) or skips and counts lines that do not fit the file's layout."""

    def __init__(self, path: Path, skip: bool, warnings: WarningLog) -> None:
        self.path, self.skip, self.warnings, self.lines = path, skip, warnings, []

    def bad(self, lineno: int, why: str, last: Optional[int] = None) -> None:
        """Report line `lineno` (to `last`, for a record over several lines) of the file; raise unless skipping."""
        if not self.skip:
            where = f"line {lineno}" if last is None or last == lineno else f"lines {lineno}-{last}"
            raise GraphrecError(f"{self.path} {where}: {why}; fix the line or set data.skip_bad_lines: true")
        self.lines.extend(range(lineno, (last or lineno) + 1))

    def finish(self) -> None:
        """Emit one warning with the count and the first line numbers of what was skipped."""
        if self.lines:
            shown = ", ".join(map(str, self.lines[:10])) + (" ..." if len(self.lines) > 10 else "")
            self.warnings.warn("skipped_bad_lines", len(self.lines),
                               f"{self.path}: skipped {len(self.lines)} malformed line(s): {shown}")


def _open_text(path: Path) -> list[str]:
    """All lines of a text file, with one-line errors for a missing, empty or binary file."""
    if path.is_dir():
        raise GraphrecError(f"data file '{path}' is a folder; data.files must name files inside data.path")
    if not path.is_file():
        raise GraphrecError(f"data file '{path}' not found; check data.path and data.files")
    payload = path.read_bytes()  # not read_text(): its universal newlines would make a stray \r a line end
    try:
        text = payload.decode("utf-8-sig")  # a byte-order mark is not data
    except UnicodeDecodeError as exc:
        if payload[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise GraphrecError(f"{path}: the file is saved as UTF-16; save it as UTF-8") from None
        line = payload[:exc.start].count(b"\n") + 1
        raise GraphrecError(f"{path} line {line}: not UTF-8 text (a compressed or binary file?); "
                            "decompress it or convert it to UTF-8") from None
    if "\x00" in text:  # numpy's text arrays would even drop it from ids
        line = text[:text.index("\x00")].count("\n") + 1
        raise GraphrecError(f"{path} line {line}: the file holds NUL bytes, so it is not plain text (binary, or "
                            "UTF-16?); convert it to UTF-8 text")
    # lines end at \n (and \r\n) only: str.splitlines would also break at \x0c, \x1c-\x1e or \u2028 in a line
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in (lines[:-1] if lines[-1] == "" else lines)]
    inner = next((n for n, line in enumerate(lines, 1) if "\r" in line), None)
    if inner is not None:
        raise GraphrecError(f"{path} line {inner}: a carriage return (\\r) inside the line (old Mac line ends?); "
                            "save the file with \\n or \\r\\n line ends")
    if not any(line.strip() for line in lines):
        raise GraphrecError(f"{path}: the file is empty; point data.files at the file with the interactions")
    return lines


def _no_rows(path: Path, skipped: int, layout: str) -> GraphrecError:
    """The error for a file in which no line held an interaction."""
    why = f"all {skipped} line(s) were malformed and skipped" if skipped else "no line holds an interaction"
    return GraphrecError(f"{path}: {why}; is data.format right? (this reader expects {layout})")


MAX_ID = int(np.iinfo(np.int64).max)
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def id_problem(token: str) -> Optional[str]:
    """Why a token is not an integer id (ASCII digits, at most 2**63 - 1), or None if it is one.

    Stricter than int(), which also takes '1_0' (as 10), '+3', ' 3' and other scripts' digits.
    """
    if not (token.isascii() and token.isdigit()):
        return f"'{token.strip()}' is not a non-negative integer id"
    if len(token) > 18 and int(token) > MAX_ID:
        return f"the id '{token}' is beyond the largest integer id 2**63 - 1 (renumber the ids)"
    return None


def parse_id(token: str) -> int:
    """The integer id a token holds; ValueError with id_problem's reason otherwise. The one id parser of every
    reader."""
    problem = id_problem(token)
    if problem is not None:
        raise ValueError(problem)
    return int(token)


def parse_number(token: str) -> float:
    """A finite decimal number ('4', '-0.5', '1e3'); ValueError for anything else, NaN and inf included."""
    token = token.strip()
    if not NUMBER.fullmatch(token):
        raise ValueError("not a number" if token.lower().lstrip("+-") not in ("nan", "inf", "infinity")
                         else "not a finite number")
    value = float(token)
    if not math.isfinite(value):
        raise ValueError("not a finite number (too large)")
    return value


ASCII_BLANKS = re.compile(r"[ \t\r\x0b\x0c]+")


def split_fields(line: str, delimiter: Optional[str] = None) -> list[str]:
    """The fields of a line: split at `delimiter`, or at runs of ASCII blanks (str.split() would also split at
    \x1c-\x1f and Unicode spaces, turning a stray control character into a separator)."""
    if delimiter is not None:
        return [field.strip(" \t\r") for field in line.split(delimiter)]
    if line.isascii() and not any(c in line for c in "\x1c\x1d\x1e\x1f"):  # the fast, common case
        return line.split()
    return [field for field in ASCII_BLANKS.split(line) if field]


def read_lightgcn(path: Path, skip_bad_lines: bool, warnings: WarningLog) -> Interactions:
    """LightGCN txt: one line per user, `user item item ...`; a line with the user alone has no items."""
    bad = BadLines(path, skip_bad_lines, warnings)
    users: list[int] = []
    items: list[int] = []
    for lineno, line in enumerate(_open_text(path), 1):
        tokens = split_fields(line)
        if not tokens:
            continue
        try:
            ids = [parse_id(t) for t in tokens]
        except ValueError as exc:
            bad.bad(lineno, f"{exc} (format lightgcn: `user item item ...` separated by whitespace)")
            continue
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
    bad.finish()
    if not users:
        raise _no_rows(path, len(bad.lines), "`user item item ...` per line")
    return Interactions(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))


def read_pairs(path: Path, skip_bad_lines: bool, warnings: WarningLog, delimiter: Optional[str] = None) -> Interactions:
    """One event per line, `user item [label]`; the column count is inferred and every line must match it."""
    lines = _open_text(path)
    widths = Counter(len(split_fields(line, delimiter)) for line in lines[:2000] if line.strip())
    width = widths.most_common(1)[0][0]
    if width < 2:
        sample = next(line for line in lines if line.strip())[:40]
        guess = next((d for d in (",", ";", "\t", "|") if d in sample), None)
        how = (f"set data.delimiter: {guess!r}" if guess and delimiter is None else
               "set data.delimiter to the separator the file uses" if delimiter is None else
               f"data.delimiter is {delimiter!r}: is that the file's separator?")
        raise GraphrecError(f"{path} line 1: found {width} column per line ({sample!r}); format pairs needs "
                            f"`user item [label]`: {how}")
    bad = BadLines(path, skip_bad_lines, warnings)
    users, items, labels = [], [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        tokens = split_fields(line, delimiter)
        if len(tokens) != width:
            bad.bad(lineno, f"expected {width} columns like the rest of the file, found {len(tokens)}")
            continue
        problem = id_problem(tokens[0]) or id_problem(tokens[1])
        if problem is not None:
            hint = ("a header line? pairs files have none: remove it or use data.format: csv" if lineno == 1 else
                    "format pairs needs non-negative integer ids; for string ids use data.format: csv")
            bad.bad(lineno, f"{problem} ({hint})")
            continue
        user, item = int(tokens[0]), int(tokens[1])
        try:
            label = parse_number(tokens[2]) if width > 2 else 1.0
        except ValueError as exc:
            bad.bad(lineno, f"the label '{tokens[2].strip()}' is {exc}")
            continue
        users.append(user)
        items.append(item)
        labels.append(label)
    bad.finish()
    if not users:
        raise _no_rows(path, len(bad.lines), "`user item [label]` per line")
    rating = np.asarray(labels, dtype=np.float32) if width > 2 else None
    return Interactions(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), rating)


def _columns_from_rows(path: Path, rows: list[tuple[int, list[str]]], index: dict[str, int],
                       skip_bad_lines: bool, warnings: WarningLog, bad: Optional[BadLines] = None) -> Interactions:
    """Pick user/item/rating/timestamp columns out of tokenized rows, checking widths and numbers."""
    bad = bad or BadLines(path, skip_bad_lines, warnings)
    width = max(index.values()) + 1
    out: dict[str, list] = {name: [] for name in index}
    numeric = [name for name in ("rating", "timestamp") if name in index]
    for lineno, tokens in rows:
        if len(tokens) < width:
            bad.bad(lineno, f"expected at least {width} columns, found {len(tokens)}")
            continue
        values = {}
        for name in numeric:
            try:
                values[name] = parse_number(tokens[index[name]])
            except ValueError as exc:
                bad.bad(lineno, f"the {name} '{tokens[index[name]].strip()}' (column {index[name]}) is {exc}")
                break
        if len(values) < len(numeric):
            continue
        ids = [tokens[index["user"]].strip(" \t"), tokens[index["item"]].strip(" \t")]
        if not all(ids):
            bad.bad(lineno, "empty user or item id")
            continue
        too_large = next((t for t in ids if t.isascii() and t.isdigit() and id_problem(t)), None)
        if too_large is not None:
            bad.bad(lineno, id_problem(too_large))
            continue
        out["user"].append(ids[0])
        out["item"].append(ids[1])
        for name in numeric:
            out[name].append(values[name])
    bad.finish()
    if not out["user"]:
        raise _no_rows(path, len(bad.lines), "the columns named in data.columns")
    return Interactions(_as_ids(out["user"]), _as_ids(out["item"]),
                    np.asarray(out["rating"], dtype=np.float32) if "rating" in out else None,
                    np.asarray(out["timestamp"], dtype=np.float64) if "timestamp" in out else None)


def is_number(token: str) -> bool:
    """Whether parse_number accepts the token (a finite decimal number)."""
    try:
        parse_number(token)
        return True
    except ValueError:
        return False


def _as_ids(tokens: list[str]) -> np.ndarray:
    """Integer ids where every token is one (parse_id), else string ids (so '1_0' stays apart from '10')."""
    if all(id_problem(t) is None for t in tokens):
        return np.asarray([int(t) for t in tokens], dtype=np.int64)
    return np.asarray(tokens, dtype=object)


def read_atomic(path: Path, columns: dict[str, str], skip_bad_lines: bool, warnings: WarningLog) -> Interactions:
    """RecBole atomic `.inter`: tab-separated with a typed header such as `user_id:token item_id:token`."""
    lines = _open_text(path)
    fields = lines[0].split("\t")
    if len(fields) == 1 and len(lines[0].split()) > 1:
        raise GraphrecError(f"{path} line 1: no tab in the header {lines[0][:60]!r}; atomic files are "
                            "tab-separated (convert the separators to tabs, or use data.format: csv with "
                            "data.delimiter)")
    if not all(":" in f for f in fields):
        untyped = next(f for f in fields if ":" not in f)
        raise GraphrecError(f"{path} line 1: header field {untyped.strip()!r} has no type; atomic files start "
                            "with a typed header like `user_id:token<TAB>item_id:token<TAB>rating:float` "
                            "(for a plain header use data.format: csv)")
    header = [h.split(":")[0].strip() for h in fields]
    wanted = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
    wanted.update({k: str(v) for k, v in columns.items()})
    index: dict[str, int] = {}
    for role, name in wanted.items():
        if name in header:
            index[role] = header.index(name)
        elif role in ("user", "item") or role in columns:
            raise GraphrecError(f"{path} line 1: the header has no field '{name}' for the {role} ({header}); "
                                f"set data.columns.{role} to one of them")
    rows = [(n, line.split("\t")) for n, line in enumerate(lines[1:], 2) if line.strip()]
    return _columns_from_rows(path, rows, index, skip_bad_lines, warnings)


def csv_records(path: Path, delimiter: Optional[str], header: bool, bad: BadLines
                ) -> tuple[list[str], str, list[tuple[int, list[str]]]]:
    """(lines, delimiter, (line number, fields) records) of a CSV/TSV file, one record per line (a quoted field does
    not run over a line end); broken quoting goes to `bad`, in a header it is an error."""
    lines = _open_text(path)
    delim = delimiter or ("\t" if path.suffix in (".tsv", ".tab") else ",")
    records: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines, 1):
        try:  # strict: a quote left open or text after a closing quote is an error, not a guess
            row = next(csv.reader([line], delimiter=delim, strict=True), [])
        except csv.Error as exc:
            if header and not records:
                raise GraphrecError(f"{path} line {lineno}: the header's quoting is broken ({exc}); fix it") from None
            bad.bad(lineno, f"broken quoting ({exc}; a quote left open on this line?)")
            continue
        records.append((lineno, row))
    return lines, delim, records


def header_column(path: Path, names: list[str], name: str, key: str, delim: str, first_line: str,
                  numbered: bool = True) -> int:
    """Index of column `name` in the header `names`; otherwise a one-line error naming the file, the config `key`
    and a fix (another delimiter, header: false when `numbered` columns are possible, a close name)."""
    if name in names:
        return names.index(name)
    other = next((d for d in (",", ";", "\t", "|", " ") if d != delim and d in first_line.strip()), None)
    if len(names) == 1 and other:
        hint = f"; the delimiter is {delim!r} but the line has {other!r}: set data.delimiter: {other!r}"
    elif numbered and all(is_number(n) for n in names):
        hint = "; the first line looks like data: set data.header: false and give column numbers"
    else:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {key}: {close[0]}?" if close else f"; set {key} to one of them"
    raise GraphrecError(f"{path} line 1: no column '{name}' ({key}) in the header {names}{hint}")


def read_csv(path: Path, columns: dict[str, str], delimiter: Optional[str], header: bool,
             skip_bad_lines: bool, warnings: WarningLog) -> Interactions:
    """CSV/TSV with named (header: true) or numbered (header: false) columns given in data.columns; one record per
    line (a quoted field does not run over a line end)."""
    if "user" not in columns or "item" not in columns:
        raise GraphrecError(f"{path}: format csv needs data.columns.user and data.columns.item "
                            f"(column {'names' if header else 'numbers'})")
    bad = BadLines(path, skip_bad_lines, warnings)
    lines, delim, records = csv_records(path, delimiter, header, bad)
    index: dict[str, int] = {}
    if header:
        names = [h.strip() for h in records[0][1]]
        for role, name in columns.items():
            index[role] = header_column(path, names, str(name), f"data.columns.{role}", delim, lines[0])
        body = records[1:]
    else:
        for role, name in columns.items():
            try:
                index[role] = int(name)
            except ValueError:
                raise GraphrecError(f"{path}: data.header is false, so data.columns.{role} must be a column "
                                    f"number, not {name!r}") from None
        body = records
    rows = [(n, row) for n, row in body if row]
    if rows:
        width = Counter(len(row) for _, row in rows[:2000]).most_common(1)[0][0]
        role, column = max(index.items(), key=lambda kv: kv[1])
        if column >= width:
            hint = (f"; is the delimiter {delim!r} right? set data.delimiter" if width == 1 else
                    " (columns are numbered from 0)")
            raise GraphrecError(f"{path}: data.columns.{role} is column {column} but the lines have {width} "
                                f"column(s){hint}")
    return _columns_from_rows(path, rows, index, skip_bad_lines, warnings, bad)
