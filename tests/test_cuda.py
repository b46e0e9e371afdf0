"""CPU/CUDA agreement of every hot path; runs only where CUDA is present."""
import numpy as np
import pytest
import torch

from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.data.sampling import NegativeSampler
from graphrec.models.base import dot_scorer
from graphrec.evaluation import Evaluator
from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.graph.propagate import weighted_propagation

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def dataset():
    cfg = build_config({"data": {"synthetic": {"num_users": 300, "num_items": 200}}, "split": {"method": "random"}})
    return load_dataset(cfg)


def test_propagation_agrees(dataset):
    adj_cpu = NormalizedAdjacency.from_numpy(dataset.train.user, dataset.train.item, dataset.num_users,
                                             dataset.num_items)
    adj_gpu = adj_cpu.to("cuda")
    x = torch.randn(adj_cpu.num_nodes, 16, requires_grad=True)
    xg = x.detach().cuda().requires_grad_()
    rows = torch.tensor([0, 5, 5, 310, 499])
    for r in (None, rows):
        out = weighted_propagation(adj_cpu, x, [0.25] * 4, r)
        outg = weighted_propagation(adj_gpu, xg, [0.25] * 4, None if r is None else r.cuda())
        assert torch.allclose(out, outg.cpu(), atol=1e-5)
        (g,) = torch.autograd.grad(out.sum(), x)
        (gg,) = torch.autograd.grad(outg.sum(), xg)
        assert torch.allclose(g, gg.cpu(), atol=1e-5)


def test_sampler_on_cuda_never_returns_positive(dataset):
    sampler = NegativeSampler(dataset.train, dataset.num_users, dataset.num_items, "cuda")
    users = torch.from_numpy(dataset.train.user).cuda()
    neg = sampler.sample(users, torch.Generator(device="cuda").manual_seed(0))
    assert not sampler.is_positive(users, neg).any()


def test_evaluation_agrees(dataset):
    torch.manual_seed(0)
    user_emb, item_emb = torch.randn(dataset.num_users, 8), torch.randn(dataset.num_items, 8)
    cpu = Evaluator(dataset, "test", [10, 20], ["recall", "ndcg", "mrr"], 2 ** 20).evaluate(dot_scorer(user_emb, item_emb))
    gpu = Evaluator(dataset, "test", [10, 20], ["recall", "ndcg", "mrr"], 2 ** 20, "cuda").evaluate(
        dot_scorer(user_emb.cuda(), item_emb.cuda()))
    for key, value in cpu.sums.items():
        assert np.isclose(value, gpu.sums[key], atol=1e-6)
