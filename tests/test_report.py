"""eval_table / plot_eval on one run's metrics, and `graphrec report` over fake run folders with hand-computed
mean ± sd."""
import csv
import io
import json
import sys

import numpy as np
import pytest
import yaml

from graphrec import report
from graphrec.cli import OneLineParser
from graphrec.errors import GraphrecError

METRICS = {"valid/recall@20": 0.3, "test/recall@20": 0.2, "test/ndcg@20": 0.1, "test/users": 50,
           "test_ood/recall@20": 0.15, "test_ood/ndcg@20": 0.12, "test_ood/users": 40, "best_epoch": 3,
           "protocol": "validation"}


def test_eval_table_rows_are_splits_with_the_change_from_test():
    text = report.eval_table(METRICS, ["test", "test_ood"], "table")
    header, test, ood = text.splitlines()
    assert header.split() == ["split", "users", "recall@20", "ndcg@20"]
    assert test.split() == ["test", "50", "0.200000", "0.100000"]
    assert ood.split() == ["test_ood", "40", "0.150000", "(-25.0%)", "0.120000", "(+20.0%)"]
    markdown = report.eval_table(METRICS, None, "markdown").splitlines()
    assert markdown[0] == "| split | users | recall@20 | ndcg@20 |" and markdown[1] == "|---|---|---|---|"
    assert markdown[2].startswith("| valid |  | 0.300000 (+50.0%) |")  # valid has no users count here
    rows = list(csv.DictReader(io.StringIO(report.eval_table(METRICS, ["test", "test_ood"], "csv"))))
    assert rows[1]["recall@20"] == "0.150000" and float(rows[1]["recall@20_vs_test"]) == pytest.approx(-0.25)
    assert rows[0]["recall@20_vs_test"] == ""
    data = json.loads(report.eval_table(METRICS, ["test", "test_ood"], "json"))
    assert data["splits"]["test_ood"] == {"users": 40, "recall@20": 0.15, "ndcg@20": 0.12}
    assert data["vs_test"]["test_ood"]["ndcg@20"] == pytest.approx(0.2)


def test_eval_table_unknown_split_lists_the_runs_splits():
    with pytest.raises(GraphrecError, match="--splits tset: no such split; the runs have valid, test, test_ood"):
        report.eval_table(METRICS, ["tset"])


