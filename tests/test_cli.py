"""End-to-end, in-process: graphrec train | eval | models | data info on tiny synthetic or hand-made data."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from graphrec.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"

TINY = {
    "name": "tiny",
    "seed": 3,
    "device": "cpu",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 60, "num_items": 40, "num_communities": 3, "mean_degree": 10, "seed": 1}},
    "split": {"method": "random", "valid_ratio": 0.2, "test_ratio": 0.2},
    "model": {"name": "lightgcn", "embedding_dim": 8, "num_layers": 2},
    "train": {"epochs": 5, "batch_size": 128, "lr": 0.01, "progress": False},
    "eval": {"topk": [5, 20]},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, `graphrec train CONFIG --set train.epochs=2`, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(root / "runs")}, sort_keys=False))
    code = main(["train", str(config), "--set", "train.epochs=2"])
    assert code == 0
    (run,) = (root / "runs").iterdir()
    return run


def test_train_writes_the_run_folder(trained):
    assert trained.name.startswith("tiny-")
    for name in ("config.yaml", "metrics.json", "log.jsonl", "best.pt", "last.pt", "warnings.json"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob(".*.tmp"))  # no leftovers of atomic writes
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert config["train"]["epochs"] == 2 and config["model"]["num_layers"] == 2
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("valid/recall@20", "valid/ndcg@5", "test/recall@20", "test/ndcg@20", "best_epoch", "train_seconds"):
        assert key in metrics, key
    assert metrics["epochs_run"] == 2 and 0 <= metrics["best_epoch"] < 2
    assert 0.0 <= metrics["test/ndcg@20"] <= 1.0
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "epoch" in r and not r.get("final")] == [0, 1]
    assert isinstance(json.loads((trained / "warnings.json").read_text()), dict)


def _parse_table(text: str) -> dict[str, float]:
    """'<split>/<metric>@<K>' -> value from the printed table (rows: splits; columns: split, users, metric@K ...;
    a relative change from the test row may follow a value in parentheses)."""
    lines = [re.sub(r"\([^)]*\)", "", line) for line in text.splitlines() if line.strip()]
    columns = lines[0].split()[2:]
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) != len(columns) + 2:
            continue
        for column, value in zip(columns, parts[2:]):
            out[f"{parts[0]}/{column}"] = float(value)
    return out


def test_eval_reproduces_the_test_metrics(trained, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained)]) == 0
    out, err = capsys.readouterr()
    table = _parse_table(out)
    metrics = json.loads((trained / "metrics.json").read_text())
    test_keys = [k for k in metrics if k.startswith("test/") and "@" in k]
    assert len(test_keys) == 10
    for key in test_keys:
        assert table[key] == pytest.approx(metrics[key], abs=1e-6), key
    assert "Traceback" not in err


def test_eval_one_split_and_last_checkpoint(trained, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained), "--splits", "test", "--checkpoint", "last.pt"]) == 0
    table = _parse_table(capsys.readouterr().out)
    assert table and all(key.startswith("test/") for key in table)


def test_eval_set_changes_how_the_checkpoint_evaluates_not_its_parameters(trained, capsys):
    """`eval --set` applies model.* / eval.* keys to the loaded run: LightGCN with 0 layers ranks with the trained
    table itself, and eval.topk picks the cut-offs printed."""
    from graphrec.trainer import load_run
    cfg, _, model, _ = load_run(trained, overrides=["model.num_layers=0"])
    saved = torch.load(trained / "best.pt", weights_only=False)["model"]
    assert cfg.model["num_layers"] == 0
    torch.testing.assert_close(model.propagate(), saved["embedding"])
    capsys.readouterr()
    assert main(["eval", str(trained), "--splits", "test", "--set", "eval.topk=[3,20]", "--format", "json"]) == 0
    keys = set(json.loads(capsys.readouterr().out)["splits"]["test"])
    assert {"recall@3", "recall@20"} <= keys and not any(key.endswith("@5") for key in keys)


def test_eval_under_the_leaky_protocol_is_the_leaky_evaluator_on_the_same_checkpoint(trained, capsys):
    """`eval --set protocol=leaky` scores a validation-protocol checkpoint as the official codes do (the split's edges
    in the graph, nothing masked): exactly a leaky Evaluator's numbers, and not the honest ones."""
    from graphrec.evaluation import Evaluator, evaluate_splits
    from graphrec.trainer import load_run
    cfg, dataset, model, _ = load_run(trained)
    leaky = Evaluator(dataset, "test", cfg.eval.topk, cfg.eval.metrics, cfg.eval.max_score_elements, leaky=True)
    expected = {k.split("/", 1)[1]: v for k, v in evaluate_splits(model, {"test": leaky}, ["test"]).items()}
    capsys.readouterr()

    def evaluated(*extra):
        assert main(["eval", str(trained), "--splits", "test", "--format", "json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["splits"]["test"]

    got, honest = evaluated("--set", "protocol=leaky"), evaluated()
    assert got == pytest.approx({k: expected[k] for k in got})
    assert got["recall@20"] != pytest.approx(honest["recall@20"])


def test_models_lists_mf_and_lightgcn(capsys):
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {"mf", "lightgcn"} <= set(names)


def test_data_info_on_a_hand_made_folder(capsys):
    code = main(["data", "info", str(FIXTURES / "tiny_lightgcn"), "--format", "lightgcn",
                 "--files", "train=train.txt,test=test.txt"])
    out, err = capsys.readouterr()
    assert code == 0, err
    stats = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert stats["users"] == "4" and stats["items"] == "5"
    assert stats["interactions"] == "16" and stats["train"] == "12" and stats["test"] == "4"
    assert float(stats["density"]) == pytest.approx(12 / 20)


def test_data_info_on_one_csv_file(capsys):
    code = main(["data", "info", str(FIXTURES / "tiny_ratings.csv"), "--format", "csv",
                 "--columns", "user=userId,item=movieId"])
    out, err = capsys.readouterr()
    assert code == 0, err
    stats = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert (stats["users"], stats["items"], stats["interactions"]) == ("3", "3", "5")
    assert "test" not in stats


def test_train_with_resume_continues_the_run(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "runs")}, sort_keys=False))
    assert main(["train", str(config), "--set", "train.epochs=1"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_a_reader_that_closes_stdout_early_ends_the_command_quietly(monkeypatch, capsys):
    """`graphrec report ... | head -4` once printed 'cannot access a file: Broken pipe'; now nothing, exit 141."""
    import graphrec.cli as cli

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(cli, "cmd_models", closed_pipe)
    assert cli.main(["models"]) == 141
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress, terminal, drawn", [("auto", False, False), ("auto", True, True),
                                                       ("true", False, True), ("false", True, False)])
def test_progress_bar_by_default_only_on_a_terminal_so_never_in_a_log_file(tmp_path, monkeypatch, progress, terminal,
                                                                           drawn):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "runs")}, sort_keys=False))
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["train", str(config), "--set", "train.epochs=1", "--set", f"train.progress={progress}"]) == 0
    assert ("it/s]" in err.getvalue()) == drawn


def test_help_report_and_archive_run_without_torch(tmp_path):
    """Parsing any command line, and the commands that only read and copy run folders, never import torch (its
    import is most of a command's start); a fresh process, since this one has torch already."""
    import subprocess
    import sys
    runs = Path(__file__).resolve().parents[1] / "docs" / "runs" / "ablations" / "nfm-60-epochs"
    code = ("import sys; from graphrec.cli import build_parser, main; build_parser(); "
            f"assert main(['report', {str(runs)!r}, '--splits', 'test']) == 0; "
            f"assert main(['archive', {str(runs)!r}, '--out', {str(tmp_path)!r}]) == 0; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| nfm | frappe-nfm |" in proc.stdout and (tmp_path / "nfm-60-epochs").is_dir()
