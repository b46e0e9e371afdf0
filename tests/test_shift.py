"""Shift summary on a hand-computed example, OOD methods against random, and `graphrec split`'s folder."""
import hashlib
import json
import math

import numpy as np
import pytest

from graphrec import split_cmd
from graphrec.cli import OneLineParser
from graphrec.config import build_config
from graphrec.data import synthetic
from graphrec.data.dataset import Interactions
from graphrec.data.loader import load_dataset
from graphrec.data.shift import SMOOTHING, format_shift, shift_summary, write_shift
from graphrec.data.splits import split_events
from graphrec.errors import GraphrecError

KEYS = {"valid_ratio": 0.1, "test_ratio": 0.1, "test_ood_ratio": 0.1, "alpha": 1.0, "degree_quantile": 0.2,
        "degree_side": "low", "valid_from": "iid"}


def test_shift_numbers_of_a_constructed_example():
    # 4 items; train puts 2 events on items 0 and 1; test puts 1 on items 2 and 3, one of them by a new user
    train = Interactions([0, 1, 0, 1], [0, 0, 1, 1], None, np.array([0.0, 0.0, 10.0, 10.0]))
    test = Interactions([0, 2], [2, 3], None, np.array([10.0, 10.0]))
    summary = shift_summary(train, {"test": test}, num_items=4)
    row, base = summary["splits"]["test"], summary["splits"]["train"]
    # smoothed: a = (0.5 + e) / (1 + 4e) on the split's own items, b = e / (1 + 4e) elsewhere; the mixture is 1/4
    e = SMOOTHING
    a, b = (0.5 + e) / (1 + 4 * e), e / (1 + 4 * e)
    assert row["item_js"] == pytest.approx(2 * a * math.log2(4 * a) + 2 * b * math.log2(4 * b), rel=1e-9)
    assert row["item_js"] == pytest.approx(1.0, abs=1e-4)  # disjoint supports
    assert row["item_kl"] == pytest.approx(2 * (a - b) * math.log2(a / b), rel=1e-9)  # about log2(5e5) = 18.9
    # users: train (1/2, 1/2, 0), test (1/2, 0, 1/2): mixture (1/2, 1/4, 1/4), JS = 1/2 (before smoothing)
    assert row["user_js"] == pytest.approx(0.5, abs=1e-4)
    # time in 20 bins over [0, 10]: train half in the first and half in the last bin, test all in the last
    assert row["time_js"] == pytest.approx(0.5 * (0.5 + 0.5 * math.log2(0.5 / 0.75)) + 0.5 * math.log2(1 / 0.75),
                                           abs=1e-3)
    assert base["item_js"] == pytest.approx(0.0, abs=1e-12) and base["item_kl"] == pytest.approx(0.0, abs=1e-12)
    # Gini of counts (0, 0, 2, 2) over 4 items: sum((2i - n - 1) x_i) / (n sum x) = (1 * 2 + 3 * 2) / 16
    assert base["gini"] == pytest.approx(0.5) and row["gini"] == pytest.approx(0.5)
    # head = top 20% of 4 items = item 0; tail = bottom 50% = items 2, 3
    assert (base["head_share"], base["tail_share"]) == (0.5, 0.0)
    assert (row["head_share"], row["tail_share"]) == (0.0, 1.0)
    assert (row["cold_user_share"], row["cold_item_share"]) == (0.5, 1.0)
    assert (row["events"], row["users"], row["items"]) == (2, 2, 2)
    text = format_shift(summary)
    assert text.splitlines()[0].split()[:4] == ["split", "events", "users", "item"]
    assert "test" in text and "1.0000" in text  # the item JS of test


