"""Item-item graph pieces of the multimodal models: fixed kNN graphs mixed by weights, and graphs over a given edge
list whose weights stay differentiable (LATTICE's learned structure)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def mix_graphs(graphs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """(n, n) CSR sum_m weights[m] * graphs[m] of (n, n) sparse CSR graphs."""
    coo = [g.to_sparse_coo() * float(w) for g, w in zip(graphs, weights)]
    return torch.stack(coo).sum(0).coalesce().to_sparse_csr() if len(coo) > 1 else coo[0].to_sparse_csr()


@dataclass(frozen=True)
class EdgeList:
    """A fixed n x n sparsity pattern whose values change every step: (e,) rows and cols sorted by row, with the
    CSR pointers of the pattern and of its transpose, so products run as sparse kernels with no (e, d) gathers."""

    row: torch.Tensor
    col: torch.Tensor
    crow: torch.Tensor
    t_order: torch.Tensor  # the edges in the transpose's CSR order
    t_crow: torch.Tensor
    t_col: torch.Tensor
    n: int

    @classmethod
    def build(cls, row: torch.Tensor, col: torch.Tensor, n: int) -> "EdgeList":
        """The pattern of the (e,) edges row -> col of an n-node graph (any order, each edge once)."""
        order = torch.argsort(row * n + col)
        row, col = row[order], col[order]
        t_order = torch.argsort(col * n + row)
        return cls(row, col, torch._convert_indices_from_coo_to_csr(row, n), t_order,
                   torch._convert_indices_from_coo_to_csr(col[t_order], n), row[t_order], n)

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        """(n, n) sparse CSR with the (e,) values on the pattern."""
        return torch.sparse_csr_tensor(self.crow, self.col, values, (self.n, self.n), check_invariants=False)

    def csr_t(self, values: torch.Tensor) -> torch.Tensor:
        """(n, n) sparse CSR of the transpose, from the (e,) values in the pattern's order."""
        return torch.sparse_csr_tensor(self.t_crow, self.t_col, values.index_select(0, self.t_order),
                                       (self.n, self.n), check_invariants=False)

    def dots(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(e,) <a[row], b[col]> for (n, d) a and b, one sampled dense-dense product (SDDMM), not differentiable."""
        if not len(self.row):
            return a.new_zeros(0)
        pattern = self.csr(a.new_ones(len(self.row)))
        return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0).values()


class _EdgeDots(torch.autograd.Function):
    """(e,) <a[row], b[col]>; backward: S @ b and S^T @ a with S the edges holding the incoming gradient."""

    @staticmethod
    def forward(ctx, edges: EdgeList, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.edges = edges
        ctx.save_for_backward(a, b)
        return edges.dots(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        grad = grad.contiguous()
        grad_a = ctx.edges.csr(grad) @ b if ctx.needs_input_grad[1] else None
        grad_b = ctx.edges.csr_t(grad) @ a if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


class _EdgeMatmul(torch.autograd.Function):
    """(n, d) G @ x with G the edges holding `values`; backward: G^T @ grad for x, <grad[row], x[col]> for values."""

    @staticmethod
    def forward(ctx, edges: EdgeList, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.edges = edges
        ctx.save_for_backward(values, x)
        return edges.csr(values) @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        values, x = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = ctx.edges.dots(grad, x) if ctx.needs_input_grad[1] else None
        grad_x = ctx.edges.csr_t(values) @ grad if ctx.needs_input_grad[2] else None
        return None, grad_values, grad_x


def edge_dots(edges: EdgeList, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(e,) <a[row], b[col]> over the edges for (n, d) a and b; differentiable in both."""
    return _EdgeDots.apply(edges, a.contiguous(), b.contiguous())


def edge_matmul(edges: EdgeList, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n, d) = G @ x for the graph G with entries G[row, col] = the (e,) values; x (n, d); differentiable in both."""
    return _EdgeMatmul.apply(edges, values.contiguous(), x.contiguous())


def symmetric_edges(neighbours: torch.Tensor) -> EdgeList:
    """The union of i -> neighbours[i, :] and its reverse, each edge once; neighbours (n, k)."""
    n, k = neighbours.shape
    src = torch.arange(n, device=neighbours.device).repeat_interleave(k)
    dst = neighbours.reshape(-1)
    keys = torch.unique(torch.cat([src * n + dst, dst * n + src]))
    return EdgeList.build(keys // n, keys % n, n)


def normalized_edge_values(row: torch.Tensor, col: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """(e,) values of D^-1/2 S D^-1/2 for the (e,) edge weights of S (D: row sums); differentiable in `weight`."""
    degree = weight.new_zeros(n).index_add(0, row, weight)
    inv_sqrt = degree.clamp_min(1e-12).pow(-0.5) * (degree > 0)
    return inv_sqrt.index_select(0, row) * weight * inv_sqrt.index_select(0, col)