def test_plot_eval_writes_a_png_and_names_the_extra_when_matplotlib_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    report.plot_eval(METRICS, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(GraphrecError, match=r"pip install 'graphrec\[plot\]'"):
        report.plot_eval(METRICS, tmp_path / "other.png")
    assert not (tmp_path / "other.png").exists()


def make_run(folder, model="lightgcn", seed=1, dataset="ood-food", protocol="validation", lr=0.001,
             metrics=None, finished=True):
    """A fake run folder: config.yaml as the Trainer writes it (the keys report reads) and metrics.json."""
    folder.mkdir(parents=True)
    config = {"name": folder.name, "seed": seed, "output_dir": str(folder.parent),
              "data": {"path": f"/data/{dataset}", "format": "pairs"}, "split": {"method": "given"},
              "model": {"name": model, "embedding_dim": 64}, "train": {"lr": lr, "progress": False},
              "eval": {"topk": [20]}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if finished:
        (folder / "metrics.json").write_text(json.dumps({**(metrics or {}), "protocol": protocol}))
    return folder


@pytest.fixture
def runs(tmp_path):
    """lightgcn x 3 seeds, mf x 2 seeds, one lightgcn with another lr, one unfinished run."""
    root = tmp_path / "runs"
    for seed, (test, ood) in zip((1, 2, 3), ((0.10, 0.05), (0.12, 0.06), (0.14, 0.07))):
        make_run(root / f"lightgcn-{seed}", seed=seed, metrics={"test/recall@20": test, "test_ood/recall@20": ood,
                                                                "valid/recall@20": 0.2})
    for seed, test in zip((1, 2), (0.08, 0.09)):
        make_run(root / f"mf-{seed}", model="mf", seed=seed, metrics={"test/recall@20": test,
                                                                      "test_ood/recall@20": 0.01})
    make_run(root / "lightgcn-lr", seed=1, lr=0.01, metrics={"test/recall@20": 0.2, "test_ood/recall@20": 0.1})
    make_run(root / "lightgcn-crashed", seed=4, finished=False)
    return root


def _report(argv, capsys):
    parser = OneLineParser(prog="graphrec")
    report.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    code = args.func(args)
    return code, capsys.readouterr()


def test_report_mean_and_sd_over_seeds_per_model_and_split(runs, capsys):
    code, captured = _report([str(runs), "--splits", "test,test_ood", "--format", "json"], capsys)
    assert code == 0
    rows = {(r["model"], r["split"], r["settings"].get("train.lr")): r for r in json.loads(captured.out)}
    lightgcn = rows[("lightgcn", "test", 0.001)]
    assert lightgcn["seeds"] == [1, 2, 3] and lightgcn["protocol"] == "validation"
    assert lightgcn["dataset"] == "ood-food"
    assert lightgcn["metrics"]["recall@20"] == {"mean": pytest.approx(0.12), "sd": pytest.approx(0.02), "n": 3}
    assert rows[("lightgcn", "test_ood", 0.001)]["metrics"]["recall@20"]["sd"] == pytest.approx(0.01)
    mf = rows[("mf", "test", 0.001)]["metrics"]["recall@20"]
    assert mf == {"mean": pytest.approx(0.085), "sd": pytest.approx(0.005 * 2 ** 0.5), "n": 2}
    assert rows[("lightgcn", "test", 0.01)]["metrics"]["recall@20"]["sd"] is None  # one seed
    assert len(rows) == 6  # valid left out by --splits
    assert "lightgcn-crashed has no metrics.json (unfinished or failed run); skipped" in captured.err


def test_report_markdown_names_protocol_seeds_and_settings(runs, capsys):
    _, captured = _report([str(runs / "lightgcn-*"), str(runs / "mf-1"), "--metrics", "recall",
                           "--splits", "test"], capsys)
    lines = captured.out.splitlines()
    assert lines[0] == "| model | dataset | protocol | split | seeds | settings | recall@20 |"
    assert lines[2] == "| lightgcn | ood-food | validation | test | 3 (1,2,3) | train.lr=0.001 | 0.1200 ± 0.0200 |"
    assert "| lightgcn | ood-food | validation | test | 1 (1) | train.lr=0.01 | 0.2000 |" in lines
    assert "| mf | ood-food | validation | test | 1 (1) | train.lr=0.001 | 0.0800 |" in lines


def test_report_csv_and_out_file(runs, tmp_path, capsys):
    out = tmp_path / "table.csv"
    _report([str(runs / "mf-1"), str(runs / "mf-2"), "--format", "csv", "--out", str(out)], capsys)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["split"] for r in rows] == ["test", "test_ood"]
    assert (rows[0]["seeds"], rows[0]["recall@20_mean"], rows[0]["recall@20_sd"]) == ("1,2", "0.0850", "0.0071")


def test_report_refuses_mixed_datasets_or_protocols_without_allow_mixed(runs, tmp_path, capsys):
    make_run(tmp_path / "other" / "yelp", dataset="ood-yelp2018", metrics={"test/recall@20": 0.3})
    with pytest.raises(GraphrecError, match=r"different datasets \(ood-food, ood-yelp2018\); pass --allow-mixed"):
        _report([str(runs / "mf-1"), str(tmp_path / "other")], capsys)
    code, captured = _report([str(runs / "mf-1"), str(tmp_path / "other"), "--allow-mixed"], capsys)
    assert code == 0 and "ood-yelp2018" in captured.out
    make_run(tmp_path / "paper", protocol="paper", metrics={"test/recall@20": 0.3})
    with pytest.raises(GraphrecError, match=r"different protocols \(validation, paper\)"):
        _report([str(runs / "mf-1"), str(tmp_path / "paper")], capsys)


def test_report_errors_name_what_there_is(runs, tmp_path, capsys):
    with pytest.raises(GraphrecError, match="--splits tset: no such split; the runs have valid, test, test_ood"):
        _report([str(runs), "--splits", "tset"], capsys)
    with pytest.raises(GraphrecError, match="--metrics hit: no such metric; the runs have recall@20"):
        _report([str(runs), "--metrics", "hit"], capsys)
    with pytest.raises(GraphrecError, match="'.*nothing-\\*' not found"):
        _report([str(tmp_path / "nothing-*")], capsys)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphrecError, match="is not a run folder \\(no config.yaml\\) and holds none"):
        _report([str(tmp_path / "empty")], capsys)


