"""Readers, id maps, filters and data.path resolution on hand-made files; read-only checks of the real datasets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from graphrec.cli import main
from graphrec.config import build_config, config_from_file, resolve_data_path
from graphrec.data import formats
from graphrec.data.loader import load_dataset
from graphrec.errors import GraphrecError, WarningLog

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "data" / "fixtures"
SHARED = Path(os.environ.get("GRAPHREC_DATA") or REPO / ".." / "shared" / "data").resolve()
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repository")

NO_SPLIT = {"method": "random", "valid_ratio": 0.0, "test_ratio": 0.0}  # one file, kept whole as train


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def events(ds, part=None) -> set[tuple]:
    """The (raw user id, raw item id) pairs of a split, through the dataset's id maps."""
    part = ds.train if part is None else part
    return {(u.item() if hasattr(u, "item") else u, i.item() if hasattr(i, "item") else i)
            for u, i in zip(ds.user_ids[part.user], ds.item_ids[part.item])}


def dataset(data: dict, split: dict | None = None, **top):
    return load_dataset(build_config({"data": data, "split": split or NO_SPLIT, **top}))


# ---- LightGCN txt ---------------------------------------------------------------------------------------------
def test_lightgcn_reader(tmp_path):
    path = write(tmp_path / "train.txt", "0 5 6 7\n1 6\n\n2\n3 7 5\n")
    table = formats.read_lightgcn(path, False, WarningLog())
    assert table.user.tolist() == [0, 0, 0, 1, 3, 3]
    assert table.item.tolist() == [5, 6, 7, 6, 7, 5]
    assert table.rating is None and table.timestamp is None


def test_lightgcn_fixture_train_and_test():
    ds = dataset({"path": str(FIXTURES / "tiny_lightgcn"), "format": "lightgcn",
                  "files": {"train": "train.txt", "test": "test.txt"}}, {"valid_ratio": 0.0})
    assert (ds.num_users, ds.num_items, len(ds.train), len(ds.tests["test"])) == (4, 5, 12, 4)
    assert events(ds, ds.tests["test"]) == {(0, 3), (1, 4), (2, 1), (3, 1)}


def test_lightgcn_bad_token_names_file_and_line(tmp_path):
    path = write(tmp_path / "train.txt", "0 1 2\n1 2 x\n")
    with pytest.raises(GraphrecError, match=r"train.txt line 2: 'x' is not a non-negative integer id"):
        formats.read_lightgcn(path, False, WarningLog())


# ---- pairs ----------------------------------------------------------------------------------------------------
def test_pairs_two_columns(tmp_path):
    table = formats.read_pairs(write(tmp_path / "p.txt", "0 1\n2 3\n"), False, WarningLog())
    assert table.user.tolist() == [0, 2] and table.item.tolist() == [1, 3] and table.rating is None


def test_pairs_three_columns_label(tmp_path):
    table = formats.read_pairs(write(tmp_path / "p.txt", "0 1 1\n2 3 0.5\n4 5 1\n"), False, WarningLog())
    assert table.rating.tolist() == [1.0, 0.5, 1.0]


def test_pairs_delimiter(tmp_path):
    table = formats.read_pairs(write(tmp_path / "p.csv", "0,1\n2,3\n"), False, WarningLog(), delimiter=",")
    assert table.item.tolist() == [1, 3]


def test_pairs_mismatching_line_refused(tmp_path):
    path = write(tmp_path / "p.txt", "0 1 1\n0 2 1\n0 3\n1 1 1\n")
    with pytest.raises(GraphrecError) as err:
        formats.read_pairs(path, False, WarningLog())
    message = str(err.value)
    assert f"{path} line 3: expected 3 columns" in message and "data.skip_bad_lines: true" in message
    assert "\n" not in message


def test_pairs_skip_bad_lines_counts_and_names_lines(tmp_path, capsys):
    path = write(tmp_path / "p.txt", "0 1 1\n0 2\n0 3 1\nx 1 1\n1 1 1\n1 2 1 9\n")
    warnings = WarningLog()
    table = formats.read_pairs(path, True, warnings)
    assert table.user.tolist() == [0, 0, 1]
    assert warnings.as_dict()["skipped_bad_lines"]["count"] == 3
    assert "skipped 3 malformed line(s): 2, 4, 6" in warnings.as_dict()["skipped_bad_lines"]["message"]
    assert capsys.readouterr().err.strip().startswith("graphrec: warning: ")


# ---- RecBole atomic -------------------------------------------------------------------------------------------
def test_atomic_reader_typed_header():
    table = formats.read_atomic(FIXTURES / "tiny.inter", {}, False, WarningLog())
    assert table.user.tolist() == ["alice", "alice", "bob", "bob", "carol"]
    assert table.item.tolist() == ["m10", "m2", "m10", "m7", "m2"]
    assert table.rating.tolist() == [5, 3, 4, 5, 2]
    assert table.timestamp.tolist() == [100, 101, 102, 103, 104]


