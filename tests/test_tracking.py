"""Tracking: log.jsonl always; W&B offline writes a local run with no login or network; disabled imports nothing."""
import json

import pytest

from graphrec.config import build_config
from graphrec.trainer import Trainer


def _config(tmp_path, mode):
    return build_config({"data": {"synthetic": {"num_users": 60, "num_items": 40}}, "split": {"method": "random"},
                         "train": {"epochs": 2, "progress": False}, "tracking": {"mode": mode},
                         "output_dir": str(tmp_path)})


def test_log_jsonl_has_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    trainer = Trainer(_config(tmp_path, "disabled"))
    trainer.fit()
    records = [json.loads(line) for line in (trainer.run_dir / "log.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if "epoch" in r and not r.get("final")]
    assert epochs == [0, 1]
    assert all("valid/recall@20" in r for r in records if "epoch" in r and not r.get("final"))
    assert not (trainer.run_dir / "wandb").exists()


def test_wandb_offline_writes_a_local_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer = Trainer(_config(tmp_path, "offline"))
    metrics = trainer.fit()
    runs = list((trainer.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert "test/recall@20" in metrics