def test_report_settings_ignore_keys_only_some_runs_have(tmp_path, capsys):
    """A key that newer configs write and older ones lack (or another model's key) tells no groups apart."""
    root = tmp_path / "runs"
    make_run(root / "old", metrics={"test/recall@20": 0.1})
    newer = make_run(root / "new", model="mf", lr=0.01, metrics={"test/recall@20": 0.2})
    config = yaml.safe_load((newer / "config.yaml").read_text())
    config["data"]["item_features_missing"] = "error"
    (newer / "config.yaml").write_text(yaml.safe_dump(config))
    code, captured = _report([str(root), "--format", "json"], capsys)
    settings = {r["model"]: r["settings"] for r in json.loads(captured.out)}
    assert code == 0 and settings == {"lightgcn": {"train.lr": 0.001}, "mf": {"train.lr": 0.01}}


@pytest.mark.parametrize("layers,shown", [(2, True), (3, False)])
def test_report_names_a_models_own_key_when_it_is_set_away_from_its_default(layers, shown, tmp_path, capsys):
    """LightGCN's depth (a key MF's schema lacks) is named beside LightGCN's row when the run set it away from the
    default (3), as a tuned key would be, though no other row has it; at the default it stays out."""
    root = tmp_path / "runs"
    run = make_run(root / "lightgcn", metrics={"test/recall@20": 0.1})
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["num_layers"] = layers
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    make_run(root / "mf", model="mf", lr=0.01, metrics={"test/recall@20": 0.2})
    code, captured = _report([str(root), "--format", "json"], capsys)
    settings = {r["model"]: r["settings"] for r in json.loads(captured.out)}
    assert code == 0 and settings["mf"] == {"train.lr": 0.01}
    assert settings["lightgcn"] == ({"model.num_layers": 2, "train.lr": 0.001} if shown else {"train.lr": 0.001})


def test_report_reads_a_key_an_older_config_lacks_as_the_schemas_default(tmp_path, capsys):
    """A config written before a key existed ran with its default: runs that set the key to the default group with
    it (one row), and runs that set another value are told apart by it (the older row shows the default)."""
    root = tmp_path / "runs"
    make_run(root / "old", metrics={"test/recall@20": 0.1})
    for name, seed, value in (("same", 2, 3), ("other", 3, 2)):
        run = make_run(root / name, seed=seed, metrics={"test/recall@20": 0.2})
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["model"]["num_layers"] = value
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, captured = _report([str(root), "--format", "json"], capsys)
    rows = json.loads(captured.out)
    assert code == 0 and sorted((r["seeds"], r["settings"]["model.num_layers"]) for r in rows) == [
        ([1, 2], 3), ([3], 2)]


def test_report_names_gem_models_apart_from_their_base(tmp_path, capsys):
    root = tmp_path / "runs"
    make_run(root / "fm", model="fm", metrics={"test/rmse": 0.4})
    gem = make_run(root / "gem", model="fm", metrics={"test/rmse": 0.39})
    config = yaml.safe_load((gem / "config.yaml").read_text())
    config["model"]["embedding"] = "gem"
    (gem / "config.yaml").write_text(yaml.safe_dump(config))
    code, captured = _report([str(root), "--format", "json"], capsys)
    assert code == 0 and sorted(r["model"] for r in json.loads(captured.out)) == ["fm", "gem-fm"]


