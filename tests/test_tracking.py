"""Tracking: log.jsonl always; W&B offline writes a local run with no login or network; disabled imports nothing."""
import json

import pytest

from graphrec.config import build_config
from graphrec.runs import read_run_metadata
from graphrec.trainer import Trainer

from train_helpers import RESUME_CONFIG, merged, stop_mid_epoch_and_resume


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


def test_wandb_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    """A run stopped mid-epoch and resumed logs to one W&B run: both sessions use run.json's tracking_id, and the
    W&B config carries the commit and versions."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = []
    real_init = wandb.init

    def recording_init(*args, **kwargs):
        seen.append((kwargs.get("id"), kwargs.get("resume"), kwargs["config"]["run"].get("torch")))
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", recording_init)
    cfg = build_config(merged(RESUME_CONFIG, {"output_dir": str(tmp_path), "tracking": {"mode": "offline"}}))
    _, run_dir, stopped_at, _ = stop_mid_epoch_and_resume(cfg, epoch=1, batch=3)
    tracking_id = read_run_metadata(run_dir)["tracking_id"]
    assert stopped_at == (1, 3) and len(tracking_id) == 8
    assert [s[0] for s in seen] == [tracking_id, tracking_id] and {s[1] for s in seen} == {"allow"}
    assert all(s[2] for s in seen)  # versions in the W&B config
    local = [p.name for p in (run_dir / "wandb").glob("offline-run-*")]  # offline-run-<time>-<id>[-n]
    assert len(local) == 2 and all(f"-{tracking_id}" in name for name in local), local
