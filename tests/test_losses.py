"""bpr_loss, l2_reg and Recommender.loss against values computed by hand."""
from math import exp, log

import numpy as np
import pytest
import torch

from graphrec.data.dataset import Dataset, Interactions
from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.losses import bpr_loss, l2_reg, softplus_of_dots
from graphrec.batches import PairBatch
from graphrec.models import get_model_class
from graphrec.models.base import ModelContext

torch.set_num_threads(1)


def test_bpr_loss_hand_values():
    pos = torch.tensor([2.0, 0.0, -1.0])
    neg = torch.tensor([1.0, 0.5, -1.0])
    # softplus(neg - pos) = log(1 + exp(neg - pos)), averaged over the batch (not summed, not divided twice)
    expected = (log(1 + exp(-1.0)) + log(1 + exp(0.5)) + log(2.0)) / 3
    assert float(bpr_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)
    # large margins stay finite (softplus, not log(sigmoid))
    assert float(bpr_loss(torch.tensor([0.0]), torch.tensor([200.0]))) == pytest.approx(200.0)
    assert float(bpr_loss(torch.tensor([200.0]), torch.tensor([0.0]))) == pytest.approx(0.0, abs=1e-30)


def test_l2_reg_hand_values():
    a = torch.tensor([[1.0, 2.0], [3.0, 0.0]])   # squares sum to 14
    b = torch.tensor([[0.0, 1.0], [1.0, 1.0]])   # squares sum to 3
    c = torch.tensor([[-2.0, 0.5], [0.0, 0.0]])  # squares sum to 4.25
    assert float(l2_reg(2, a, b)) == pytest.approx(0.5 * (14 + 3) / 2)
    assert float(l2_reg(2, a, b, c)) == pytest.approx(0.5 * (14 + 3 + 4.25) / 2)
    assert float(l2_reg(4, a)) == pytest.approx(0.5 * 14 / 4)


def toy_dataset() -> Dataset:
    train = Interactions(np.array([0, 0, 1]), np.array([0, 1, 2]))
    return Dataset("toy", 2, 3, train, None, {"test": Interactions(np.array([1]), np.array([0]))},
                   np.arange(2), np.arange(3))


def pair_loss(model, users, pos, neg, reg):
    """The model's named losses of one (users, pos, neg) batch with L2 weight `reg`."""
    model.reg = reg
    return model.loss(PairBatch(users, pos, neg))


def make_model(name: str, **model_keys):
    ds = toy_dataset()
    cls = get_model_class(name)
    graph = NormalizedAdjacency.from_numpy(ds.train.user, ds.train.item, ds.num_users, ds.num_items)
    return cls(cls.config_class(name=name, embedding_dim=2, **model_keys), ModelContext(ds, torch.device("cpu"), _graph=graph))


# ego embeddings: rows u0, u1, i0, i1, i2
EGO = [[1.0, 0.0], [0.5, -1.0], [2.0, 1.0], [0.0, 1.0], [-1.0, 0.5]]


def test_mf_loss_equals_hand_formula():
    model = make_model("mf")
    with torch.no_grad():
        model.embedding.copy_(torch.tensor(EGO))
    users, pos, neg = torch.tensor([0, 1, 0]), torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2])
    reg = 0.1
    out = {k: v.item() for k, v in pair_loss(model, users, pos, neg, reg).items()}
    # scores: u0.i0 = 2, u0.i1 = 0 | u1.i2 = -0.5 - 0.5 = -1, u1.i0 = 1 - 1 = 0 | u0.i1 = 0, u0.i2 = -1
    bpr = (log(1 + exp(0 - 2)) + log(1 + exp(0 - (-1))) + log(1 + exp(-1 - 0))) / 3
    # squared norms: u0 = 1, u1 = 1.25, i0 = 5, i1 = 1, i2 = 1.25 (each counted once per occurrence in the batch)
    users_sq, pos_sq, neg_sq = 1 + 1.25 + 1, 5 + 1.25 + 1, 1 + 5 + 1.25
    l2 = 0.5 * (users_sq + pos_sq + neg_sq) / 3
    assert out["bpr"] == pytest.approx(bpr, rel=1e-6)
    assert out["l2"] == pytest.approx(l2, rel=1e-6)
    assert out["loss"] == pytest.approx(bpr + reg * l2, rel=1e-6)
    # the gradient of the L2 term alone is reg * ego / batch per occurrence
    model.zero_grad()
    pair_loss(model, users, pos, neg, reg)["l2"].backward()
    expected_grad = torch.zeros(5, 2)
    for node in [0, 1, 0, 2 + 0, 2 + 2, 2 + 1, 2 + 1, 2 + 0, 2 + 2]:
        expected_grad[node] += torch.tensor(EGO[node]) / 3
    assert torch.allclose(model.embedding.grad, expected_grad, atol=1e-6)