def test_report_baseline_gives_each_model_its_change_and_marks_differences_beyond_one_sd(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed, (test, ood) in zip((1, 2), ((0.08, 0.010), (0.09, 0.012))):  # mean 0.085 ± 0.00707, 0.011 ± 0.00141
        make_run(root / f"mf-{seed}", model="mf", seed=seed,
                 metrics={"test/recall@20": test, "test_ood/recall@20": ood})
    for seed, (test, ood) in zip((1, 2), ((0.08, 0.020), (0.095, 0.022))):  # 0.0875 ± 0.0106, 0.021 ± 0.00141
        make_run(root / f"lightgcn-{seed}", seed=seed, metrics={"test/recall@20": test, "test_ood/recall@20": ood})
    code, captured = _report([str(root), "--baseline", "mf", "--format", "json"], capsys)
    rows = {(r["model"], r["split"]): r for r in json.loads(captured.out)}
    assert code == 0 and "vs_baseline" not in rows[("mf", "test")]
    test, ood = rows[("lightgcn", "test")]["vs_baseline"], rows[("lightgcn", "test_ood")]["vs_baseline"]
    assert test["recall@20"] == {"relative": pytest.approx(0.0025 / 0.085), "beyond_sd": 0}  # within the sd
    assert ood["recall@20"] == {"relative": pytest.approx(0.010 / 0.011), "beyond_sd": 1}
    _, captured = _report([str(root), "--baseline", "mf", "--splits", "test_ood"], capsys)
    assert "| 0.0210 ± 0.0014 (+90.9% ▲) |" in captured.out
    _, captured = _report([str(root), "--baseline", "mf", "--splits", "test", "--format", "csv"], capsys)
    row = next(r for r in csv.DictReader(io.StringIO(captured.out)) if r["model"] == "lightgcn")
    assert row["recall@20_vs_baseline"] == "0.0294"


def test_report_paired_tests_differences_by_seed_where_the_sds_hide_them(tmp_path, capsys):
    """Seeds move both models together (each seed carves its own split): a gain of ~0.0115 in every seed is within
    the 0.026 sd of either model's means (no mark unpaired) but a paired t-test finds it (▲); seeds only one model
    ran are left out of the pairs."""
    root = tmp_path / "runs"
    base = {1: 0.10, 2: 0.12, 3: 0.14, 4: 0.16}
    gain = {1: 0.010, 2: 0.012, 3: 0.011, 4: 0.013}
    for seed, value in base.items():
        make_run(root / f"mf-{seed}", model="mf", seed=seed, metrics={"test/recall@20": value})
        make_run(root / f"lightgcn-{seed}", seed=seed, metrics={"test/recall@20": value + gain[seed]})
    make_run(root / "lightgcn-9", seed=9, metrics={"test/recall@20": 0.5})  # no mf run of seed 9: unpaired
    _, captured = _report([str(root / "mf-*"), str(root / "lightgcn-[1-4]"), "--baseline", "mf"], capsys)
    assert "0.1415 ± 0.0269 (+8.8%) |" in captured.out  # unpaired: within one sd
    _, captured = _report([str(root), "--baseline", "mf", "--paired", "--format", "json"], capsys)
    change = next(r for r in json.loads(captured.out) if r["model"] == "lightgcn")["vs_baseline"]["recall@20"]
    diffs = np.array(list(gain.values()))
    t = diffs.mean() / (diffs.std(ddof=1) / 2)  # 17.8 with 3 df: p ~ 4e-4
    assert change["seeds"] == 4 and change["wins"] == 4 and change["significant"] == 1
    assert change["mean_diff"] == pytest.approx(0.0115) and change["relative"] == pytest.approx(0.0115 / 0.13)
    assert change["t"] == pytest.approx(t) and change["p"] < 0.001
    _, captured = _report([str(root), "--baseline", "mf", "--paired"], capsys)
    assert "(+8.8%, 4/4 seeds, p<0.001 ▲) |" in captured.out
    _, captured = _report([str(root), "--baseline", "mf", "--paired", "--format", "csv"], capsys)
    row = next(r for r in csv.DictReader(io.StringIO(captured.out)) if r["model"] == "lightgcn")
    assert row["recall@20_wins"] == "4/4" and float(row["recall@20_p"]) < 0.001


def test_report_paired_p_value_is_the_two_sided_paired_t_test(tmp_path, capsys):
    """Differences 0.01, 0.02, 0.01: t = 0.01333 / (0.005774 / sqrt 3) = 4.0 with 2 df, two-sided p = 0.0572: not
    marked at 0.05; a model that loses by the same amount in every seed is marked ▼ with p = 0."""
    root = tmp_path / "runs"
    for seed, (mf, lightgcn, pop) in enumerate(((0.10, 0.11, 0.05), (0.12, 0.14, 0.07), (0.14, 0.15, 0.09)), 1):
        make_run(root / f"mf-{seed}", model="mf", seed=seed, metrics={"test/recall@20": mf})
        make_run(root / f"lightgcn-{seed}", seed=seed, metrics={"test/recall@20": lightgcn})
        make_run(root / f"pop-{seed}", model="pop", seed=seed, metrics={"test/recall@20": pop})
    _, captured = _report([str(root), "--baseline", "mf", "--paired", "--format", "json"], capsys)
    rows = {r["model"]: r for r in json.loads(captured.out)}
    lightgcn, pop = rows["lightgcn"]["vs_baseline"]["recall@20"], rows["pop"]["vs_baseline"]["recall@20"]
    assert lightgcn["t"] == pytest.approx(4.0) and lightgcn["p"] == pytest.approx(0.05719, abs=1e-5)
    assert lightgcn["significant"] == 0 and lightgcn["wins"] == 3
    assert pop["wins"] == 0 and pop["p"] == 0.0 and pop["significant"] == -1 and pop["t"] == -np.inf
    _, captured = _report([str(root), "--baseline", "mf", "--paired"], capsys)
    assert "(+11.1%, 3/3 seeds, p=0.057) |" in captured.out


def test_report_paired_refuses_a_seed_run_twice_with_the_same_settings(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed in (1, 2):
        make_run(root / f"mf-{seed}", model="mf", seed=seed, metrics={"test/recall@20": 0.1 * seed})
        make_run(root / f"lightgcn-{seed}", seed=seed, metrics={"test/recall@20": 0.1 * seed})
    make_run(root / "lightgcn-2-again", seed=2, metrics={"test/recall@20": 0.3})
    with pytest.raises(GraphrecError, match="--paired: lightgcn on ood-food \\(test\\) has two runs of seed 2"):
        _report([str(root), "--baseline", "mf", "--paired"], capsys)


def test_report_baseline_picks_one_setting_group_of_its_model_and_compares_the_others_with_it(runs, capsys):
    """The runs fixture has lightgcn at lr 0.001 (seeds 1-3) and at lr 0.01 (seed 1): `lightgcn:train.lr=0.001`
    names the first as the baseline; the other lightgcn group and mf are compared with it."""
    _, captured = _report([str(runs), "--baseline", "lightgcn:train.lr=0.001", "--splits", "test", "--format",
                           "json"], capsys)
    rows = {(r["model"], r["settings"]["train.lr"]): r for r in json.loads(captured.out)}
    assert "vs_baseline" not in rows[("lightgcn", 0.001)]
    assert rows[("lightgcn", 0.01)]["vs_baseline"]["recall@20"]["relative"] == pytest.approx(0.2 / 0.12 - 1)
    assert rows[("mf", 0.001)]["vs_baseline"]["recall@20"]["relative"] == pytest.approx(0.085 / 0.12 - 1)
    _, captured = _report([str(runs), "--baseline", "lightgcn:train.lr=1e-2", "--splits", "test", "--format",
                           "json"], capsys)  # a value as YAML reads it
    rows = {(r["model"], r["settings"]["train.lr"]): r for r in json.loads(captured.out)}
    assert "vs_baseline" not in rows[("lightgcn", 0.01)] and "vs_baseline" in rows[("lightgcn", 0.001)]
    with pytest.raises(GraphrecError, match="--baseline lightgcn:train.lr=0.5: no lightgcn run has train.lr=0.5"):
        _report([str(runs), "--baseline", "lightgcn:train.lr=0.5"], capsys)
    with pytest.raises(GraphrecError, match="'train.lr' is not KEY=VALUE"):
        _report([str(runs), "--baseline", "lightgcn:train.lr"], capsys)


def test_report_baseline_selector_takes_a_list_value_with_commas(tmp_path, capsys):
    """`lightgcn:model.layer_weights=[0, 0.5, 0.5]` names the group with that list (written [0.0, 0.5, 0.5] in its
    config); the commas inside the brackets are the value's, not separators between KEY=VALUE pairs."""
    root = tmp_path / "runs"
    for name, weights, recall in (("plain", None, 0.10), ("shaped", [0.0, 0.5, 0.5], 0.12)):
        folder = make_run(root / name, metrics={"test/recall@20": recall})
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["model"]["layer_weights"] = weights
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    _, captured = _report([str(root), "--baseline", "lightgcn:model.layer_weights=[0, 0.5, 0.5],train.lr=0.001",
                           "--splits", "test", "--format", "json"], capsys)
    rows = {str(r["settings"].get("model.layer_weights")): r for r in json.loads(captured.out)}
    assert "vs_baseline" not in rows["[0.0, 0.5, 0.5]"]  # the config's floats, the selector's ints
    assert rows["None"]["vs_baseline"]["recall@20"]["relative"] == pytest.approx(0.10 / 0.12 - 1)
    with pytest.raises(GraphrecError, match="no lightgcn run has data.format=\\[pairs\\]"):  # a list against a string
        _report([str(root), "--baseline", "lightgcn:data.format=[pairs]"], capsys)


def test_report_settings_option_narrows_the_column_but_not_the_groups(runs, capsys):
    """--settings shows the keys named (even one no group varies) and adds only the column's keys that keep two
    groups of one model apart (lightgcn's two lrs); `none` empties the column where no groups would read alike; the
    baseline still picks its group by every setting."""
    _, captured = _report([str(runs), "--splits", "test", "--format", "json", "--settings", "model.embedding_dim",
                           "--baseline", "lightgcn:train.lr=0.001"], capsys)
    rows = json.loads(captured.out)
    assert [(r["model"], r["settings"]) for r in rows] == [
        ("lightgcn", {"model.embedding_dim": 64, "train.lr": 0.001}),
        ("lightgcn", {"model.embedding_dim": 64, "train.lr": 0.01}), ("mf", {"model.embedding_dim": 64,
                                                                            "train.lr": 0.001})]
    assert rows[1]["vs_baseline"]["recall@20"]["relative"] == pytest.approx(0.2 / 0.12 - 1)
    _, captured = _report([str(runs), "--splits", "test", "--settings", "none"], capsys)
    assert [line.split(" | ")[5] for line in captured.out.splitlines()[2:]] == [
        "train.lr=0.001", "train.lr=0.01", "train.lr=0.001"]
    _, captured = _report([str(runs / "mf-1"), str(runs / "mf-2"), str(runs / "lightgcn-lr"), "--splits", "test",
                           "--settings", "none"], capsys)
    assert [line.split(" | ")[5] for line in captured.out.splitlines()[2:]] == ["-", "-"]


def test_report_baseline_errors_name_the_models_and_the_groups(runs, capsys):
    with pytest.raises(GraphrecError, match=r"--baseline lgcn: no run of that model among the runs \(models: "
                                            r"lightgcn, mf\)"):
        _report([str(runs), "--baseline", "lgcn"], capsys)
    with pytest.raises(GraphrecError, match="--baseline lightgcn: its runs form several setting groups on ood-food"):
        _report([str(runs), "--baseline", "lightgcn"], capsys)


def test_report_leaves_training_keys_out_of_the_settings_of_runs_that_trained_nothing(tmp_path, capsys):
    root = tmp_path / "runs"
    make_run(root / "lightgcn", metrics={"test/recall@20": 0.2, "epochs_run": 30})
    make_run(root / "lightgcn-lr", lr=0.01, metrics={"test/recall@20": 0.3, "epochs_run": 30})
    make_run(root / "pop", model="pop", lr=0.02, metrics={"test/recall@20": 0.1, "epochs_run": 0})
    _, captured = _report([str(root), "--format", "json"], capsys)
    settings = [(r["model"], r["settings"]) for r in json.loads(captured.out)]
    assert settings == [("lightgcn", {"train.lr": 0.001}), ("lightgcn", {"train.lr": 0.01}), ("pop", {})]


def test_report_tables_round_float_settings_and_csv_keeps_them_exact(tmp_path, capsys):
    for seed, lr in ((1, 0.007939548924554828), (1, 0.01)):
        make_run(tmp_path / f"run-{lr}", seed=seed, lr=lr, metrics={"test/recall@20": 0.1})
    _, captured = _report([str(tmp_path), "--splits", "test", "--metrics", "recall"], capsys)
    assert "| train.lr=0.00794 |" in captured.out and "| train.lr=0.01 |" in captured.out
    _, captured = _report([str(tmp_path), "--splits", "test", "--metrics", "recall", "--format", "csv"], capsys)
    assert "train.lr=0.007939548924554828" in captured.out


def test_report_tells_runs_apart_by_the_modalities_they_use(tmp_path, capsys):
    """data.item_features is one setting: a run with one modality of two is not shown as the same setting."""
    for name, features in (("both", {"text": "/f/t.npy", "genre": "/f/g.npy"}), ("text", {"text": "/f/t.npy"})):
        folder = make_run(tmp_path / name, metrics={"test/recall@20": 0.1})
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["data"]["item_features"] = features
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    code, captured = _report([str(tmp_path), "--format", "json", "--splits", "test"], capsys)
    settings = sorted(r["settings"]["data.item_features"] for r in json.loads(captured.out))
    assert code == 0 and settings == ["genre:g.npy,text:t.npy", "text:t.npy"]


def test_report_groups_refit_seeds_by_the_budget_they_were_selected_within(tmp_path, capsys):
    """Refit seeds that selected different epoch counts are one setting, shown like their validation runs."""
    root = tmp_path / "runs"
    for seed, (epochs, test) in zip((1, 2, 3), ((18, 0.10), (18, 0.12), (16, 0.14))):
        run = make_run(root / f"refit-{seed}", seed=seed, protocol="refit", metrics={"test/recall@20": test})
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["train"].update(epochs=epochs, lr_schedule_epochs=20)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    validation = make_run(root / "valid-1", metrics={"test/recall@20": 0.09})
    config = yaml.safe_load((validation / "config.yaml").read_text())
    config["train"].update(epochs=20)
    (validation / "config.yaml").write_text(yaml.safe_dump(config))
    code, captured = _report([str(root), "--format", "json", "--allow-mixed"], capsys)
    rows = {r["protocol"]: r for r in json.loads(captured.out)}
    assert code == 0 and rows["refit"]["seeds"] == [1, 2, 3] and rows["refit"]["settings"] == {}
    assert rows["refit"]["metrics"]["recall@20"]["mean"] == pytest.approx(0.12)
    assert rows["validation"]["settings"] == {}


def test_report_leaves_out_a_key_every_row_keeps_at_its_own_models_default(tmp_path, capsys):
    """DRGO's and CausalDiffRec's read-out depths differ only by their defaults (2 and 3): the model column says it;
    set away from its default in one row, the key is named in both."""
    root = tmp_path / "runs"
    make_run(root / "causaldiffrec", model="causaldiffrec", metrics={"test/recall@20": 0.1})
    drgo = make_run(root / "drgo", model="drgo", metrics={"test/recall@20": 0.2})
    config = yaml.safe_load((drgo / "config.yaml").read_text())
    config["model"]["num_layers"] = 2
    (drgo / "config.yaml").write_text(yaml.safe_dump(config))
    _, captured = _report([str(root), "--format", "json"], capsys)
    assert [r["settings"] for r in json.loads(captured.out)] == [{}, {}]
    config["model"]["num_layers"] = 1
    (drgo / "config.yaml").write_text(yaml.safe_dump(config))
    _, captured = _report([str(root), "--format", "json"], capsys)
    assert [r["settings"].get("model.num_layers") for r in json.loads(captured.out)] == [3, 1]


def test_report_keeps_a_rerun_of_the_same_seeds_apart_from_the_old_runs_by_source(tmp_path, capsys):
    """A model re-run after a fix (same settings, same seeds, another folder) is its own row, not 6 seeds pooled;
    runs of one group spread over folders with distinct seeds still pool."""
    old, new, more = tmp_path / "old", tmp_path / "new", tmp_path / "more"
    for seed in (1, 2):
        make_run(old / f"freedom-{seed}", model="freedom", seed=seed, metrics={"test/recall@20": 0.10})
        make_run(new / "seeds" / "runs" / f"freedom-{seed}", model="freedom", seed=seed,
                 metrics={"test/recall@20": 0.10 + 0.01 * seed})
    make_run(more / "freedom-3", model="freedom", seed=3, metrics={"test/recall@20": 0.30})
    _, captured = _report([str(old / "freedom-1"), str(old / "freedom-2"), str(new), "--baseline",
                           f"freedom:source={old}", "--paired"], capsys)
    rows = [line for line in captured.out.splitlines() if line.startswith("| freedom")]
    assert len(rows) == 2
    assert f"| 2 (1,2) | source={old} | 0.1000 ± 0.0000 |" in rows[0]
    assert f"| 2 (1,2) | source={new} | 0.1150 ± 0.0071 (+15.0%, 2/2 seeds," in rows[1]
    _, captured = _report([str(old), str(more)], capsys)
    assert "| 3 (1,2,3) | - | 0.1667 ± 0.1155 |" in captured.out
