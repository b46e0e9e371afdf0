"""Checkpoints, exact resume, signals, numeric guards and determinism of the training loop (CPU, synthetic data).

"Exact" means bitwise: with the same config, seed and thread count, an interrupted and resumed run ends with the
same metrics.json values (==) and the same per-epoch losses as a run that was never interrupted.
"""
from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from graphrec import atomic
from graphrec.checkpoint import load_checkpoint
from graphrec.cli import main
from graphrec.config import load_config
from graphrec.errors import GraphrecError
from graphrec.trainer import StopRequest, Trainer

from train_helpers import (RESUME_CONFIG, history, results, start_train, stop_mid_epoch_and_resume,
                           stopped_and_resumed, wait_for_epochs, write_config)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run of the resume config: (metrics, epoch records, run folder)."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("reference")
    trainer = Trainer(load_config(write_config(folder, folder / "runs")))
    metrics = trainer.fit()
    torch.set_num_threads(threads)
    return results(metrics), history(trainer.run_dir), trainer.run_dir


def _final(run_dir) -> dict:
    return results(json.loads((run_dir / "metrics.json").read_text()))


def test_reference_run_writes_checkpoints(reference):
    metrics, records, run_dir = reference
    assert metrics["epochs_run"] < 30, "the config should stop early, so resuming must carry the patience state"
    last, best = load_checkpoint(run_dir / "last.pt"), load_checkpoint(run_dir / "best.pt")
    for saved in (last, best):
        assert {"model", "optimizer", "scheduler", "rng", "state", "epoch_start_gen_state", "config"} <= set(saved)
        assert {"python", "numpy", "torch"} <= set(saved["rng"])
    assert last["state"]["epoch"] == metrics["epochs_run"] and last["state"]["stopped_early"]
    assert best["state"]["best_epoch"] == metrics["best_epoch"]
    assert not list(run_dir.glob(".*.tmp"))
    assert len(records) == metrics["epochs_run"]


def test_same_seed_same_metrics(reference, tmp_path):
    """Determinism on CPU: a second in-process run with the same config, seed and threads gives == results."""
    metrics = Trainer(load_config(write_config(tmp_path, tmp_path / "runs"))).fit()
    assert results(metrics) == reference[0]


