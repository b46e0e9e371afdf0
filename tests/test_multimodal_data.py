"""The multimodal data keys through the loader: data.item_features (resolved like data.path, aligned by raw id,
data.item_features_missing), data.format mmrec, synthetic item features and the baby preset."""
from __future__ import annotations

import numpy as np
import pytest

from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.data.synthetic import planted_communities
from graphrec.data.synthetic_features import synthetic_item_features
from graphrec.errors import GraphrecError

PAIRS = {"format": "pairs", "files": {"train": "train.txt", "test": "test.txt"}}


def write_pairs(folder, items=(10, 30, 20, 40)):
    """Two users over four raw item ids; every item is in train."""
    folder.mkdir(parents=True, exist_ok=True)
    a, b, c, d = items
    (folder / "train.txt").write_text(f"1 {a} 1\n1 {b} 1\n2 {c} 1\n2 {d} 1\n1 {c} 1\n")
    (folder / "test.txt").write_text(f"1 {d} 1\n2 {a} 1\n")


def test_feature_csv_beside_the_yaml_is_aligned_by_raw_id_and_recorded_absolutely(tmp_path, monkeypatch):
    write_pairs(tmp_path / "exp" / "data")
    (tmp_path / "exp" / "feats").mkdir()
    # shuffled rows, one extra item (99) that the dataset lacks, item 40 missing
    (tmp_path / "exp" / "feats" / "genre.csv").write_text("30,0,1\n99,5,5\n10,1,0\n20,1,1\n")
    monkeypatch.chdir(tmp_path)  # not the YAML's folder: the path resolves against base_dir first
    cfg = build_config({"data": {"path": "data", **PAIRS, "item_features": {"genre": "feats/genre.csv"},
                                 "item_features_missing": "mean"}, "split": {"valid_ratio": 0.0}},
                       base_dir=str(tmp_path / "exp"))
    ds = load_dataset(cfg)
    assert list(ds.item_ids) == [10, 20, 30, 40]
    np.testing.assert_allclose(ds.item_features["genre"], [[1, 0], [1, 1], [0, 1], [2 / 3, 2 / 3]], rtol=1e-6)
    assert cfg.data.item_features == {"genre": str(tmp_path / "exp" / "feats" / "genre.csv")}
    assert ds.warnings.counts["item_features_genre"] == 2  # one row ignored, one item filled


def test_mmrec_folder_reads_its_split_and_features(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t2\t0\n1\t1\t0\n1\t2\t0\n"
                                      "0\t1\t1\n1\t0\t2\n")
    image = np.arange(12, dtype=np.float32).reshape(4, 3)  # row 3: an item without events, ignored
    np.save(folder / "image_feat.npy", image)
    ds = load_dataset(build_config({"data": {"path": str(folder), "format": "mmrec"}}))
    assert (len(ds.train), len(ds.valid), len(ds.tests["test"])) == (4, 1, 1)
    assert list(ds.item_ids) == [0, 1, 2] and list(ds.item_features) == ["image"]
    np.testing.assert_array_equal(ds.item_features["image"], image[:3])


def test_synthetic_features_follow_the_kept_items_communities():
    synthetic = {"num_users": 60, "num_items": 400, "num_communities": 3, "mean_degree": 5, "seed": 2,
                 "item_features": {"text": 8}, "feature_noise": 0.3}
    ds = load_dataset(build_config({"data": {"synthetic": synthetic}, "split": {"method": "random"}}))
    assert ds.num_items < 400, "some items have no event, so graphrec's item ids are not the raw ones"
    _, community = planted_communities(60, 400, 3, 2)
    expected = synthetic_item_features(community[ds.item_ids], {"text": 8}, 0.3, 2)["text"]
    np.testing.assert_array_equal(ds.item_features["text"], expected)


def test_baby_preset_reads_the_mmrec_split_without_features():
    ds = load_dataset(build_config({"data": {"path": "baby"}}))
    assert (ds.num_users, ds.num_items) == (19445, 7050) and ds.item_features == {}
    assert len(ds.train) + len(ds.valid) + len(ds.tests["test"]) == 160792


@pytest.mark.parametrize("keys, message", [
    ({"files": {"a": "x.inter", "b": "y.inter"}}, "data.format mmrec reads one .inter file"),
    ({}, "toy.inter' not found"),
])
def test_mmrec_bad_files(tmp_path, keys, message):
    (tmp_path / "toy").mkdir()
    with pytest.raises(GraphrecError, match=message):
        load_dataset(build_config({"data": {"path": str(tmp_path / "toy"), "format": "mmrec", **keys}}))