def test_each_ood_method_shifts_more_than_random_on_synthetic_data():
    data = synthetic.generate(2000, 1500, seed=7)

    def ood_row(method, part="test_ood"):
        parts = split_events(data, method, 0, **KEYS)
        return shift_summary(parts.pop("train"), parts, 1500)["splits"][part]
    random = ood_row("random", "test")  # 10% of each user's events, about the size of the test_ood parts
    popularity = ood_row("popularity")
    assert popularity["item_js"] > 2 * random["item_js"]
    assert popularity["tail_share"] > random["tail_share"] + 0.25
    assert ood_row("degree")["user_js"] > random["user_js"] + 0.4
    for method in ("temporal", "temporal_global"):
        assert ood_row(method)["time_js"] > random["time_js"] + 0.4, method


def test_write_shift_writes_the_summary_of_every_split(tmp_path):
    ds = load_dataset(build_config({"data": {"synthetic": {"num_users": 80, "num_items": 50}},
                                    "split": {"method": "popularity"}}))
    summary = write_shift(ds, tmp_path)
    assert json.loads((tmp_path / "shift.json").read_text()) == summary
    assert list(summary["splits"]) == ["train", "valid", "test", "test_ood"]


def _parser():
    parser = OneLineParser(prog="graphrec")
    split_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser


@pytest.fixture
def events_file(tmp_path):
    data = synthetic.generate(120, 80, seed=3)
    path = tmp_path / "events.txt"
    path.write_text("".join(f"{u + 100} {i + 5000}\n" for u, i in zip(data.user.tolist(), data.item.tolist())))
    return path


def test_split_command_writes_files_a_data_block_and_the_shift(events_file, tmp_path, capsys):
    out = tmp_path / "splits" / "pop"
    args = _parser().parse_args(["split", str(events_file), "--format", "pairs", "--method", "popularity",
                                 "--out", str(out), "--seed", "5", "--set", "split.alpha=2"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["SOURCE.json", "shift.json", "test.txt", "test_ood.txt",
                                                     "train.txt", "valid.txt"]
    source = json.loads((out / "SOURCE.json").read_text())
    assert source["inputs"] == [{"path": str(events_file), "bytes": events_file.stat().st_size,
                                 "sha256": hashlib.sha256(events_file.read_bytes()).hexdigest()}]
    assert source["seed"] == 5 and source["split"]["alpha"] == 2.0 and source["split"]["method"] == "popularity"
    assert "--set split.alpha=2" in source["command"] and source["graphrec_version"]
    assert "test_ood" in printed and "data: {path:" in printed
    # the data block reads back the very same split, raw ids kept
    expected = load_dataset(build_config({"data": {"path": str(events_file), "format": "pairs"},
                                          "split": {"method": "popularity", "alpha": 2.0, "seed": 5}}))
    again = load_dataset(build_config({"data": source["data"]}))
    for name in ("train", "valid", "test", "test_ood"):
        want, got = expected.eval_splits().get(name, expected.train), again.eval_splits().get(name, again.train)
        assert sorted(zip(expected.user_ids[want.user], expected.item_ids[want.item])) == \
            sorted(zip(again.user_ids[got.user], again.item_ids[got.item])), name
    assert json.loads((out / "shift.json").read_text())["splits"]["test_ood"]["events"] == len(again.tests["test_ood"])


def test_split_command_writes_nothing_on_an_error(events_file, tmp_path):
    before = sorted(tmp_path.rglob("*"))
    args = _parser().parse_args(["split", str(events_file), "--format", "pairs", "--method", "temporal",
                                 "--out", str(tmp_path / "out")])
    with pytest.raises(GraphrecError, match="split.method temporal needs timestamps"):
        args.func(args)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    args = _parser().parse_args(["split", str(events_file), "--format", "pairs", "--method", "random",
                                 "--out", str(tmp_path / "full")])
    with pytest.raises(GraphrecError, match="already exists; choose a new folder"):
        args.func(args)
    assert sorted(tmp_path.rglob("*")) == before + [tmp_path / "full", tmp_path / "full" / "x"]


def test_split_command_method_did_you_mean(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["split", "x", "--method", "popularty", "--out", "o"])
    assert "did you mean 'popularity'?" in capsys.readouterr().err