def test_atomic_reader_renamed_fields(tmp_path):
    path = write(tmp_path / "x.inter", "uid:token\tiid:token\tts:float\n1\t2\t10\n3\t4\t11\n")
    table = formats.read_atomic(path, {"user": "uid", "item": "iid", "timestamp": "ts"}, False, WarningLog())
    assert table.user.tolist() == [1, 3] and table.item.tolist() == [2, 4] and table.timestamp.tolist() == [10, 11]
    with pytest.raises(GraphrecError, match="line 1: the header has no field 'user_id'"):
        formats.read_atomic(path, {}, False, WarningLog())


# ---- CSV / TSV ------------------------------------------------------------------------------------------------
def test_csv_named_columns():
    table = formats.read_csv(FIXTURES / "tiny_ratings.csv",
                             {"user": "userId", "item": "movieId", "rating": "rating"}, None, True, False, WarningLog())
    assert table.user.tolist() == ["alice", "alice", "bob", "bob", "carol"]
    assert table.rating.tolist() == [5.0, 3.0, 4.0, 4.5, 2.0]
    assert table.timestamp is None


def test_tsv_numbered_columns_without_header():
    table = formats.read_csv(FIXTURES / "tiny_ratings.tsv", {"user": "0", "item": "1", "rating": "2",
                                                           "timestamp": "3"}, None, False, False, WarningLog())
    assert table.user.tolist() == [7, 5, 7, 100] and table.item.tolist() == [30, 30, 12, 12]
    assert table.timestamp.tolist() == [9, 8, 7, 6]


def test_csv_quoted_fields_and_custom_delimiter(tmp_path):
    path = write(tmp_path / "r.txt", 'u;i;note\n"a;1";x;"hi; there"\nb;y;z\n')
    table = formats.read_csv(path, {"user": "u", "item": "i"}, ";", True, False, WarningLog())
    assert table.user.tolist() == ["a;1", "b"]


# ---- id maps --------------------------------------------------------------------------------------------------
def test_string_ids_remap_to_contiguous_ints_and_back():
    ds = dataset({"path": str(FIXTURES / "tiny.inter"), "format": "atomic"})
    assert ds.user_ids.tolist() == ["alice", "bob", "carol"] and ds.item_ids.tolist() == ["m10", "m2", "m7"]
    assert ds.num_users == 3 and ds.num_items == 3
    assert ds.train.user.dtype == np.int64 and set(ds.train.user.tolist()) == {0, 1, 2}
    assert events(ds) == {("alice", "m10"), ("alice", "m2"), ("bob", "m10"), ("bob", "m7"), ("carol", "m2")}


def test_sparse_integer_ids_remap_both_ways():
    ds = dataset({"path": str(FIXTURES / "tiny_ratings.tsv"), "format": "csv", "header": False,
                  "columns": {"user": 0, "item": 1, "rating": 2}})
    assert ds.user_ids.tolist() == [5, 7, 100] and ds.item_ids.tolist() == [12, 30]
    assert sorted(ds.train.user.tolist()) == [0, 1, 1, 2]
    assert events(ds) == {(7, 30), (5, 30), (7, 12), (100, 12)}


def test_ids_shared_across_split_files(tmp_path):
    write(tmp_path / "d" / "train.txt", "10 100 1\n20 200 1\n")
    write(tmp_path / "d" / "test.txt", "20 100 1\n30 300 1\n")
    ds = dataset({"path": str(tmp_path / "d"), "format": "pairs", "files": {"train": "train.txt", "test": "test.txt"}},
                 {"valid_ratio": 0.0})
    assert ds.user_ids.tolist() == [10, 20, 30] and ds.item_ids.tolist() == [100, 200, 300]
    assert events(ds, ds.tests["test"]) == {(20, 100), (30, 300)}
    assert ds.warnings.counts["test_users_without_train"] == 1


# ---- filters --------------------------------------------------------------------------------------------------
def test_min_rating_is_an_inclusive_implicit_threshold():
    ds = dataset({"path": str(FIXTURES / "tiny_ratings.csv"), "format": "csv",
                  "columns": {"user": "userId", "item": "movieId", "rating": "rating"}, "min_rating": 4})
    assert events(ds) == {("alice", "m10"), ("bob", "m10"), ("bob", "m7")}
    assert ds.user_ids.tolist() == ["alice", "bob"]  # carol rated nothing >= 4: gone from the id map


