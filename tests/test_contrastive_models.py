"""The graph contrastive models (sgl, sgcl, simgcl, xsimgcl) and `graphrec analyze views`, on small synthetic data."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from graphrec.analyze import run as analyze_views
from graphrec.config import build_config, load_config
from graphrec.data.loader import load_dataset
from graphrec.errors import GraphrecError
from graphrec.graph.propagate import propagate_layers, spmm
from graphrec.graph.views import replace_rows_with_noise
from graphrec.losses import contrast_nodes, info_nce, symmetric_contrastive
from graphrec.models import build_model
from graphrec.trainer import Trainer

from train_helpers import RESUME_CONFIG, history, merged, results, stop_mid_epoch_and_resume, write_config

SMALL = merged(RESUME_CONFIG, {"data": {"synthetic": {"num_users": 300, "num_items": 200, "mean_degree": 12}},
                               "train": {"epochs": 3, "patience": 0, "eval_every": 3, "batch_size": 128}})


def _config(tmp_path, model: dict, train: dict | None = None):
    return build_config(merged(SMALL, {"output_dir": str(tmp_path / "runs"), "model": model, "train": train or {}}))


def _model(tmp_path, model: dict, train: dict | None = None):
    cfg = _config(tmp_path, model, train)
    torch.manual_seed(0)
    return build_model(cfg, load_dataset(cfg), torch.device("cpu"))


def _batch(model, size: int = 64, candidates: int = 0, seed: int = 0):
    """A PairBatch of random training events; negatives (b,) or (b, 1, candidates)."""
    from graphrec.batches import PairBatch
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(model.graph.users), (size,), generator=gen)
    shape = (size, 1, candidates) if candidates else (size,)
    return PairBatch(model.graph.users[pick], model.graph.items[pick],
                     torch.randint(model.num_items, shape, generator=gen))


MODELS = [
    {"name": "sgl"},
    {"name": "sgl", "view": "node"},
    {"name": "sgl", "view": "random_walk"},
    {"name": "sgcl"},
    {"name": "sgcl", "mixgcf": True},
    {"name": "simgcl"},
    {"name": "xsimgcl", "mixgcf": True},
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_every_model_trains_with_a_falling_loss(model, tmp_path):
    train = {"negative_candidates": 8} if model.get("mixgcf") else {}
    trainer = Trainer(_config(tmp_path, model, train))
    metrics = trainer.fit()
    losses = [r["train/loss"] for r in history(trainer.run_dir)]
    assert losses[0] > losses[1] > losses[2], losses
    assert all(math.isfinite(r["train/ssl"]) for r in history(trainer.run_dir))
    assert metrics["test/recall@20"] > 0


def test_sgcl_with_per_epoch_views_and_mixgcf_resumes_exactly(tmp_path):
    """Views redrawn each epoch (trainer's view generator) and per-batch MixGCF mixing (the model's generator)
    replay exactly after a mid-epoch stop."""
    overrides = {"model": {"name": "sgcl", "mixgcf": True}, "train": {"negative_candidates": 4, "eval_every": 1}}
    whole = Trainer(load_config(write_config(tmp_path / "a", tmp_path / "a" / "runs", overrides, base=SMALL)))
    expected, records = results(whole.fit()), history(whole.run_dir)
    cfg = load_config(write_config(tmp_path / "b", tmp_path / "b" / "runs", overrides, base=SMALL))
    metrics, run_dir, where, _ = stop_mid_epoch_and_resume(cfg, epoch=1, batch=3)
    assert where == (1, 3)
    assert metrics == expected
    assert history(run_dir) == records


def test_sgl_views_come_from_the_epoch_generator(tmp_path):
    model = _model(tmp_path, {"name": "sgl", "view_rate": 0.3})
    model.on_epoch_start(0, torch.Generator().manual_seed(4))
    first = [view.values.clone() for view in model.views]
    assert first[0].shape != first[1].shape or not torch.equal(*first)             # two different views
    kept = len(model.views[0].users) / len(model.graph.users)
    assert 0.6 < kept < 0.8                                                          # ~70% of the edges
    model.on_epoch_start(1, torch.Generator().manual_seed(4))                        # same state: same views
    assert all(torch.equal(a, b.values) for a, b in zip(first, model.views))


def test_xsimgcl_contrastive_layer_is_the_layer_stacks_layer(tmp_path):
    """One fused noisy pass gives the same final embedding, layer l* and gradients as the layer-by-layer stack."""
    model = _model(tmp_path, {"name": "xsimgcl", "num_layers": 3, "cl_layer": 2})
    rows = torch.unique(torch.randint(model.graph.num_nodes, (80,), generator=torch.Generator().manual_seed(1)))
    grad_final, grad_layer = torch.randn(len(rows), 32), torch.randn(len(rows), 32)
    state = model.batch_gen.get_state()
    table, final, layer = model.encode(rows)
    assert table is final
    (final * grad_final + layer * grad_layer).sum().backward()
    fused_grad, model.embedding.grad = model.embedding.grad.clone(), None

    model.batch_gen.set_state(state)  # the stack draws the noise as the fused pass does: the last layer at rows
    stack = propagate_layers(model.graph, model.embedding, 2, perturb=model.noise)
    last = spmm(model.graph, stack[-1])[rows]
    last = last + model.noise(last)
    combined = sum(w * h[rows] for w, h in zip(model.layer_weights, stack)) + model.layer_weights[3] * last
    assert model.layer_weights == [0.0, 1 / 3, 1 / 3, 1 / 3]                          # SimGCL code's mean of 1..L
    assert torch.allclose(layer, stack[2][rows], atol=1e-6)
    assert torch.allclose(final, combined, atol=1e-6)
    (combined * grad_final + stack[2][rows] * grad_layer).sum().backward()
    assert torch.allclose(fused_grad, model.embedding.grad, atol=1e-5)


def test_simgcl_clean_and_noisy_passes_share_one_product(tmp_path):
    """The clean column is LightGCN's; with one layer each view is the clean embedding plus noise of norm eps."""
    model = _model(tmp_path, {"name": "simgcl", "num_layers": 1, "noise_eps": 0.3})
    rows = torch.arange(0, model.graph.num_nodes, 7)
    clean, view1, view2 = model.encode(rows)
    assert torch.allclose(clean, model.propagate(rows), atol=1e-6)
    nonzero = (clean != 0).all(1)                                                    # sign(0) = 0 adds no noise
    for view in (view1, view2):
        assert torch.allclose((view - clean)[nonzero].norm(dim=1), torch.full((int(nonzero.sum()),), 0.3), atol=1e-5)
        assert ((view - clean)[nonzero] * clean[nonzero] >= 0).all()                # in the embedding's orthant
    assert not torch.allclose(view1, view2)


