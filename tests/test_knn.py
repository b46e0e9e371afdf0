"""Item-item kNN graph: known neighbours on a hand-made matrix, a dense reference, and the on-disk cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphrec.errors import GraphrecError
from graphrec.graph import knn
from graphrec.graph.knn import cached_knn_graph, knn_graph


def unit_vectors(degrees: list[float]) -> torch.Tensor:
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(rad), torch.sin(rad)], dim=1).float()


# angles 0, 10, 30 | 90, 100, 130: with k=1 the nearest others are 0-1, 1-0, 2-1, 3-4, 4-3, 5-4
ANGLES = [0.0, 10.0, 30.0, 90.0, 100.0, 130.0]


def test_binary_knn_of_hand_made_features():
    graph = knn_graph(unit_vectors(ANGLES) * torch.tensor([[1.0], [3.0], [0.5], [2.0], [1.0], [7.0]]), k=1,
                      chunk_rows=4)
    assert graph.layout == torch.sparse_csr
    half = 1 / math.sqrt(2)  # edges 0-1, 1-2, 3-4, 4-5; degrees 1, 2, 1, 1, 2, 1
    expected = torch.zeros(6, 6)
    for a, b in [(0, 1), (1, 2), (3, 4), (4, 5)]:
        expected[a, b] = expected[b, a] = half
    torch.testing.assert_close(graph.to_dense(), expected)


def test_weighted_knn_keeps_the_cosine():
    graph = knn_graph(unit_vectors(ANGLES), k=1, weighted=True).to_dense()
    c10, c20 = math.cos(math.radians(10)), math.cos(math.radians(20))
    assert graph[0, 1].item() == pytest.approx(c10 / math.sqrt(c10 * (c10 + c20)), rel=1e-5)
    assert graph[1, 2].item() == pytest.approx(c20 / math.sqrt((c10 + c20) * c20), rel=1e-5)
    assert graph[0, 2].item() == 0.0


def test_an_identical_item_is_a_neighbour_but_never_the_item_itself():
    graph = knn_graph(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), k=1).to_dense()
    assert torch.diagonal(graph).abs().sum() == 0
    assert graph[0, 1] > 0 and graph[1, 0] > 0


def test_tied_items_share_the_neighbour_roles_whatever_the_block_layout():
    """60 items with one feature row, k = 3: every other item ties at cosine 1. Without a tie-break the lowest
    indices of a block were everyone's neighbours (in-degree 59); the pair-wise tie-break spreads the choice and is
    the same for any chunk_rows."""
    features = torch.zeros(60, 4)
    features[:, 0] = 1.0
    graphs = [knn_graph(features, k=3, chunk_rows=chunk).to_dense() for chunk in (7, 16, 4096)]
    for graph in graphs[1:]:
        torch.testing.assert_close(graph, graphs[0])
    degree = (graphs[0] > 0).sum(0)
    assert degree.min() >= 3 and degree.max() <= 10, degree


def dense_reference(features: np.ndarray, k: int, weighted: bool) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    top = np.argsort(-cos, axis=1)[:, :k]
    sim = np.zeros_like(cos)
    rows = np.repeat(np.arange(len(cos)), k)
    sim[rows, top.ravel()] = np.maximum(cos[rows, top.ravel()], 0) if weighted else 1.0
    sim = np.maximum(sim, sim.T)
    inv_sqrt = np.where(sim.sum(1) > 0, sim.sum(1), np.inf) ** -0.5
    return inv_sqrt[:, None] * sim * inv_sqrt[None, :]


@pytest.mark.parametrize("weighted", [False, True])
def test_equals_a_dense_reference_on_random_data(weighted):
    features = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    graph = knn_graph(torch.from_numpy(features), k=5, chunk_rows=7, weighted=weighted)
    np.testing.assert_allclose(graph.to_dense().numpy(), dense_reference(features, 5, weighted), atol=1e-6)
    torch.testing.assert_close(graph.to_dense(), graph.to_dense().T)


def test_k_is_capped_at_the_other_items_and_must_be_positive():
    graph = knn_graph(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), k=10).to_dense()
    torch.testing.assert_close(graph, (torch.ones(4, 4) - torch.eye(4)) / 3)
    with pytest.raises(GraphrecError, match="model.knn_k is 0"):
        knn_graph(torch.randn(4, 3), k=0)


def test_cache_is_reused_for_the_same_features_and_k_only(tmp_path, monkeypatch):
    features = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    first = cached_knn_graph(features, 3, tmp_path)
    assert len(list(tmp_path.glob("knn-*-k3-binary-tiebreak.pt"))) == 1
    real = knn.knn_graph
    built = []
    monkeypatch.setattr(knn, "knn_graph", lambda *a, **kw: built.append(a[1]) or real(*a, **kw))
    again = cached_knn_graph(features.clone(), 3, tmp_path)
    assert built == []
    torch.testing.assert_close(again.to_dense(), first.to_dense())
    cached_knn_graph(features, 4, tmp_path)
    other = features.clone()
    other[0, 0] += 1.0
    cached_knn_graph(other, 3, tmp_path)
    assert built == [4, 3] and len(list(tmp_path.glob("knn-*.pt"))) == 3


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    features = torch.randn(20, 4, generator=torch.Generator().manual_seed(2))
    expected = cached_knn_graph(features, 2, tmp_path).to_dense()
    (cache,) = tmp_path.glob("knn-*.pt")
    cache.write_bytes(cache.read_bytes()[:50])
    torch.testing.assert_close(cached_knn_graph(features, 2, tmp_path).to_dense(), expected)
