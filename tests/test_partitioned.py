"""train.distributed: partitioned (gloo, processes spawned here, 1 thread each) against single-process LightGCN:
the propagation's forward and embedding gradient, and the losses and metrics of a short training run."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from graphrec.checkpoint import load_checkpoint
from graphrec.config import load_config
from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.graph.partitioned import PartitionedGraph, balanced_owner, label_propagation_owner
from graphrec.graph.propagate import weighted_propagation
from graphrec.models.base import normal_rows
from graphrec.trainer import Trainer

from train_helpers import history, results, stop_mid_epoch_and_resume, write_config

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WEIGHTS = [0.25, 0.25, 0.25, 0.25]
# ~6,700 training events; an odd batch (255) splits unevenly over the ranks, 6 batches per epoch, 3 epochs with
# validation after each, then the test evaluation at the selected checkpoint.
OVERRIDES = {"train": {"batch_size": 255, "max_batches": 6, "epochs": 3, "patience": 0}}


def _spawn(world_size: int, worker, *args) -> None:
    """Run worker(rank, world_size, *args) in `world_size` forked processes (no re-import: fast) joined by gloo."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_join, args=(world_size, port, worker, args), nprocs=world_size, start_method="fork")


def _join(rank: int, world_size: int, port: int, worker, args) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    worker(rank, world_size, *args)


def _tiny_graph():
    """A random bipartite graph (40 users, 30 items, ~240 edges; some nodes without edges), seeded."""
    gen = torch.Generator().manual_seed(3)
    pairs = torch.unique(torch.randint(0, 38, (260,), generator=gen) * 30 + torch.randint(0, 29, (260,), generator=gen))
    return pairs // 30, pairs % 30, 40, 30