@pytest.mark.parametrize("joint", [False, True])
def test_symmetric_loss_is_selectable_on_simgcl(joint, tmp_path):
    settings = {"name": "simgcl", "ssl_loss": "symmetric", "ssl_q": 0.5, "ssl_lam": 0.3, "ssl_joint": joint}
    model = _model(tmp_path, settings)
    batch = _batch(model)
    state = model.batch_gen.get_state()
    got = model.loss(batch)
    model.batch_gen.set_state(state)
    rows, _ = model.batch_rows(batch)
    _, view1, view2 = model.encode(rows)
    groups = contrast_nodes(batch.users, batch.pos, model.num_users, joint)
    at = [torch.searchsorted(rows, nodes) for nodes in groups]
    symmetric = sum(symmetric_contrastive(view1[i], view2[i], 0.2, 0.5, 0.3) for i in at)
    assert len(groups) == (1 if joint else 2)
    assert torch.allclose(got["ssl"], symmetric)
    assert not torch.allclose(got["ssl"], sum(info_nce(view1[i], view2[i], 0.2) for i in at))
    assert torch.allclose(got["loss"], got["bpr"] + model.reg * got["l2"] + 0.5 * symmetric)


def test_symmetric_loss_from_the_command_line_override(tmp_path):
    path = write_config(tmp_path, tmp_path / "runs", {"model": {"name": "simgcl"}})
    assert load_config(path, ["model.ssl_loss=symmetric"]).model["ssl_loss"] == "symmetric"
    with pytest.raises(GraphrecError, match="did you mean 'symmetric'"):
        load_config(path, ["model.ssl_loss=symetric"])


def test_mixgcf_negative_is_a_mix_of_the_positive_and_kept_candidates(tmp_path):
    """The synthesized negative pools, per layer, alpha * positive + (1 - alpha) * one of the row's candidates;
    the negatives reported for L2 are those candidates, one per layer."""
    model = _model(tmp_path, {"name": "sgcl", "mixgcf": True, "mixgcf_dropout": 0.0}, {"negative_candidates": 5})
    batch = _batch(model, size=16, candidates=5)
    rows, index = model.batch_rows(batch)
    table = model.rec_table(rows)                                                    # (n, L+1, d)
    assert table.shape == (len(rows), 3, 32)
    assert torch.allclose(table.mean(1), model.propagate(rows), atol=1e-6)          # no dropout: LightGCN's layers
    u, p, n, negatives = model.pair_embeddings(batch, table, index)
    assert negatives.shape == (16, 3)
    assert all(set(negatives[b].tolist()) <= set(batch.neg[b, 0].tolist()) for b in range(16))
    layers = table.detach()
    kept = layers[torch.searchsorted(rows, negatives + model.num_users), torch.arange(3)]   # (b, L+1, d)
    pos = layers[index.pos]
    assert not torch.allclose(n, model.pair_embeddings(batch, table, index)[2])     # fresh alphas: another mix
    lo, hi = torch.minimum(pos, kept).mean(1), torch.maximum(pos, kept).mean(1)
    assert ((n >= lo - 1e-6) & (n <= hi + 1e-6)).all()                               # inside the per-entry segment
    with pytest.raises(GraphrecError, match="train.negative_candidates > 1"):
        _model(tmp_path, {"name": "sgcl", "mixgcf": True})