def test_kcore_hand_checked(tmp_path):
    # u0: i0 i1 i2 | u1: i0 i1 | u2: i0 | u3: i2 i3.  2-core: drop u2 and i3, then u3 (1 event left),
    # then i2 (only u0 left): the 2x2 block u0,u1 x i0,i1 remains.
    write(tmp_path / "all.txt", "0 0\n0 1\n0 2\n1 0\n1 1\n2 0\n3 2\n3 3\n")
    ds = dataset({"path": str(tmp_path / "all.txt"), "format": "pairs", "kcore": 2})
    assert events(ds) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert ds.user_ids.tolist() == [0, 1] and ds.item_ids.tolist() == [0, 1]
    ds3 = dataset({"path": str(tmp_path / "all.txt"), "format": "pairs", "kcore": 1})
    assert len(ds3.train) == 8


def test_kcore_filters_test_files_to_kept_users_and_items(tmp_path):
    write(tmp_path / "d" / "train.txt", "0 0\n0 1\n1 0\n1 1\n2 0\n")
    write(tmp_path / "d" / "test.txt", "0 2\n1 0\n2 1\n")
    ds = dataset({"path": str(tmp_path / "d"), "format": "pairs", "kcore": 2,
                  "files": {"train": "train.txt", "test": "test.txt"}}, {"valid_ratio": 0.0})
    assert events(ds) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert events(ds, ds.tests["test"]) == {(1, 0)}


# ---- data.path resolution -------------------------------------------------------------------------------------
def _yaml(folder: Path, data_path: str) -> Path:
    return write(folder / "exp.yaml", f"data: {{path: {data_path}, format: lightgcn, "
                                      "files: {train: train.txt, test: test.txt}}\n")


def test_data_path_relative_to_yaml_before_graphrec_data(tmp_path, monkeypatch):
    for root in ("exp/mydata", "store/mydata"):
        write(tmp_path / root / "train.txt", "0 1\n")
    monkeypatch.setenv("GRAPHREC_DATA", str(tmp_path / "store"))
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    cfg = config_from_file(_yaml(tmp_path / "exp", "mydata"))
    assert resolve_data_path(cfg) == (tmp_path / "exp" / "mydata").resolve()


def test_data_path_falls_back_to_graphrec_data(tmp_path, monkeypatch):
    write(tmp_path / "store" / "mydata" / "train.txt", "0 1\n")
    monkeypatch.setenv("GRAPHREC_DATA", str(tmp_path / "store"))
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    cfg = config_from_file(_yaml(tmp_path / "exp", "mydata"))
    assert resolve_data_path(cfg) == (tmp_path / "store" / "mydata").resolve()


def test_data_path_absolute_and_missing(tmp_path, monkeypatch):
    write(tmp_path / "abs" / "train.txt", "0 1\n")
    monkeypatch.setenv("GRAPHREC_DATA", str(tmp_path / "store"))
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    assert resolve_data_path(config_from_file(_yaml(tmp_path / "exp", str(tmp_path / "abs")))) == tmp_path / "abs"
    with pytest.raises(GraphrecError, match=r"data.path 'nothere' not found \(looked in .*exp/nothere"):
        resolve_data_path(config_from_file(_yaml(tmp_path / "exp", "nothere")))


# ---- the real datasets (read only) ----------------------------------------------------------------------------
@needs_shared
def test_ood_yelp2018_malformed_top_lines(monkeypatch):
    train = SHARED / "ood-yelp2018" / "train.txt"
    with pytest.raises(GraphrecError) as err:
        formats.read_pairs(train, False, WarningLog())
    assert f"{train} line 1: expected 3 columns" in str(err.value)
    ds = dataset({"path": str(SHARED / "ood-yelp2018"), "skip_bad_lines": True}, {"valid_ratio": 0.1})
    assert ds.warnings.counts["skipped_bad_lines"] == 2
    assert "skipped 2 malformed line(s): 1, 2" in ds.warnings.messages["skipped_bad_lines"]
    assert (ds.num_users, ds.num_items) == (8093, 13879)
    assert set(ds.tests) == {"test", "test_ood"} and len(ds.valid) > 0


@needs_shared
def test_gowalla_data_info_with_registry_preset(capsys):
    assert main(["data", "info", str(SHARED / "gowalla")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines()[1:]}
    assert lines["users"] == "29858" and lines["items"] == "40981"
    assert lines["interactions"] == "1027370"


@needs_shared
def test_ml_latest_small_ratings_have_no_header():
    ds = dataset({"path": str(SHARED / "ml-latest-small")})
    assert (ds.num_users, ds.num_items, len(ds.train)) == (706, 8552, 100023)
    first = (np.searchsorted(ds.user_ids, 1), np.searchsorted(ds.item_ids, 6))
    assert ds.user_ids[first[0]] == 1 and ds.item_ids[first[1]] == 6  # line 1 (1,6,2.0,...) is data
    assert (ds.train.keys(ds.num_items) == first[0] * ds.num_items + first[1]).any()
    assert ds.train.rating is not None and ds.train.timestamp is not None