def _propagation_worker(rank: int, world_size: int, partitioner: str) -> None:
    dist.init_process_group("gloo")
    users, items, num_users, num_items = _tiny_graph()
    table = torch.randn(num_users + num_items, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    probe = torch.randn(num_users + num_items, 8, generator=torch.Generator().manual_seed(2))
    # each rank asks for its own random rows, repeats and other ranks' rows included
    rows = [torch.randint(0, num_users + num_items, (25,), generator=torch.Generator().manual_seed(10 + r))
            for r in range(world_size)]

    full = NormalizedAdjacency(users, items, num_users, num_items)
    want = weighted_propagation(full, table, WEIGHTS)
    want_grad, = torch.autograd.grad(sum((want[r] * probe[r]).sum() for r in rows), table)

    part = PartitionedGraph(users, items, num_users, num_items, rank, world_size, partitioner)
    assert part.nnz == int((part.owner[full.row] == rank).sum())  # exactly its rows of the adjacency
    local = part.propagate(table[part.owned], WEIGHTS)
    fetched = part.fetch(local, rows[rank])
    got_grad, = torch.autograd.grad((fetched * probe[rows[rank]]).sum(), table)
    torch.testing.assert_close(part.gather(local.detach()), want.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(fetched.detach(), want.detach()[rows[rank]], rtol=0, atol=1e-6)
    owned = part.owned  # gradients reach this rank's rows only, and there equal the whole graph's
    torch.testing.assert_close(got_grad[owned], want_grad[owned], rtol=0, atol=1e-6)
    assert not got_grad[part.owner != rank].any()
    # evaluation: the users this rank holds, scored against every item from the items' rows alone
    mine = part.owned[part.owned < num_users]
    want_scores = want.detach()[mine] @ want.detach()[num_users:].t()
    torch.testing.assert_close(part.scorer(local.detach())(mine), want_scores, rtol=0, atol=1e-6)
    torch.testing.assert_close(part.gather(local.detach(), items_only=True), want.detach()[num_users:], rtol=0,
                               atol=1e-6)
    dist.destroy_process_group()


@pytest.mark.parametrize("world_size,partitioner", [(2, "ranges"), (4, "ranges"), (2, "label_propagation"),
                                                    (4, "label_propagation")])
def test_propagation_forward_and_gradient_equal_single_process(world_size, partitioner):
    _spawn(world_size, _propagation_worker, partitioner)


def test_label_propagation_finds_the_communities_that_id_ranges_cut():
    """Two disjoint 6 x 6 bicliques on interleaved ids (community = id parity): id ranges cut every edge of one
    user side; label propagation ends with no edge between ranks and equal loads."""
    users, items = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    users, items = users.flatten(), items.flatten()
    same = users % 2 == items % 2
    users, items = users[same], items[same] + 6
    rows, cols = torch.cat([users, items]), torch.cat([items, users])
    degree = torch.bincount(rows, minlength=12)
    start = balanced_owner(degree, 6, 2)
    assert (start[rows] != start[cols]).any()
    owner = label_propagation_owner(rows, cols, degree, start, 2)
    assert not (owner[rows] != owner[cols]).any()
    assert torch.bincount(owner, weights=degree.double(), minlength=2).tolist() == [18.0, 18.0]


def test_balanced_owner_splits_users_and_items_by_edges():
    degree = torch.tensor([5, 1, 1, 1, 1, 1, 9, 2, 2, 2])  # 6 users (10 edges), 4 items (15 edges)
    assert balanced_owner(degree, 6, 2).tolist() == [0, 1, 1, 1, 1, 1, 0, 1, 1, 1]
    # a heavy first node cannot starve later ranks: every rank keeps at least one user and one item
    assert balanced_owner(degree, 6, 4).tolist() == [0, 1, 2, 2, 3, 3, 0, 1, 2, 3]


def _train_worker(rank: int, world_size: int, config, out) -> None:
    trainer = Trainer(load_config(config))
    metrics = trainer.fit()
    # each rank keeps only its rows of the ego table (and so of its Adam moments)
    assert trainer.model.embedding.shape[0] == len(trainer.model.partition.owned) < trainer.model.partition.num_nodes
    if rank == 0:
        out.write_text(json.dumps(results(metrics)))


def _resume_worker(rank: int, world_size: int, config, out) -> None:
    metrics, run_dir, stopped_at, _ = stop_mid_epoch_and_resume(load_config(config), epoch=1, batch=3)
    assert stopped_at == (1, 3)
    if rank == 0:
        out.write_text(json.dumps(metrics))


@pytest.mark.parametrize("world_size", [2, 4])
def test_training_equals_single_process(world_size, tmp_path):
    """Per-epoch losses, validation metrics, selected epoch and test metrics of partitioned LightGCN equal the
    single-process run's (the updates differ only in float32 summation order)."""
    single = Trainer(load_config(write_config(tmp_path / "single", tmp_path / "single" / "runs",
                                              {**OVERRIDES, "name": "single"})))
    want = results(single.fit())
    folder = tmp_path / "parted"
    config = write_config(folder, folder / "runs", {**OVERRIDES, "name": "parted",
                                                     "train": {**OVERRIDES["train"], "distributed": "partitioned"}})
    _spawn(world_size, _train_worker, config, tmp_path / "metrics.json")
    got = json.loads((tmp_path / "metrics.json").read_text())
    (run,) = (folder / "runs").iterdir()
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == (pytest.approx(value, abs=1e-5) if isinstance(value, float) else value), key
    for a, b in zip(history(run), history(single.run_dir), strict=True):
        for key, value in b.items():
            assert a[key] == (pytest.approx(value, abs=1e-5) if isinstance(value, float) else value), key
    for name in ("best.pt", "last.pt"):  # checkpoints hold the whole table and moments, gathered from the ranks
        got, want = load_checkpoint(run / name), load_checkpoint(single.run_dir / name)
        torch.testing.assert_close(got["model"]["embedding"], want["model"]["embedding"], rtol=0, atol=1e-5)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(got["optimizer"]["main"]["state"][0][key],
                                       want["optimizer"]["main"]["state"][0][key], rtol=0, atol=1e-5)


def test_partitioned_run_stopped_mid_epoch_resumes_exactly(tmp_path):
    """2 ranks stop in batch 3 of epoch 1 (last.pt: the whole table, gathered), resume from it (each rank takes
    its rows back) and end with the metrics of the uninterrupted partitioned run."""
    outs = []
    for name, worker in (("straight", _train_worker), ("resumed", _resume_worker)):
        folder = tmp_path / name
        config = write_config(folder, folder / "runs", {**OVERRIDES, "name": name,
                                                         "train": {**OVERRIDES["train"], "distributed": "partitioned"}})
        _spawn(2, worker, config, folder / "metrics.json")
        outs.append(json.loads((folder / "metrics.json").read_text()))
    assert outs[1] == outs[0]


@pytest.mark.parametrize("dim", [3, 64])
def test_a_ranks_rows_of_the_initial_table_equal_the_whole_draw(dim):
    """Each rank draws the table in chunks and keeps its rows: the values of one whole seeded draw."""
    keep = torch.tensor([0, 5, 31, 32, 33, 500, 999])
    torch.manual_seed(7)
    whole, after_whole = normal_rows(1000, dim, 0.1), torch.rand(4)
    torch.manual_seed(7)
    torch.testing.assert_close(normal_rows(1000, dim, 0.1, keep, chunk_rows=32), whole[keep], rtol=0, atol=0)
    assert torch.equal(torch.rand(4), after_whole)  # the generator moved on exactly as far
