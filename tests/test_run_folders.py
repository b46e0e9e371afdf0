"""Run folders: hidden until the first checkpoint, nothing or FAILED.json after a failure, one process per folder,
schedules and data checked on resume, seeded ties in leave-one-out (CPU, tiny synthetic data)."""
from __future__ import annotations

import json
import signal
import threading

import numpy as np
import pytest

from graphrec import trainer as trainer_module
from graphrec.cli import main
from graphrec.config import build_config, load_config
from graphrec.data.dataset import Interactions
from graphrec.data.splits import leave_one_out
from graphrec.errors import GraphrecError
from graphrec.runs import RunLock, claim_run_dir, failure_reason, is_failed, mark_failed
from graphrec.trainer import StopRequest, Trainer, TrainingStopped

from train_helpers import history, results, write_config

TINY = {"seed": 3, "device": "cpu", "name": "tiny",
        "data": {"format": "synthetic", "synthetic": {"num_users": 60, "num_items": 40, "mean_degree": 10, "seed": 1}},
        "split": {"method": "random", "valid_ratio": 0.2, "test_ratio": 0.2},
        "model": {"name": "mf", "embedding_dim": 8}, "train": {"epochs": 2, "batch_size": 64, "progress": False}}


def tiny(tmp_path, **train) -> object:
    return build_config({**TINY, "output_dir": str(tmp_path / "runs"), "train": {**TINY["train"], **train}})


def poison_loss(trainer: Trainer, from_call: int) -> None:
    """Make the loss NaN from the `from_call`-th batch on (1-based)."""
    real, calls = trainer.model.loss, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        if len(calls) >= from_call:
            out["loss"] = out["loss"] * float("nan")
        return out
    trainer.model.loss = poisoned


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_run_folder_is_hidden_until_its_first_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path))
    seen, real_step = [], trainer.optimizer.step

    def watching_step(*args, **kwargs):
        seen.append(listing(tmp_path / "runs"))
        return real_step(*args, **kwargs)
    trainer.optimizer.step = watching_step
    trainer.fit()
    final = trainer.run_dir
    assert seen[0] == [f".{final.name}.partial"]  # during epoch 0: only the hidden folder
    assert seen[-1] == [final.name]  # epoch 1: published
    assert listing(tmp_path / "runs") == [final.name] and (final / "metrics.json").is_file()
    assert json.loads((final / "log.jsonl").read_text().splitlines()[0])["epoch"] == 0  # log moved along


def test_a_failure_before_the_first_checkpoint_leaves_nothing(tmp_path):
    trainer = Trainer(tiny(tmp_path))
    poison_loss(trainer, 1)
    with pytest.raises(GraphrecError, match="at epoch 0 batch 0; no checkpoint was saved yet"):
        trainer.fit()
    assert not (tmp_path / "runs").exists()  # not even the output folder the claim made


def test_a_tracking_setup_failure_leaves_nothing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise GraphrecError("tracking refused")
    monkeypatch.setattr(trainer_module, "Tracker", refuse)
    with pytest.raises(GraphrecError, match="tracking refused"):
        Trainer(tiny(tmp_path))
    assert not (tmp_path / "runs").exists()


