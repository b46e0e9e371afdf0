"""Betweenness centrality of the user-item graph from BFS at sampled pivots (Brandes), as sparse matrix products."""
from __future__ import annotations

import torch

from .adjacency import NormalizedAdjacency


@torch.no_grad()
def sampled_betweenness(adj: NormalizedAdjacency, pivots: torch.Tensor) -> torch.Tensor:
    """(num_nodes,) float64 sum over the (k,) pivot nodes s of Brandes' dependency delta_s(v): the betweenness
    centrality when every node is a pivot (twice networkx's unnormalized value, which halves undirected counts),
    an unbiased estimate up to the factor num_nodes / k otherwise.

    All pivots run at once: a BFS level is one sparse product of the 0/1 adjacency with the (num_nodes, k) frontier
    of shortest-path counts, and the dependencies are accumulated back level by level the same way.
    """
    n, k = adj.num_nodes, len(pivots)
    ones = torch.ones(adj.nnz, dtype=torch.float64, device=adj.col.device)
    structure = torch.sparse_csr_tensor(adj.crow, adj.col, ones, (n, n))
    columns = torch.arange(k, device=pivots.device)
    dist = torch.full((n, k), -1, dtype=torch.int64, device=pivots.device)
    dist[pivots, columns] = 0
    paths = torch.zeros((n, k), dtype=torch.float64, device=pivots.device)
    paths[pivots, columns] = 1.0
    frontier, depth = paths.clone(), 0
    while True:
        reach = structure @ frontier  # shortest-path counts into the next level
        new = (dist < 0) & (reach > 0)
        if not bool(new.any()):
            break
        depth += 1
        dist[new] = depth
        paths = torch.where(new, reach, paths)
        frontier = torch.where(new, paths, 0.0)
    dependency = torch.zeros_like(paths)
    for level in range(depth, 0, -1):  # delta(v) = paths(v) * sum over next-level neighbours w of (1 + delta(w)) / paths(w)
        share = torch.where(dist == level, (1.0 + dependency) / paths.clamp(min=1.0), 0.0)
        dependency = dependency + torch.where(dist == level - 1, paths * (structure @ share), 0.0)
    dependency[pivots, columns] = 0.0
    return dependency.sum(1)
