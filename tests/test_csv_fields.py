"""format csv_fields: named categorical and numeric CSV columns read into the same feature rows as libFM files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphrec.batches import PointBatch
from graphrec.config import build_config
from graphrec.data.csv_fields import read_csv_fields
from graphrec.data.loader import load_dataset
from graphrec.errors import GraphrecError, WarningLog
from graphrec.schema import CsvFieldsConfig
from graphrec.trainer import Trainer

from train_helpers import results

HEADER = "user,item,weather,temp,rating\n"
# Sorted values: users u1 u2 u3, items i1 "i2, deluxe" i3, weather "" (empty cell) rainy sunny; then temp.
TRAIN = ('u2,i1,sunny,0.5,1\nu1,"i2, deluxe",rainy,1.5,-1\nu3,i1,,2,1\nu1,i3,sunny,-0.25,-1\n'
         'u2,"i2, deluxe",,1,1\nu3,i3,rainy,0,-1\nu1,i1,rainy,0.75,1\nu2,i3,sunny,3,-1\n')
VALID = 'u1,i1,sunny,1,1\nu3,"i2, deluxe",rainy,0.5,-1\n'
TEST = "u2,i1,,2.5,1\nu1,i3,rainy,-1,-1\nu3,i1,sunny,1.25,1\n"
# The same rows by hand in libFM: user uK -> K-1, items 10-12, weather 20-22, temp 30 (some lines reordered).
TRAIN_LIBFM = ("1 1:1 10:1 22:1 30:0.5\n-1 0:1 11:1 21:1 30:1.5\n1 2:1 10:1 20:1 30:2\n-1 30:-0.25 0:1 12:1 22:1\n"
               "1 1:1 11:1 20:1 30:1\n-1 2:1 12:1 21:1 30:0\n1 0:1 10:1 21:1 30:0.75\n-1 22:1 1:1 12:1 30:3\n")
VALID_LIBFM = "1 0:1 10:1 22:1 30:1\n-1 2:1 11:1 21:1 30:0.5\n"
TEST_LIBFM = "1 1:1 10:1 20:1 30:2.5\n-1 0:1 12:1 21:1 30:-1\n1 2:1 10:1 22:1 30:1.25\n"
SPEC = {"categorical": ["user", "item", "weather"], "numeric": ["temp"], "label": "rating"}
FIELD_MAP = {"user": [0, 9], "item": [10, 19], "weather": [20, 29], "temp": [30, 30]}
CSV_FILES = {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config(tmp_path: Path, data: dict, **overrides):
    """A small FM config on the files in tmp_path/data, with runs under tmp_path/runs."""
    raw = {"name": "csv-fields", "seed": 4, "device": "cpu", "task": "classification",
           "data": {"path": str(tmp_path / "data"), **data},
           "model": {"name": "fm", "embedding_dim": 4, "init_std": 0.1},
           "train": {"epochs": 3, "batch_size": 4, "lr": 0.05, "patience": 0, "threads": 1, "progress": False},
           "tracking": {"mode": "disabled"}, "output_dir": str(tmp_path / "runs"), **overrides}
    return build_config(raw, base_dir=str(tmp_path))


def csv_config(tmp_path: Path, files=None, spec=None, **overrides):
    return config(tmp_path, {"format": "csv_fields", "files": files or CSV_FILES, "csv_fields": spec or SPEC},
                  **overrides)


def write_csv(tmp_path: Path, train=TRAIN, valid=VALID, test=TEST) -> None:
    for name, body in (("train", train), ("valid", valid), ("test", test)):
        write(tmp_path / "data" / f"{name}.csv", HEADER + body)


def test_csv_gives_the_field_data_and_predictions_of_the_equivalent_libfm_files(tmp_path):
    """Same feature space, rows, values and labels as hand-written libFM files; trained alike, the same model."""
    write_csv(tmp_path)
    for name, body in (("train", TRAIN_LIBFM), ("valid", VALID_LIBFM), ("test", TEST_LIBFM)):
        write(tmp_path / "data" / f"{name}.libfm", body)
    from_csv = csv_config(tmp_path)
    from_libfm = config(tmp_path, {"format": "libfm", "fields": FIELD_MAP,
                                   "files": {k: v.replace(".csv", ".libfm") for k, v in CSV_FILES.items()}})
    csv_data, libfm_data = load_dataset(from_csv).fields, load_dataset(from_libfm).fields
    assert csv_data.space.num_features == 10 and csv_data.space.field_names == ["user", "item", "weather", "temp"]
    assert csv_data.space.field_of_feature.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert csv_data.rows["train"].features[0].tolist() == [1, 3, 8, 9]  # u2, i1, sunny, temp
    assert csv_data.rows["train"].values[0].tolist() == [1, 1, 1, 0.5]
    assert csv_data.rows["test"].features[0].tolist() == [1, 3, 6, 9]  # the empty weather cell is a value
    assert list(csv_data.rows) == list(libfm_data.rows) == ["train", "valid", "test"]
    assert np.array_equal(csv_data.space.field_of_feature, libfm_data.space.field_of_feature)
    for split, rows in csv_data.rows.items():
        other = libfm_data.rows[split]
        assert np.array_equal(rows.features, other.features), split
        assert np.array_equal(rows.values, other.values) and np.array_equal(rows.label, other.label), split
    predictions, metrics = [], []
    for cfg in (from_csv, from_libfm):
        trainer = Trainer(cfg)
        metrics.append(results(trainer.fit()))
        test = csv_data.rows["test"]
        trainer.model.eval()
        batch = PointBatch(torch.from_numpy(test.features), torch.from_numpy(test.values), None)
        predictions.append(trainer.model.predict(batch).detach())
    assert torch.equal(*predictions) and metrics[0] == metrics[1]
    assert set(metrics[0]) >= {"test/auc", "test/logloss"} and metrics[0]["test/rows"] == 3


def test_unseen_values_map_to_their_fields_unknown_feature_or_are_refused(tmp_path, capsys):
    """u9, i2? and snow are not in train: their fields get an unknown feature at the end of their block (ids shift);
    with unseen: error the first such cell is named by file and line."""
    write_csv(tmp_path, test="u9,i1,snow,1,1\nu1,i3,rainy,2,-1\nu2,i2?,,0,1\n")
    dataset = load_dataset(csv_config(tmp_path))
    space, test = dataset.fields.space, dataset.fields.rows["test"]
    assert space.field_of_feature.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert test.features.tolist() == [[3, 4, 11, 12], [0, 6, 9, 12], [1, 7, 8, 12]]
    assert dataset.fields.rows["train"].features[0].tolist() == [1, 4, 10, 12]
    warned = capsys.readouterr().err
    assert "test.csv: 3 value(s) that the train file lacks map to their field's unknown feature (user 1, item 1, " \
           "weather 1; first: line 2: column 'user' holds 'u9')" in warned
    assert dataset.warnings.as_dict()["unseen_values"]["count"] == 3
    with pytest.raises(GraphrecError, match=r"test\.csv line 2: column 'user' holds 'u9', which the train file does "
                                            r"not; .*data\.csv_fields\.unseen: unknown"):
        load_dataset(csv_config(tmp_path, spec={**SPEC, "unseen": "error"}))


def read(path: Path, skip: bool = False, warnings: WarningLog | None = None, **spec):
    return read_csv_fields(path, CsvFieldsConfig(**{**SPEC, **spec}), None, skip, warnings or WarningLog())


@pytest.mark.parametrize("line, why", [
    ("u1,i1,sunny,warm,1", "column 'temp' (data.csv_fields.numeric) holds 'warm', which is not a number"),
    ("u1,i1,sunny,1,nan", "column 'rating' (data.csv_fields.label) holds 'nan', which is not a finite number"),
    ("u1,i1,sunny,1", "4 columns where the header has 5"),
    ('u1,"i1,sunny,1,1', "broken quoting"),
])
def test_bad_line_is_refused_with_file_and_line_or_skipped_and_counted(tmp_path, line, why):
    path = write(tmp_path / "train.csv", f"{HEADER}u1,i1,sunny,1,1\n{line}\nu2,i2,rainy,2,-1\n")
    with pytest.raises(GraphrecError) as err:
        read(path)
    assert str(err.value).startswith(f"{path} line 3: {why}") and "data.skip_bad_lines" in str(err.value)
    warnings = WarningLog()
    table = read(path, skip=True, warnings=warnings)
    assert table.lineno.tolist() == [2, 4] and table.categorical.tolist() == [["u1", "i1", "sunny"],
                                                                              ["u2", "i2", "rainy"]]
    assert table.numeric.tolist() == [[1.0], [2.0]] and table.label.tolist() == [1.0, -1.0]
    assert warnings.as_dict()["skipped_bad_lines"]["count"] == 1


def test_missing_column_names_the_file_the_key_and_the_header(tmp_path):
    path = write(tmp_path / "train.csv", f"{HEADER}u1,i1,sunny,1,1\n")
    with pytest.raises(GraphrecError) as err:
        read(path, categorical=["user", "item", "wether"])
    assert str(err.value) == (f"{path} line 1: no column 'wether' (data.csv_fields.categorical[2]) in the header "
                              "['user', 'item', 'weather', 'temp', 'rating']; did you mean "
                              "data.csv_fields.categorical[2]: weather?")
    with pytest.raises(GraphrecError, match=r"no column 'label' \(data\.csv_fields\.label\)"):
        read(path, label="label")


@pytest.mark.parametrize("text, why", [("", "the file is empty"), ("\n\n", "the file is empty"),
                                       (HEADER, "no line below the header"),
                                       (HEADER + "u1,i1,sunny,1e39,1\n", "line 2: a number beyond float32")])
def test_empty_or_header_only_file_is_refused(tmp_path, text, why):
    path = write(tmp_path / "train.csv", text)
    with pytest.raises(GraphrecError, match=why):
        read(path)


def test_one_file_is_split_at_random_and_numeric_only_fields_work(tmp_path):
    """files: {all: ...} with split.method random: every row lands in one part; numeric columns alone are fields."""
    write(tmp_path / "data" / "all.csv", HEADER + TRAIN + VALID + TEST)
    cfg = csv_config(tmp_path, files={"all": "all.csv"}, spec={"numeric": ["temp"], "label": "rating"},
                     split={"method": "random", "valid_ratio": 0.2, "test_ratio": 0.2})
    rows = load_dataset(cfg).fields.rows
    assert {k: len(v) for k, v in rows.items()} == {"train": 7, "valid": 3, "test": 3}
    temps = sorted(np.concatenate([r.values[:, 0] for r in rows.values()]).tolist())
    assert temps == sorted([0.5, 1.5, 2, -0.25, 1, 0, 0.75, 3, 1, 0.5, 2.5, -1, 1.25])
    assert all((r.features == 0).all() for r in rows.values())


def test_data_info_summarizes_a_csv_fields_folder_with_set(tmp_path, capsys):
    """`graphrec data info --format csv_fields --set data.csv_fields...` counts each categorical column's values."""
    from graphrec.cli import main
    (tmp_path / "train.csv").write_text("user,item,weather,label\n1,10,sunny,1\n2,11,rainy,-1\n1,11,fog,1\n")
    (tmp_path / "test.csv").write_text("user,item,weather,label\n2,10,rainy,1\n")
    assert main(["data", "info", str(tmp_path), "--format", "csv_fields", "--files", "train=train.csv,test=test.csv",
                 "--set", "data.csv_fields.categorical=[user,item,weather]", "--set", "data.csv_fields.label=label"]) == 0
    out = capsys.readouterr().out
    assert "user 2, item 2, weather 3" in out and "train_rows             3" in out
