"""What a careless config or data file gets: strict YAML, blame on the right origin, the libraries' numeric limits,
one id parser for every reader, label-aware pairs, honest CSV quoting, and keys that would do nothing refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphrec.checkpoint import seed_everything
from graphrec.config import build_config, config_from_file, read_yaml
from graphrec.data import formats, splits
from graphrec.data.loader import check_split_keys, load_dataset, with_preset
from graphrec.data.registry import PRESETS
from graphrec.errors import GraphrecError, WarningLog, one_line
from graphrec.schema import SEED_MAX, DataConfig
from graphrec.tasks import build_evaluators
from graphrec.yamltext import parse_yaml

SYNTHETIC = {"format": "synthetic", "synthetic": {"num_users": 40, "num_items": 30, "mean_degree": 10, "seed": 1}}
PAIRS = "".join(f"{u} {i} 1\n" for u in range(4) for i in range(10))  # 10 events per user: a 10% carve takes one


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def message(fn, *args, **kwargs) -> str:
    """The one-line GraphrecError message of fn(*args, **kwargs)."""
    with pytest.raises(GraphrecError) as err:
        fn(*args, **kwargs)
    text = str(err.value)
    assert "\n" not in text
    return text


def pairs_config(tmp_path: Path, train: str, test: str = "0 1 1\n1 2 1\n", **data) -> dict:
    write(tmp_path / "d" / "train.txt", train)
    write(tmp_path / "d" / "test.txt", test)
    return {"data": {"path": str(tmp_path / "d"), "format": "pairs", "files": {"train": "train.txt",
                                                                              "test": "test.txt"}, **data}}


# ---- YAML ------------------------------------------------------------------------------------------------------

def test_a_repeated_key_names_both_lines(tmp_path):
    path = write(tmp_path / "c.yaml", "train:\n  lr: 0.1\nmodel: {name: mf}\ntrain:\n  epochs: 2\n")
    assert "c.yaml line 4: key 'train' appears twice in one mapping (lines 1 and 4)" in message(read_yaml, path)
    path = write(tmp_path / "d.yaml", "train: {lr: 0.1, epochs: 2, lr: 0.2}\n")
    assert "key 'lr' appears twice in one mapping (lines 1 and 1)" in message(read_yaml, path)


def test_merge_keys_may_still_be_overridden():
    assert parse_yaml("base: &b {x: 1, y: 2}\nrun: {<<: *b, x: 3}\n")["run"] == {"x": 3, "y": 2}


def test_encodings_nul_bytes_and_empty_files_get_their_own_fix(tmp_path):
    body = "data: {format: synthetic}\nsplit: {method: random}\n"
    assert "saved as UTF-16 (or UTF-32); save it as UTF-8" in message(
        read_yaml, write(tmp_path / "a.yaml", body.encode("utf-16")))
    nul = message(read_yaml, write(tmp_path / "b.yaml", body.replace("split", "spl\x00it")))
    assert "b.yaml line 2: the file holds a NUL byte (\\x00)" in nul and "\x00" not in nul
    assert "the config is empty" in message(config_from_file, write(tmp_path / "c.yaml", "# later\n"))


def test_a_single_quoted_tab_is_answered_with_double_quotes(tmp_path):
    path = write(tmp_path / "c.yaml", "data: {format: csv, path: x.csv, delimiter: '\\t', header: false, "
                                      "columns: {user: 0, item: 1}}\n")
    text = message(config_from_file, path)
    assert "data.delimiter is the 2 characters '\\\\t'" in text and "use double quotes in YAML" in text
    assert "'\\t'" not in text.replace("'\\\\t'", "")  # never suggests the single-quoted form back


def test_messages_are_one_printable_line():
    assert one_line("a\x00b\nc\u202ed é") == "a\\x00b\\nc\\u202ed é"


# ---- origin ----------------------------------------------------------------------------------------------------

def test_set_values_are_blamed_on_the_set(tmp_path):
    path = write(tmp_path / "c.yaml", "data: {format: synthetic}\nsplit: {method: random}\ntrain:\n  epochs: 1\n")
    cases = {"train.lr=abc": "--set train.lr=abc: bad value for 'train.lr'",
             "train={lr: x}": "--set train={lr: x}: bad value for 'train.lr'",
             "train.lr.min=1": f"--set train.lr.min=1: {path} line 3: bad value for 'train.lr'"}
    for override, wanted in cases.items():
        assert message(config_from_file, path, [override]).startswith(wanted), override
    # of two --set writing the same key, the later is blamed
    assert message(config_from_file, path, ["train.lr=1", "train={lr: y}"]).startswith("--set train={lr: y}: ")


def test_a_file_key_broken_by_a_set_names_both(tmp_path):
    path = write(tmp_path / "c.yaml", "data: {format: synthetic}\nsplit: {method: random}\n"
                                      "model: {name: lightgcn, num_layers: 2}\n")
    assert message(config_from_file, path, ["model.name=mf"]).startswith(
        f"--set model.name=mf: {path} line 3: unknown key 'model.num_layers'")


# ---- numbers the libraries accept ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["seed", "split.seed", "data.synthetic.seed"])
@pytest.mark.parametrize("seed", [-1, 2 ** 32, 2 ** 64])
def test_seeds_outside_numpys_range_are_refused(key, seed):
    raw = {"data": {"format": "synthetic", "synthetic": {}}, "split": {"method": "random"}}
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = seed
    assert f"a seed is within [0, {2 ** 32 - 1}]" in message(build_config, raw)


def test_the_largest_seed_is_accepted_by_numpy_and_torch():
    cfg = build_config({"seed": SEED_MAX, "data": {"synthetic": {"seed": SEED_MAX}},
                        "split": {"method": "random", "seed": SEED_MAX}})
    seed_everything(cfg.seed)
    np.random.default_rng(cfg.split.seed).random()
    torch.Generator().manual_seed(cfg.seed + 1)  # the trainer's view generator


@pytest.mark.parametrize("key,value,wanted", [
    ("batch_size", 2 ** 63, "outside the 64-bit integer range"), ("lr", 1e39, "outside the float32 range"),
    ("lr", 1e-50, "outside the float32 range"), ("lr", float("inf"), "finite number"),
    ("reg", float("nan"), "finite number")])
def test_numbers_beyond_int64_or_float32_are_refused(key, value, wanted):
    text = message(build_config, {"split": {"method": "random"}, "train": {key: value}})
    assert f"bad value for 'train.{key}'" in text and wanted in text


def test_text_with_a_nul_byte_is_refused_anywhere():
    text = message(build_config, {"data": {"format": "pairs", "path": "a\x00b"}})
    assert "bad value for 'data.path'" in text and "NUL byte" in text


# ---- one id parser ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("token,value", [("10", 10), ("007", 7), (str(2 ** 63 - 1), 2 ** 63 - 1), ("1_0", None),
                                         ("+3", None), (" 3", None), ("\u0663", None), ("\u00b2", None),
                                         (str(2 ** 63), None), ("", None)])
def test_parse_id_takes_ascii_digits_within_int64(token, value):
    if value is None:
        with pytest.raises(ValueError):
            formats.parse_id(token)
    else:
        assert formats.parse_id(token) == value


@pytest.mark.parametrize("token", ["nan", "inf", "-Infinity", "1_0", "0x10", "", "1e400"])
def test_parse_number_refuses_what_float_would_take(token):
    with pytest.raises(ValueError):
        formats.parse_number(token)
    assert formats.parse_number(" -0.5 ") == -0.5 and formats.parse_number("1e3") == 1000.0


def test_every_reader_refuses_an_id_beyond_int64_with_its_line(tmp_path):
    big = str(2 ** 64)
    files = {"lightgcn": f"0 1 2\n1 {big}\n", "pairs": f"0 1\n{big} 2\n", "csv": f"u,i\n0,1\n{big},2\n"}
    for fmt, text in files.items():
        path = write(tmp_path / f"{fmt}.txt", text)
        read = {"lightgcn": lambda: formats.read_lightgcn(path, False, WarningLog()),
                "pairs": lambda: formats.read_pairs(path, False, WarningLog()),
                "csv": lambda: formats.read_csv(path, {"user": "u", "item": "i"}, None, True, False, WarningLog())}
        text = message(read[fmt])
        assert f"line {3 if fmt == 'csv' else 2}: the id '{big}' is beyond the largest integer id" in text, fmt


def test_csv_keeps_1_0_apart_from_10(tmp_path):
    table = formats.read_csv(write(tmp_path / "r.csv", "u,i\n10,a\n1_0,b\n"), {"user": "u", "item": "i"}, None,
                             True, False, WarningLog())
    assert list(table.user) == ["10", "1_0"]  # string ids: two users, as the file says


def test_lines_end_at_newline_only(tmp_path):
    # str.splitlines would start a line at \x1c or \u2028, inventing user 2's events
    for odd in ("\x1c", "\u2028"):
        path = write(tmp_path / "t.txt", f"0 1{odd}2 3\n1 4\n")
        assert "line 1: '1" in message(formats.read_lightgcn, path, False, WarningLog())
    path = write(tmp_path / "r.txt", "0 1\r2 3\n")  # universal newlines would read \r as a line end
    assert "line 1: a carriage return (\\r) inside the line" in message(formats.read_lightgcn, path, False,
                                                                        WarningLog())
    crlf = formats.read_lightgcn(write(tmp_path / "w.txt", "0 1 2\r\n1 3\r\n"), False, WarningLog())
    assert list(zip(crlf.user, crlf.item)) == [(0, 1), (0, 2), (1, 3)]


# ---- labels of pairs -------------------------------------------------------------------------------------------

def test_labels_other_than_1_are_refused_unless_declared(tmp_path):
    train = PAIRS.replace("0 0 1\n", "0 0 0\n").replace("1 1 1\n", "1 1 -1\n")
    raw = pairs_config(tmp_path, train)
    text = message(load_dataset, build_config(raw))
    assert "the label column holds values other than 1 (-1 on 1 line(s), 0 on 1 line(s))" in text
    raw["data"]["positive_labels"] = [1]
    ds = load_dataset(build_config(raw))
    kept = set(zip(ds.user_ids[ds.train.user].tolist(), ds.item_ids[ds.train.item].tolist()))
    kept |= set(zip(ds.user_ids[ds.valid.user].tolist(), ds.item_ids[ds.valid.item].tolist()))
    assert (0, 0) not in kept and (1, 1) not in kept and len(kept) == 38
    assert ds.warnings.counts["dropped_labels_train.txt"] == 2


def test_min_rating_reads_the_label_column_as_a_rating(tmp_path):
    train = "".join(f"{u} {i} {1 + i % 5}\n" for u in range(4) for i in range(40))
    ds = load_dataset(build_config({**pairs_config(tmp_path, train, "0 41 5\n1 42 5\n", min_rating=4)}))
    assert len(ds.train) + len(ds.valid) == 4 * 16  # ratings 4 and 5 only


def test_the_ood_presets_declare_their_positive_labels(tmp_path):
    for name in ("ood-food", "ood-yelp2018"):
        assert PRESETS[name]["positive_labels"] == [1]
        (tmp_path / name).mkdir()
        assert with_preset(DataConfig(path=name), tmp_path / name).positive_labels == [1.0]
        assert with_preset(DataConfig(path=name, positive_labels=[2]), tmp_path / name).positive_labels == [2.0]


# ---- CSV numbers, quoting, columns -----------------------------------------------------------------------------

def test_a_quote_left_open_is_one_bad_line(tmp_path):
    path = write(tmp_path / "r.csv", 'u,i,r\n0,1,4\n0,"2,4\n1,2,4\n1,3,4\n')
    assert "r.csv line 3: broken quoting (unexpected end of data" in message(
        formats.read_csv, path, {"user": "u", "item": "i"}, None, True, False, WarningLog())
    warnings = WarningLog()
    table = formats.read_csv(path, {"user": "u", "item": "i"}, None, True, True, warnings)
    assert len(table) == 3 and warnings.counts["skipped_bad_lines"] == 1  # the lines after it are read


def test_nan_and_inf_ratings_are_malformed_lines(tmp_path):
    path = write(tmp_path / "r.csv", "u,i,r\n0,1,4\n0,2,nan\n1,2,inf\n1,3,5\n")
    columns = {"user": "u", "item": "i", "rating": "r"}
    assert "line 3: the rating 'nan' (column 2) is not a finite number" in message(
        formats.read_csv, path, columns, None, True, False, WarningLog())
    warnings = WarningLog()
    table = formats.read_csv(path, columns, None, True, True, warnings)
    assert table.rating.tolist() == [4.0, 5.0] and warnings.counts["skipped_bad_lines"] == 2


def test_one_column_for_two_roles_is_refused():
    raw = {"data": {"format": "csv", "path": "r.csv", "columns": {"user": "id", "item": "id"}}}
    assert "data.columns.user and data.columns.item name the same column 'id'" in message(build_config, raw)


# ---- keys that would do nothing --------------------------------------------------------------------------------

def test_split_keys_without_effect_are_refused(tmp_path, monkeypatch):
    given = {"train": "train.txt", "test": "test.txt"}
    cases = [({"method": "random"}, given, "split.method random has no effect: data.files gives the splits"),
             ({"test_ratio": 0.3}, given, "split.test_ratio 0.3 has no effect: the data gives its test file"),
             ({"valid_ratio": 0.3}, {**given, "valid": "v.txt"}, "split.valid_ratio 0.3 has no effect"),
             ({"method": "loo", "test_ratio": 0.5}, {"all": "a.txt"}, "leave-one-out takes one event per user")]
    data = {"format": "pairs", "path": "somewhere"}
    for split, files, wanted in cases:
        assert wanted in message(check_split_keys, build_config({"data": data, "split": split}), files), split
    # defaults, as a run's saved config.yaml holds them, are no mistake; the OOD re-splits have their hook
    check_split_keys(build_config({"data": data, "split": {"method": "given", "valid_ratio": 0.1,
                                                           "test_ratio": 0.2}}), given)
    monkeypatch.setattr(splits, "RESPLIT_METHODS", frozenset({"temporal"}))
    check_split_keys(build_config({"data": data, "split": {"method": "temporal"}}), given)


def test_a_valid_ratio_that_carves_nothing_is_refused(tmp_path):
    raw = pairs_config(tmp_path, PAIRS)
    raw["split"] = {"valid_ratio": 0.05}
    text = message(load_dataset, build_config(raw))
    assert "split.valid_ratio 0.05 carves no validation event" in text and "(the most is 10)" in text
    raw["split"] = {"valid_ratio": 0.0}  # the paper protocol, asked for
    assert load_dataset(build_config(raw)).valid is not None and len(load_dataset(build_config(raw)).valid) == 0


def test_zero_epochs_are_refused():
    assert "bad value for 'train.epochs'" in message(build_config, {"split": {"method": "random"},
                                                                     "train": {"epochs": 0}})


def test_evaluation_needs_a_row_and_a_user(tmp_path):
    cfg = build_config({"data": SYNTHETIC, "split": {"method": "random", "valid_ratio": 0.2},
                        "eval": {"max_score_elements": 10}})
    ds = load_dataset(cfg)
    assert f"eval.max_score_elements 10 is below one user's row of scores ({ds.num_items} items)" in message(
        build_evaluators, ds, cfg, torch.device("cpu"))
    raw = pairs_config(tmp_path, PAIRS, "40 1 1\n")
    raw["split"] = {"valid_ratio": 0.0}
    cfg = build_config(raw)
    assert "split 'test' has no user to evaluate: none of its 1 user(s) has training events" in message(
        build_evaluators, load_dataset(cfg), cfg, torch.device("cpu"))


def test_a_symlink_loop_in_data_path_is_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    cfg = build_config({"data": {"format": "pairs", "path": str(tmp_path / "a")}})
    assert "is a symbolic link that leads nowhere" in message(load_dataset, cfg)


def test_yaml_dump_of_a_config_reads_back_without_refusals(tmp_path):
    """A run's config.yaml holds every key with its value; the no-effect checks must accept it."""
    cfg = build_config(pairs_config(tmp_path, PAIRS))
    saved = write(tmp_path / "config.yaml", yaml.safe_dump(cfg.model_dump(exclude={"base_dir"})))
    assert len(load_dataset(config_from_file(saved)).train) > 0
