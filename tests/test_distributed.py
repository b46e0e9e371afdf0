"""Data-parallel training under torchrun (2 CPU ranks, gloo) against a single process, and DDP stop/resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from graphrec import distributed
from graphrec.checkpoint import load_checkpoint
from graphrec.config import load_config
from graphrec.data.sampling import epoch_batches
from graphrec.distributed import DistContext
from graphrec.trainer import Trainer, ddp_loss_scale

from train_helpers import child_env, history, results, wait_for_epochs, write_config

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

# batch_size 255 is odd, so every global batch splits 128 / 127 between the two ranks (uneven shares);
# early stopping (patience 3) must end both runs at the same epoch.
DDP_OVERRIDES = {"name": "ddp", "train": {"batch_size": 255}}


def _torchrun(args: list[str], cwd, new_session: bool = False) -> subprocess.Popen:
    # --standalone: the rendezvous store binds a free port itself, so no other process can take it between a
    # port probe and torchrun's bind
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "graphrec", "train", *args]
    return subprocess.Popen(command, cwd=cwd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The same config trained in one process (in-process, 1 thread): (metrics, epoch records)."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("single")
    trainer = Trainer(load_config(write_config(folder, folder / "runs", DDP_OVERRIDES)))
    metrics = trainer.fit()
    torch.set_num_threads(threads)
    return results(metrics), history(trainer.run_dir)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """An uninterrupted 2-rank torchrun run: (run folder, output folder, stderr)."""
    folder = tmp_path_factory.mktemp("ddp")
    proc = _torchrun([str(write_config(folder, folder / "runs", DDP_OVERRIDES))], folder)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    runs = [p for p in (folder / "runs").iterdir()]
    assert len(runs) == 1, f"expected one run folder, got {runs}"
    return runs[0], folder / "runs", out, err


def test_ddp_matches_single_process(ddp, single):
    """2 ranks x 1 thread vs 1 process x 1 thread, same seed and config.

    Both runs see the same global batches (same seeded permutation and negatives; each rank takes every second
    event) and, with each rank's loss scaled by its share (ddp_loss_scale), DDP's averaged gradient is the
    gradient of the global batch mean: the same update up to float32 summation order (per-rank partial sums,
    then the all_reduce). Those rounding differences (~1e-7 relative per step) stay far below what moves a
    top-K list, so the metrics agree to float64 rounding in practice (measured: <= 1e-16; losses <= 1e-7
    relative). The tolerance, 2e-3, still admits one swapped item pair at the top-K cut for one user of the
    ~660 test users (a change of at most 1/660 = 1.5e-3 in any metric), so a near-tie cannot make the test flaky,
    while a real error in the gradient scaling or the sharded evaluation (without the scaling: up to 3e-4 after
    8 epochs and growing; a wrong shard: a different user count) is still caught by the exact checks below.
    """
    run_dir = ddp[0]
    got = results(json.loads((run_dir / "metrics.json").read_text()))
    want = single[0]
    assert set(got) == set(want)
    for key in ("best_epoch", "epochs_run", "valid/users", "test/users", "protocol"):
        assert got[key] == want[key], key  # identical early stopping and evaluation sharding
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=2e-3), key
    ddp_records, single_records = history(run_dir), single[1]
    assert len(ddp_records) == len(single_records)
    for a, b in zip(ddp_records, single_records):
        for key in ("train/loss", "train/bpr", "train/l2"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (a["epoch"], key)


def test_only_rank0_writes(ddp):
    run_dir, output_dir, out, err = ddp
    assert [p.name for p in output_dir.iterdir()] == [run_dir.name]
    assert err.count("run folder:") == 1 and out.count("saved to") == 1
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["best.pt", "config.yaml", "last.pt", "log.jsonl", "metrics.json", "run.json", "shift.json", "warnings.json"])
    assert load_checkpoint(run_dir / "last.pt")["world_size"] == 2


def test_ddp_sigterm_then_resume_is_bitwise_identical(ddp, tmp_path):
    """SIGTERM to torchrun reaches both ranks; they agree on the batch to stop at, rank 0 saves last.pt; a
    torchrun --resume with the same world size ends with the same metrics (==) as the uninterrupted DDP run."""
    cfg = write_config(tmp_path, tmp_path / "runs", DDP_OVERRIDES)
    proc = _torchrun([str(cfg)], tmp_path)
    run_dir = wait_for_epochs(tmp_path / "runs", 2, proc, timeout=300)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert "--resume" in err and "torchrun --nproc_per_node=2" in err
    assert not (run_dir / "metrics.json").exists()
    assert load_checkpoint(run_dir / "last.pt")["state"]["epoch"] >= 2

    proc = _torchrun(["--resume", str(run_dir)], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert results(json.loads((run_dir / "metrics.json").read_text())) == \
        results(json.loads((ddp[0] / "metrics.json").read_text()))
    assert history(run_dir) == history(ddp[0])


def test_ctrl_c_under_torchrun_stops_cleanly(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the launcher and both ranks, and the launcher forwards another one:
    each rank must take the pair as one interrupt (stop after the batch and save), not as a second Ctrl-C."""
    cfg = write_config(tmp_path, tmp_path / "runs", DDP_OVERRIDES)
    proc = _torchrun([str(cfg)], tmp_path, new_session=True)
    run_dir = wait_for_epochs(tmp_path / "runs", 2, proc, timeout=300)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert "second interrupt" not in err
    assert "last.pt saved; resume with: torchrun --nproc_per_node=2" in err
    state = load_checkpoint(run_dir / "last.pt")["state"]
    assert state["epoch"] >= 2 and len(state["epoch_sums"]) in (0, 2)


