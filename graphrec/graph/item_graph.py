"""Item-item graph pieces of the multimodal models: fixed kNN graphs mixed by weights, and graphs over a given edge
list whose weights stay differentiable (LATTICE's learned structure)."""
from __future__ import annotations

from typing import Sequence

import torch


def mix_graphs(graphs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """(n, n) CSR sum_m weights[m] * graphs[m] of (n, n) sparse CSR graphs."""
    coo = [g.to_sparse_coo() * float(w) for g, w in zip(graphs, weights)]
    return torch.stack(coo).sum(0).coalesce().to_sparse_csr() if len(coo) > 1 else coo[0].to_sparse_csr()


def symmetric_edges(neighbours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(e,) rows and cols of the union of i -> neighbours[i, :] and its reverse, each edge once; neighbours (n, k)."""
    n, k = neighbours.shape
    src = torch.arange(n, device=neighbours.device).repeat_interleave(k)
    dst = neighbours.reshape(-1)
    keys = torch.unique(torch.cat([src * n + dst, dst * n + src]))
    return keys // n, keys % n


def normalized_edge_values(row: torch.Tensor, col: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """(e,) values of D^-1/2 S D^-1/2 for the (e,) edge weights of S (D: row sums); differentiable in `weight`."""
    degree = weight.new_zeros(n).index_add(0, row, weight)
    inv_sqrt = degree.clamp_min(1e-12).pow(-0.5) * (degree > 0)
    return inv_sqrt.index_select(0, row) * weight * inv_sqrt.index_select(0, col)


def edge_matmul(row: torch.Tensor, col: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n, d) = G @ x for the graph G with entries G[row, col] = values; x (n, d); differentiable in both."""
    return torch.zeros_like(x).index_add(0, row, values.unsqueeze(1) * x.index_select(0, col))  # index_select: a
    # faster gather than x[col] on the CPU, and its backward an index_add instead of an accumulating index_put
