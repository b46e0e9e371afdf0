"""libFM reading into feature-field rows, task labels, and `graphrec data prepare frappe-nfm` on hand-made files."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from graphrec.data import prepare
from graphrec.data.fields import labels_for_task
from graphrec.data.libfm import read_libfm, to_field_rows
from graphrec.errors import GraphrecError, WarningLog

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRAPHREC_DATA") or REPO / ".." / "shared" / "data").resolve()
needs_frappe = pytest.mark.skipif(not (SHARED / "frappe").is_dir(), reason="shared/data/frappe is not here")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read(path: Path, skip: bool = False, warnings: WarningLog | None = None):
    return read_libfm(path, skip, warnings or WarningLog())


# ---------------------------------------------------------------- reader

def test_reader_keeps_labels_indices_values_and_line_numbers(tmp_path):
    table = read(write(tmp_path / "a.libfm", "1 0:1 10:0.5 20:1\n\n-1 2:1 11:1 21:2.5\n"))
    assert table.label.tolist() == [1.0, -1.0]
    assert table.index.tolist() == [[0, 10, 20], [2, 11, 21]]
    assert table.value.tolist() == [[1.0, 0.5, 1.0], [1.0, 1.0, 2.5]]
    assert table.lineno.tolist() == [1, 3]


@pytest.mark.parametrize("line, why", [
    ("x 1:1 11:1", "the label 'x' is not a number"),
    ("1 1:1 11", "'11' is not one idx:value pair"),
    ("1 1:1 -3:1", "the feature index in '-3:1' is not a non-negative integer"),
    ("1 1:1 1.5:1", "the feature index in '1.5:1' is not a non-negative integer"),
    ("1 1:1 11:abc", "the value in '11:abc' is not a finite number"),
    ("1 1:1 11:nan", "the value in '11:nan' is not a finite number"),
    ("1 1:1 11:1:1", "'11:1:1' is not one idx:value pair"),
    ("1 1:1", "1 features where the rest of the file has 2"),
])
def test_malformed_line_is_refused_with_file_and_line(tmp_path, line, why):
    path = write(tmp_path / "bad.libfm", f"1 0:1 10:1\n-1 2:1 12:1\n{line}\n1 3:1 13:1\n")
    with pytest.raises(GraphrecError) as err:
        read(path)
    message = str(err.value)
    assert message.startswith(f"{path} line 3: {why}") and "data.skip_bad_lines" in message
    assert "\n" not in message


def test_malformed_lines_are_skipped_and_counted_when_asked(tmp_path):
    path = write(tmp_path / "bad.libfm", "1 0:1 10:1\nbad line\n-1 2:1 12:1\n1 3:1\n1 3:1 13:1\n")
    warnings = WarningLog()
    table = read(path, skip=True, warnings=warnings)
    assert table.lineno.tolist() == [1, 3, 5]
    assert table.index.tolist() == [[0, 10], [2, 12], [3, 13]]
    assert warnings.counts["skipped_bad_lines"] == 2
    assert "2, 4" in warnings.messages["skipped_bad_lines"]


def test_file_of_only_bad_lines_or_no_features_is_refused(tmp_path):
    with pytest.raises(GraphrecError, match="all 2 line"):
        read(write(tmp_path / "a.libfm", "x 1:1\ny 2:1\n"), skip=True)
    with pytest.raises(GraphrecError, match="no features"):
        read(write(tmp_path / "b.libfm", "1\n-1\n"))
    with pytest.raises(GraphrecError, match="not found"):
        read(tmp_path / "missing.libfm")


# ---------------------------------------------------------------- fields

def two_files(tmp_path):
    """Field 0 uses indices 0-9, field 1 uses 50-59 (index 57 only in the test file), field 2 uses 100-109."""
    train = read(write(tmp_path / "train.libfm", "1 3:1 50:1 100:1\n-1 0:1 52:1 101:0.5\n1 3:1 52:1 100:1\n"))
    test = read(write(tmp_path / "test.libfm", "-1 0:1 57:1 100:1\n"))
    return {"train": train, "test": test}


def test_inferred_fields_reindex_contiguously_over_all_files(tmp_path):
    rows, space = to_field_rows(two_files(tmp_path))
    # raw indices in use: field0 {0, 3}, field1 {50, 52, 57}, field2 {100, 101} -> ids 0..6 in that order
    assert space.num_features == 7
    assert space.field_of_feature.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert space.field_names == ["field0", "field1", "field2"]
    assert rows["train"].features.tolist() == [[1, 2, 5], [0, 3, 6], [1, 3, 5]]
    assert rows["test"].features.tolist() == [[0, 4, 5]]
    assert rows["train"].values.tolist()[1] == [1.0, 1.0, 0.5]
    assert rows["train"].label.tolist() == [1.0, -1.0, 1.0]
    assert rows["train"].features.dtype == np.int64 and rows["train"].values.dtype == np.float32
    assert len(rows["train"].take(np.array([2]))) == 1 and rows["train"].take(np.array([2])).label.tolist() == [1.0]


def test_overlapping_positions_ask_for_a_field_map(tmp_path):
    tables = {"train": read(write(tmp_path / "t.libfm", "1 1:1 5:1\n1 6:1 2:1\n"))}
    with pytest.raises(GraphrecError, match=r"position 1 spans indices 1-6 and position 2 spans 2-5.*data\.fields"):
        to_field_rows(tables)


def test_files_with_different_widths_are_refused(tmp_path):
    tables = {"train": read(write(tmp_path / "a.libfm", "1 1:1 5:1\n")),
              "test": read(write(tmp_path / "b.libfm", "1 1:1 5:1 9:1\n"))}
    with pytest.raises(GraphrecError, match="disagree on the number of features"):
        to_field_rows(tables)


def test_field_map_places_features_by_range_whatever_their_order(tmp_path):
    tables = {"train": read(write(tmp_path / "t.libfm", "1 1:1 5:1\n-1 6:1 2:0.5\n"))}
    rows, space = to_field_rows(tables, {"user": [0, 3], "item": [4, 9]})
    assert space.field_names == ["user", "item"]
    assert space.field_of_feature.tolist() == [0, 0, 1, 1]
    assert rows["train"].features.tolist() == [[0, 2], [1, 3]]
    assert rows["train"].values.tolist() == [[1.0, 1.0], [0.5, 1.0]]


def test_field_map_refuses_an_index_outside_and_a_repeated_field(tmp_path):
    tables = {"train": read(write(tmp_path / "t.libfm", "1 1:1 5:1\n-1 12:1 2:1\n"))}
    with pytest.raises(GraphrecError, match=r"t\.libfm line 2: feature index 12 is outside the declared fields"):
        to_field_rows(tables, {"user": [0, 3], "item": [4, 9]})
    tables = {"train": read(write(tmp_path / "u.libfm", "1 1:1 5:1\n-1 1:1 2:1\n"))}
    with pytest.raises(GraphrecError, match=r"u\.libfm line 2: features 1 and 2 are in the same field"):
        to_field_rows(tables, {"user": [0, 3], "item": [4, 9]})
    with pytest.raises(GraphrecError, match="2 features per line for the 3 fields"):
        to_field_rows(tables, {"user": [0, 3], "item": [4, 9], "tag": [10, 20]})


@pytest.mark.parametrize("field_map, why", [
    ({"user": [0, 3], "item": [3, 9]}, "data.fields.user .* and data.fields.item .* overlap"),
    ({"user": [5, 3]}, r"data.fields.user is \[5, 3\]"),
    ({"user": [0]}, r"data.fields.user is \[0\]"),
    ({}, "data.fields is empty"),
])
def test_bad_field_maps_are_refused(tmp_path, field_map, why):
    tables = {"train": read(write(tmp_path / "t.libfm", "1 1:1 5:1\n"))}
    with pytest.raises(GraphrecError, match=why):
        to_field_rows(tables, field_map)


def test_labels_for_task():
    assert labels_for_task(np.array([1, -1, 1]), "classification", "f").tolist() == [1.0, 0.0, 1.0]
    assert labels_for_task(np.array([0, 1]), "classification", "f").tolist() == [0.0, 1.0]
    assert labels_for_task(np.array([1, -1, 0.5]), "regression", "f").tolist() == [1.0, -1.0, 0.5]
    with pytest.raises(GraphrecError, match=r"train\.libfm: labels \{-1, 0, 1\} are not binary"):
        labels_for_task(np.array([1, 0, -1]), "classification", "train.libfm")
    with pytest.raises(GraphrecError, match="not a finite number"):
        labels_for_task(np.array([1, np.inf]), "regression", "train.libfm")


@needs_frappe
def test_reads_nfm_frappe_files_with_inferred_fields():
    folder = SHARED / "frappe"
    tables = {"train": read(folder / "frappe.validation.libfm"), "test": read(folder / "frappe.test.libfm")}
    rows, space = to_field_rows(tables)
    assert len(rows["train"]) == 57722 and len(rows["test"]) == 28860  # SOURCE.md
    assert int((rows["train"].label > 0).sum()) == 19063 and int((rows["train"].label < 0).sum()) == 38659
    assert space.num_fields == 10 and space.num_features == 5328  # 5,328 of 5,382 ids occur in these two files
    assert np.bincount(space.field_of_feature)[1] == 4082  # all 4,082 apps
    assert set(np.unique(rows["test"].values)) == {1.0}


# ---------------------------------------------------------------- data prepare frappe-nfm

HEADER = "user,item,cnt,daytime,weekday,isweekend,homework,weather,country,city\n"


def tiny_context(folder: Path, duplicate: bool = True) -> Path:
    """40 log rows over 4 users, 30 items (ids 100..129) and a few context values; one exact duplicate."""
    rng = np.random.default_rng(5)
    lines = [HEADER]
    for n in range(40):
        user, item = n % 4, 100 + int(rng.integers(0, 30))
        ctx = [int(rng.integers(0, 2)), 7 + n % 3, 14, 16, 19, 27, 100 + n % 2]
        lines.append(f"{user},{item},{rng.random():.3f}," + ",".join(map(str, ctx)) + "\n")
    if duplicate:
        lines.append(lines[1].replace(lines[1].split(",")[2], "9.9"))  # same ids, another cnt
    return write(folder / "final_app.csv", "".join(lines))


def prepare_args(source: Path, out: Path, seed: int = 0) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    prepare.add_parser(parser.add_subparsers())
    return parser.parse_args(["prepare", "frappe-nfm", "--from", str(source), "--out", str(out), "--seed", str(seed)])


def run_prepare(source: Path, out: Path, seed: int = 0) -> dict:
    args = prepare_args(source, out, seed)
    assert args.func(args) == 0
    return json.loads((out / "SOURCE.json").read_text())


def test_prepare_frappe_nfm_protocol(tmp_path, capsys):
    csv = tiny_context(tmp_path / "ctx")
    record = run_prepare(tmp_path / "ctx", tmp_path / "out" / "frappe-nfm")
    out = tmp_path / "out" / "frappe-nfm"
    assert sorted(p.name for p in out.iterdir()) == ["SOURCE.json", "test.libfm", "train.libfm", "validation.libfm"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["frappe-nfm"]  # no temp folder left
    counts = record["counts"]
    assert counts["log_rows"] == 41 and counts["duplicates_dropped"] == 1
    assert counts["positives"] == 40 and counts["negatives"] == 80
    assert counts["rows"] == {"train": 84, "valid": 24, "test": 12}  # 7:2:1 of 120
    assert record["inputs"][0]["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert record["seed"] == 0 and "--seed 0" in record["command"] and record["graphrec_version"]
    data = record["data"]
    assert data["format"] == "libfm" and data["path"] == str(out.resolve())
    assert "files: {train: train.libfm, valid: validation.libfm, test: test.libfm}" in capsys.readouterr().out

    tables = {split: read(out / name) for split, name in data["files"].items()}
    rows, space = to_field_rows(tables, data["fields"])
    inferred, _ = to_field_rows(tables)
    assert all((rows[s].features == inferred[s].features).all() for s in rows)  # ranges are disjoint per position
    assert space.field_names == list(prepare.FRAPPE_FIELDS)
    every = np.concatenate([r.features for r in rows.values()])
    label = np.concatenate([r.label for r in rows.values()])
    assert set(label.tolist()) == {1.0, -1.0} and (label > 0).sum() == 40
    assert len(np.unique(every, axis=0)) == len(every)  # no negative equals an observed row or another negative
    context = [j for j in range(9) if j != 1]
    positive_keys = {tuple(r) for r in every[label > 0][:, context]}
    negative_keys = [tuple(r) for r in every[label < 0][:, context]]
    assert set(negative_keys) <= positive_keys  # a negative keeps a positive's user and context
    per_context = {key: negative_keys.count(key) for key in positive_keys}
    positives_per_context = {key: 0 for key in positive_keys}
    for key in (tuple(r) for r in every[label > 0][:, context]):
        positives_per_context[key] += 1
    assert all(per_context[k] == 2 * positives_per_context[k] for k in positive_keys)  # 2 per positive


def test_prepare_is_seeded(tmp_path):
    tiny_context(tmp_path / "ctx")
    run_prepare(tmp_path / "ctx", tmp_path / "a")
    run_prepare(tmp_path / "ctx", tmp_path / "b")
    run_prepare(tmp_path / "ctx", tmp_path / "c", seed=1)
    same = [(tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in prepare.FILES.values()]
    assert all(same)
    assert (tmp_path / "a" / "train.libfm").read_bytes() != (tmp_path / "c" / "train.libfm").read_bytes()


def test_prepare_refuses_bad_input_and_writes_nothing(tmp_path):
    tiny_context(tmp_path / "ctx")
    taken = write(tmp_path / "taken" / "keep.txt", "mine")
    with pytest.raises(GraphrecError, match="already exists and is not an empty folder"):
        run_prepare(tmp_path / "ctx", taken.parent)
    assert [p.name for p in taken.parent.iterdir()] == ["keep.txt"]
    with pytest.raises(GraphrecError, match="no final_app.csv there"):
        run_prepare(tmp_path, tmp_path / "x")
    write(tmp_path / "bad" / "final_app.csv", HEADER.replace("weather", "wether") + "0,1,0,0,7,14,16,19,27,100\n")
    with pytest.raises(GraphrecError, match=r"line 1: no column 'weather'"):
        run_prepare(tmp_path / "bad", tmp_path / "x")
    write(tmp_path / "neg" / "final_app.csv", HEADER + "0,1,0,0,7,14,16,19,27,100\n0,-2,0,0,7,14,16,19,27,100\n")
    with pytest.raises(GraphrecError, match="line 3: ids must be non-negative integers"):
        run_prepare(tmp_path / "neg", tmp_path / "x")
    write(tmp_path / "txt" / "final_app.csv", HEADER + "0,1,0,0,7,14,16,19,27,100\n\n0,a,0,0,7,14,16,19,27,100\n")
    with pytest.raises(GraphrecError, match="line 4: the item 'a' is not an id"):
        run_prepare(tmp_path / "txt", tmp_path / "x")
    write(tmp_path / "short" / "final_app.csv", HEADER + "0,1,0,0,7,14,16,19,27,100\n0,1,0,0,7\n")
    with pytest.raises(GraphrecError, match="line 3: 5 columns where the header has 10"):
        run_prepare(tmp_path / "short", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_prepare_leaves_no_temp_folder_when_building_fails(tmp_path):
    # 2 items, one positive per (user, context): one unobserved item cannot give 2 negatives
    write(tmp_path / "few" / "final_app.csv", HEADER + "0,1,0,0,7,14,16,19,27,100\n0,2,0,1,7,14,16,19,27,100\n")
    with pytest.raises(GraphrecError, match="too few unobserved items"):
        run_prepare(tmp_path / "few", tmp_path / "out" / "x")
    assert list((tmp_path / "out").iterdir()) == []
