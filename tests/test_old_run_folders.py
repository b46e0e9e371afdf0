"""A run folder written before the extension-points change (commit 4072d73, kept in data/fixtures) still evaluates
to its own metrics.json and still resumes: new keys (task, protocol, dro, ...) take their defaults."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graphrec.cli import main
from graphrec.trainer import evaluate_run

OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "run_before_extension_points"


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, run)
    return run


def test_an_old_run_evaluates_to_its_own_metrics(old_run):
    saved = json.loads((old_run / "metrics.json").read_text())
    metrics = evaluate_run(old_run)
    for key in ("test/recall@20", "test/ndcg@20", "valid/recall@10"):
        assert metrics[key] == pytest.approx(saved[key], abs=1e-6), key


def test_an_old_run_resumes_for_more_epochs(old_run, capsys):
    assert main(["train", "--resume", str(old_run), "--set", "train.epochs=4"]) == 0
    metrics = json.loads((old_run / "metrics.json").read_text())
    records = [json.loads(line) for line in (old_run / "log.jsonl").read_text().splitlines()]
    assert metrics["epochs_run"] == 4 and [r["epoch"] for r in records if "epoch" in r] == [0, 1, 2, 3]