def test_loss_scale_makes_averaged_gradients_the_global_batch_gradient(tmp_path):
    """What DDP computes, emulated in one process on an uneven 128/127 split of a 255 batch."""
    trainer = Trainer(load_config(write_config(tmp_path, tmp_path / "runs", DDP_OVERRIDES)))
    model, params = trainer.model, list(trainer.model.parameters())

    def grad_of(loss):
        return torch.autograd.grad(loss, params)[0]

    def shares(rank, world):
        gen = torch.Generator().manual_seed(0)
        return next(epoch_batches(trainer.train_users, trainer.train_items, trainer.sampler, 255, gen, rank, world))

    full = grad_of(model.loss(shares(0, 1))["loss"])
    scaled = sum(grad_of(model.loss(shares(r, 2))["loss"] * ddp_loss_scale(len(shares(r, 2)), 255, 2))
                 for r in range(2)) / 2
    plain = sum(grad_of(model.loss(shares(r, 2))["loss"]) for r in range(2)) / 2
    assert torch.allclose(scaled, full, rtol=1e-5, atol=1e-9)
    assert not torch.allclose(plain, full, rtol=1e-5, atol=1e-9)  # plain averaging weights the 127 share more


def test_last_global_batch_smaller_than_world_is_skipped(tmp_path):
    trainer = Trainer(load_config(write_config(tmp_path, tmp_path / "runs", DDP_OVERRIDES)))
    events = len(trainer.train_users)
    trainer.cfg.train.batch_size = events - 1  # two global batches, the last holding a single event
    assert trainer._epoch_batches() == 2
    trainer.dist = DistContext(rank=0, world_size=2)
    assert trainer._epoch_batches() == 1
    trainer.cfg.train.batch_size = events - 2  # the last batch holds 2 events: one per rank, kept
    assert trainer._epoch_batches() == 2


def test_ranks_closing_together_wait_for_each_other_before_leaving(monkeypatch):
    """A gloo rank that destroys its process group while a peer still talks to it aborts the peer ('terminate called
    without an active exception', seen in these tests under load): closing together is a barrier, then the teardown;
    a rank leaving alone (an error on one rank) does not wait for peers that may never come. gloo's barrier can
    return on one rank before its last message has left, so a barrier through the rendezvous store follows it."""
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: "store")
    monkeypatch.setattr(distributed, "store_barrier", lambda store, world, prefix: calls.append((store, world)))
    DistContext(rank=1, world_size=2).close(together=True)
    assert calls == ["barrier", ("store", 2), "destroy"]
    calls.clear()
    DistContext(rank=1, world_size=2).close()
    assert calls == ["destroy"]