def test_a_failure_after_the_first_checkpoint_marks_the_folder_and_eval_and_resume_refuse_it(tmp_path, capsys):
    trainer = Trainer(tiny(tmp_path))
    poison_loss(trainer, trainer._epoch_batches() + 1)  # the first batch of epoch 1
    with pytest.raises(GraphrecError):
        trainer.fit()
    run = trainer.run_dir
    assert is_failed(run) and failure_reason(run).startswith("loss became nan at epoch 1 batch 0")
    capsys.readouterr()
    for args, wanted in ((["eval", str(run)], "is a failed run (loss became nan"),
                         (["train", "--resume", str(run)], "the run failed (loss became nan")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and wanted in err[0]
    with pytest.raises(GraphrecError, match="the run failed"):
        Trainer(tiny(tmp_path), run_dir=run, resume=True)


def test_mark_failed_keeps_one_line(tmp_path):
    mark_failed(tmp_path, "first\nsecond \x00")
    assert failure_reason(tmp_path) == "first\\nsecond \\x00"


def test_a_name_no_folder_can_have_leaves_no_output_folder(tmp_path):
    with pytest.raises(GraphrecError, match="cannot create the run folder"):
        claim_run_dir(str(tmp_path / "runs" / "deeper"), "n" * 300)  # past the schema: the OS refuses it
    assert listing(tmp_path) == []


def test_claims_never_share_a_name_and_publish_skips_a_taken_one(tmp_path):
    first, second = claim_run_dir(str(tmp_path), "r"), claim_run_dir(str(tmp_path), "r")
    assert first.final != second.final and first.path.name.startswith(".")
    (first.path / "last.pt").write_text("a run")
    second.final = first.final  # as if the name were taken meanwhile
    published = [first.publish(), second.publish()]
    assert published[0] != published[1] and all(p.is_dir() for p in published)
    assert listing(tmp_path) == sorted(p.name for p in published)


def test_the_run_lock_is_exclusive(tmp_path):
    lock = RunLock(tmp_path)
    with pytest.raises(GraphrecError, match="is in use by another graphrec process"):
        RunLock(tmp_path)
    lock.release()
    RunLock(tmp_path).release()


def test_the_run_lock_waits_for_a_holder_that_is_exiting(tmp_path):
    """A process stopped a moment ago may still hold the folder: with `wait` the lock is taken once it lets go, and
    refused as before when it does not let go in time."""
    holder = RunLock(tmp_path)
    threading.Timer(0.5, holder.release).start()
    RunLock(tmp_path, wait=5).release()
    holder = RunLock(tmp_path)
    with pytest.raises(GraphrecError, match="is in use by another graphrec process"):
        RunLock(tmp_path, wait=0.3)
    holder.release()


def test_a_second_resume_of_a_run_in_use_exits_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("graphrec.runs.RESUME_GRACE_S", 0.2)  # the holder below never lets go
    trainer = Trainer(tiny(tmp_path, epochs=1))
    trainer.fit()
    before = {p.name: p.stat().st_mtime_ns for p in trainer.run_dir.iterdir()}
    capsys.readouterr()
    with RunLock(trainer.run_dir):  # another process training into it
        assert main(["train", "--resume", str(trainer.run_dir), "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another graphrec process" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in trainer.run_dir.iterdir()} == before


def _stop_at_step(trainer: Trainer, step: int) -> StopRequest:
    stop, real_step, steps = StopRequest(announce=False), trainer.optimizer.step, []

    def counting_step(*args, **kwargs):
        steps.append(1)
        if len(steps) == step:
            stop.request(signal.SIGINT)
        return real_step(*args, **kwargs)
    trainer.optimizer.step = counting_step
    return stop


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_a_cosine_run_resumed_with_more_epochs_equals_an_uninterrupted_one(tmp_path):
    cosine = {"train": {"epochs": 4, "patience": 0, "lr_schedule": "cosine", "lr_min": 0.0004}}
    whole = Trainer(load_config(write_config(tmp_path / "a", tmp_path / "a" / "runs", cosine)))
    expected, records = results(whole.fit()), history(whole.run_dir)
    short = load_config(write_config(tmp_path / "b", tmp_path / "b" / "runs",
                                     {"train": {**cosine["train"], "epochs": 2}}))
    trainer = Trainer(short)
    with pytest.raises(TrainingStopped):
        trainer.fit(_stop_at_step(trainer, 5))  # inside epoch 0: no rate of the 2-epoch schedule was used yet
    longer = load_config(trainer.run_dir / "config.yaml", ["train.epochs=4"])
    resumed = Trainer(longer, run_dir=trainer.run_dir, resume=True)
    assert results(resumed.fit()) == expected
    assert history(trainer.run_dir) == records


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_a_cosine_run_past_its_first_epoch_refuses_a_new_length(tmp_path):
    cfg = load_config(write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 2, "lr_schedule": "cosine"}}))
    trainer = Trainer(cfg)
    with pytest.raises(TrainingStopped):
        trainer.fit(_stop_at_step(trainer, trainer._epoch_batches() + 2))
    longer = load_config(trainer.run_dir / "config.yaml", ["train.epochs=4"])
    with pytest.raises(GraphrecError, match=r"--resume with train.epochs 4 \(the run has 2\).*could not equal"):
        Trainer(longer, run_dir=trainer.run_dir, resume=True)
    assert not is_failed(trainer.run_dir)  # a refused resume is not a failed run


def test_leave_one_out_orders_tied_timestamps_by_the_seed():
    # user 0: five events at one time; user 1: the latest event is unique and always the test
    data = Interactions(np.array([0] * 5 + [1] * 3), np.arange(8), None, np.array([1.0] * 5 + [1.0, 1.0, 2.0]))
    tests = [leave_one_out(data, seed)[2] for seed in range(20)]
    picked = {int(t.item[t.user == 0][0]) for t in tests}
    assert len(picked) > 1  # not always the last in file order
    assert all(int(t.item[t.user == 1][0]) == 7 for t in tests)
    again = leave_one_out(data, 3)[2]
    assert again.item.tolist() == tests[3].item.tolist()