def test_lightgcn_loss_uses_propagated_scores_and_ego_l2():
    model = make_model("lightgcn", num_layers=2)
    with torch.no_grad():
        model.embedding.copy_(torch.tensor(EGO))
    users, pos, neg = torch.tensor([0, 1, 0]), torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2])
    out = {k: v.item() for k, v in pair_loss(model, users, pos, neg, 0.01).items()}
    final = model.propagate().detach()
    # only the edges u0-i0, u0-i1, u1-i2: final embeddings differ from the ego ones
    assert not torch.allclose(final, torch.tensor(EGO))
    u, p, n = final[users], final[pos + 2], final[neg + 2]
    bpr = torch.nn.functional.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
    ego = torch.tensor(EGO)
    l2 = 0.5 * (ego[users].pow(2).sum() + ego[pos + 2].pow(2).sum() + ego[neg + 2].pow(2).sum()) / 3
    assert out["bpr"] == pytest.approx(float(bpr), rel=1e-6)
    assert out["l2"] == pytest.approx(float(l2), rel=1e-6)
    assert out["loss"] == pytest.approx(float(bpr + 0.01 * l2), rel=1e-6)


def test_bpr_loss_with_k_negatives_averages_every_pair():
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]])
    pairs = [1.0 - 2.0, 3.0 - 2.0, 0.0, 0.5, -1.0, 0.0]
    expected = sum(log(1 + exp(d)) for d in pairs) / 6
    assert float(bpr_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)


def test_mf_loss_with_two_negatives_per_positive():
    model = make_model("mf")
    with torch.no_grad():
        model.embedding.copy_(torch.tensor(EGO))
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([[1, 2], [0, 1]])
    out = {k: v.item() for k, v in pair_loss(model, users, pos, neg, 0.1).items()}
    # u0: pos i0 = 2, negs i1 = 0, i2 = -1 | u1: pos i2 = -1, negs i0 = 0, i1 = -1
    bpr = (log(1 + exp(0 - 2)) + log(1 + exp(-1 - 2)) + log(1 + exp(0 + 1)) + log(1 + exp(-1 + 1))) / 4
    # users u0 1 + u1 1.25, positives i0 5 + i2 1.25, negatives (1 + 1.25 + 5 + 1) / 2 (each counts 1/k)
    l2 = 0.5 * (2.25 + 6.25 + 8.25 / 2) / 2
    assert out["bpr"] == pytest.approx(bpr, rel=1e-6)
    assert out["l2"] == pytest.approx(l2, rel=1e-6)
    # k = 1 in a (batch, 1) column is the single-negative loss
    one = pair_loss(model, users, pos, neg[:, :1], 0.1)
    single = pair_loss(model, users, pos, neg[:, 0], 0.1)
    assert torch.allclose(one["loss"], single["loss"])


def test_dynamic_negatives_keep_the_hardest_candidate():
    model = make_model("mf")
    with torch.no_grad():
        model.embedding.copy_(torch.tensor(EGO))
    users, pos = torch.tensor([0, 1]), torch.tensor([0, 2])
    # scores u0: i0 2, i1 0, i2 -1 | u1: i0 0, i1 -1, i2 -1
    candidates = torch.tensor([[[2, 1]], [[1, 0]]])  # (batch 2, k 1, c 2)
    dns = pair_loss(model, users, pos, candidates, 0.1)
    picked = pair_loss(model, users, pos, torch.tensor([[1], [0]]), 0.1)  # u0 keeps i1 (0 > -1), u1 keeps i0 (0 > -1)
    for key in ("loss", "bpr", "l2"):
        assert torch.allclose(dns[key], picked[key])
    # the gradient is that of the kept candidates alone
    grads = []
    for negatives in (candidates, torch.tensor([[1], [0]])):
        model.zero_grad()
        pair_loss(model, users, pos, negatives, 0.1)["loss"].backward()
        grads.append(model.embedding.grad.clone())
    assert torch.allclose(grads[0], grads[1])


def test_softplus_of_dots_in_chunks_equals_the_direct_sum_and_its_gradient():
    """Chunks recomputed in backward change neither the value nor the gradient of sum_e softplus(s <x_l, x_r>)."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(9, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    left, right = torch.randint(0, 9, (23,), generator=gen), torch.randint(0, 9, (23,), generator=gen)
    direct = torch.nn.functional.softplus(-(table[left] * table[right]).sum(1)).sum()
    chunked = softplus_of_dots(table, left, right, -1.0, chunk=5)
    torch.testing.assert_close(chunked, direct)
    torch.testing.assert_close(torch.autograd.grad(chunked, table)[0], torch.autograd.grad(direct, table)[0])
    # by hand: one pair, <(1, 2), (3, -1)> = 1, softplus(1) = log(1 + e)
    pair = softplus_of_dots(torch.tensor([[1.0, 2.0], [3.0, -1.0]]), torch.tensor([0]), torch.tensor([1]), 1.0)
    assert float(pair) == pytest.approx(log(1 + exp(1)))