def test_sigkill_then_resume_is_bitwise_identical(reference, tmp_path):
    cfg = write_config(tmp_path, tmp_path / "runs")
    proc = start_train([str(cfg)], tmp_path)
    run_dir = wait_for_epochs(tmp_path / "runs", 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=300)
    assert not (run_dir / "metrics.json").exists(), "killed too late: the run had already finished"
    assert load_checkpoint(run_dir / "last.pt")["state"]["epoch"] >= 3

    proc = start_train(["--resume", str(run_dir)], tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "resuming" in err
    assert _final(run_dir) == reference[0]
    assert history(run_dir) == reference[1]  # log.jsonl: every epoch once, the same losses
    assert not list(run_dir.glob(".*.tmp"))


def test_sigterm_saves_last_and_resume_matches(reference, tmp_path, capsys):
    cfg = write_config(tmp_path, tmp_path / "runs")
    proc = start_train([str(cfg)], tmp_path)
    run_dir = wait_for_epochs(tmp_path / "runs", 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err and str(run_dir) in err
    state = load_checkpoint(run_dir / "last.pt")["state"]  # loads: complete, not half-written
    assert state["epoch"] >= 2 and not (run_dir / "metrics.json").exists()

    assert main(["train", "--resume", str(run_dir)]) == 0  # in-process CLI
    assert _final(run_dir) == reference[0]
    assert history(run_dir) == reference[1]


def test_mid_epoch_stop_and_resume_in_process(reference, tmp_path):
    """A stop request in the 6th batch of epoch 1 saves a mid-epoch last.pt; resuming replays the epoch's
    sampling from its saved start state, skips the finished batches and carries their loss sums."""
    cfg = load_config(write_config(tmp_path, tmp_path / "runs"))
    metrics, run_dir, where, code = stop_mid_epoch_and_resume(cfg, epoch=1, batch=6)
    assert code == 130 and where == (1, 6)
    assert metrics == reference[0]
    assert history(run_dir) == reference[1]


def test_second_interrupt_exits_at_once_without_partial_files(tmp_path, monkeypatch):
    stop = StopRequest(announce=False)
    exits = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    partial = tmp_path / ".last.pt.abc.tmp"
    partial.write_bytes(b"half")
    monkeypatch.setattr(atomic, "_IN_FLIGHT", {str(partial)})
    stop._handle(signal.SIGINT, None)
    assert stop.requested and not exits and partial.exists()
    stop._handle(signal.SIGINT, None)  # the same Ctrl-C delivered twice (terminal + torchrun): still one request
    assert not exits and partial.exists()
    stop._first_at -= stop.DUPLICATE_WINDOW
    stop._handle(signal.SIGINT, None)
    assert exits == [130] and not partial.exists()


def test_nan_loss_names_epoch_batch_and_last_checkpoint(tmp_path):
    cfg = load_config(write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 4}}))
    trainer = Trainer(cfg)
    real_loss, calls, per_epoch = trainer.model.loss, [], trainer._epoch_batches()

    def poisoned(*args, **kwargs):  # NaN from the 8th batch of epoch 2 on
        calls.append(1)
        out = real_loss(*args, **kwargs)
        if len(calls) > 2 * per_epoch + 7:
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.model.loss = poisoned
    with pytest.raises(GraphrecError) as err:
        trainer.fit()
    message = str(err.value)
    assert "\n" not in message
    assert "loss became nan at epoch 2 batch 7" in message
    assert f"last good checkpoint: {trainer.run_dir / 'last.pt'} (end of epoch 1)" in message
    saved = load_checkpoint(trainer.run_dir / "last.pt")
    assert saved["state"]["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_nan_embeddings_are_caught_at_the_batch(tmp_path):
    trainer = Trainer(load_config(write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 2}})))
    real_step, steps = trainer.optimizer.step, []

    def corrupting_step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        steps.append(1)
        if len(steps) == 3:
            with torch.no_grad():
                trainer.model.embedding[7, 0] = float("inf")
        return out

    trainer.optimizer.step = corrupting_step
    with pytest.raises(GraphrecError, match=r"embeddings became NaN/Inf at epoch 0 batch 2; no checkpoint was saved"):
        trainer.fit()


def test_huge_lr_stops_with_one_line_error(tmp_path, capsys):
    cfg = write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 3, "lr": 1.0e30, "optimizer": "sgd"}})
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("graphrec: error:")]
    assert len(lines) == 1 and "at epoch 0 batch" in lines[0] and "train.grad_clip" in lines[0]


def test_grad_clip_bounds_the_gradient_norm(tmp_path):
    clip = 0.005
    trainer = Trainer(load_config(write_config(tmp_path, tmp_path / "runs",
                                               {"train": {"epochs": 2, "grad_clip": clip}})))
    real_step, norms = trainer.optimizer.step, []

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return real_step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    trainer.fit()
    assert len(norms) == 2 * trainer._epoch_batches()
    assert max(norms) <= clip * (1 + 1e-5)
    logged = [r["train/grad_norm"] for r in history(trainer.run_dir)]
    assert len(logged) == 2 and all(math.isfinite(v) for v in logged)
    assert max(logged) > clip  # the pre-clip norm was above the bound, so clipping did act


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_cosine_schedule_with_dynamic_negatives_resumes_exactly(tmp_path):
    """The learning rate follows the cosine formula per epoch, and a run stopped mid-epoch resumes onto it."""
    overrides = {"train": {"epochs": 6, "patience": 0, "lr_schedule": "cosine", "lr_min": 0.0004,
                           "num_negatives": 2, "negative_candidates": 3}}
    whole = Trainer(load_config(write_config(tmp_path / "a", tmp_path / "a" / "runs", overrides)))
    expected = results(whole.fit())
    records = history(whole.run_dir)
    lr, lr_min = RESUME_CONFIG["train"]["lr"], 0.0004
    assert [r["train/lr"] for r in records] == pytest.approx(
        [lr_min + (lr - lr_min) * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)])

    cfg = load_config(write_config(tmp_path / "b", tmp_path / "b" / "runs", overrides))
    assert stopped_and_resumed(cfg, 2 * whole._epoch_batches() + 4) == (expected, records)