def test_analyze_views_without_dropout_has_no_noisy_view(tmp_path, capsys):
    """With view_rate 0 each view is the clean graph: every cosine is 1, no user is noisy, and the clean group's
    test metrics are the run's."""
    trainer = Trainer(_config(tmp_path, {"name": "sgl", "view_rate": 0.0}, {"epochs": 1, "eval_every": 1}))
    metrics = trainer.fit()
    plot = tmp_path / "views.png" if importlib.util.find_spec("matplotlib") else None  # the plot extra is optional
    assert analyze_views(argparse.Namespace(run=str(trainer.run_dir), plot=plot and str(plot), out=None,
                                            checkpoint="best.pt")) == 0
    report = json.loads((trainer.run_dir / "views.json").read_text())
    assert report["cosine"]["all"]["share_noisy"] == 0.0
    assert report["cosine"]["all"]["quantiles"]["0.05"] == pytest.approx(1.0, abs=1e-5)
    assert report["cosine"]["users"]["views"] + report["cosine"]["items"]["views"] == report["cosine"]["all"]["views"]
    test = report["test"]["test"]
    assert test["noisy"] == {"users": 0}
    assert test["clean"]["users"] == metrics["test/users"]
    assert test["clean"]["recall@20"] == pytest.approx(metrics["test/recall@20"])
    assert test["bottom"]["users"] + test["rest"]["users"] == metrics["test/users"]
    dataset = load_dataset(trainer.cfg)
    degree = dataset.matrix(dataset.train).sum(1).A1[np.unique(dataset.tests["test"].user)]  # each test user's
    assert test["clean"]["mean_degree"] == pytest.approx(degree[degree > 0].mean())              # distinct train items
    rho = report["users_cosine_degree_spearman"]          # cosines are 1 up to roundoff here, so rho ranks roundoff
    assert rho is None or -1.0 <= rho <= 1.0              # (None if it is exactly constant); values: next test
    assert plot is None or plot.stat().st_size > 0
    assert "noisy - (0 users) vs clean" in capsys.readouterr().out  # an empty group has no recall to print


def test_spearman_matches_the_hand_computed_rank_correlation():
    """Ranks (1,2,3,4) against (1,2,4,3): 1 - 6 * 2 / (4 * 15) = 0.8; a tie takes the mean rank, (1.5,1.5,3,4):
    4.5 / sqrt(5 * 4.5) = 0.9487; reversed order -1; one value or a constant one gives None."""
    from graphrec.analyze import spearman
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 40, 30])) == pytest.approx(0.8)
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([5.0, 5, 6, 7])) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0]), torch.tensor([2.0])) is None
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([4.0, 4, 4])) is None


def test_layerwise_propagation_over_one_repeated_graph_is_the_fused_one(tmp_path):
    """SGL-RW's per-layer propagation reduces to LightGCN's when every layer gets the same adjacency."""
    from graphrec.graph.propagate import layerwise_propagation, weighted_propagation
    model = _model(tmp_path, {"name": "sgl", "view": "random_walk", "num_layers": 3})
    rows = torch.tensor([0, 5, 301, 350])
    weights = [0.1, 0.2, 0.3, 0.4]
    got = layerwise_propagation([model.graph] * 3, model.embedding, weights, rows)
    assert torch.allclose(got, weighted_propagation(model.graph, model.embedding, weights, rows), atol=1e-6)
    with pytest.raises(ValueError, match="2 adjacencies for 3 layers"):
        layerwise_propagation([model.graph] * 2, model.embedding, weights)


def test_ssl_noise_share_replaces_that_share_of_second_views_with_noise(tmp_path):
    """model.ssl_noise_share: the loss contrasts view 1 with view 2 where floor(share * n) rows are N(0, 1) noise."""
    model = _model(tmp_path, {"name": "sgcl", "ssl_loss": "infonce", "ssl_noise_share": 0.4})
    model.on_epoch_start(0, torch.Generator().manual_seed(0))
    batch = _batch(model)
    state = model.batch_gen.get_state()
    got = model.loss(batch)["ssl"]
    rows, _ = model.batch_rows(batch)
    _, view1, view2 = model.encode(rows)
    (nodes,) = contrast_nodes(batch.users, batch.pos, model.num_users, True)
    at = torch.searchsorted(rows, nodes)
    model.batch_gen.set_state(state)                      # SGL's views draw nothing per batch: the noise comes next
    noisy = replace_rows_with_noise(view2[at], 0.4, model.batch_gen)
    assert int((noisy != view2[at]).any(1).sum()) == int(0.4 * len(at))
    assert torch.allclose(got, info_nce(view1[at], noisy, 0.2))
    assert not torch.allclose(got, info_nce(view1[at], view2[at], 0.2))
