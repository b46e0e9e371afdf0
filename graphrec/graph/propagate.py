"""One propagation API over a symmetric normalized adjacency, with interchangeable SpMM backends.

Backends give identical results up to float rounding:
- "torch" (default): torch.sparse.mm on the CSR tensor (MKL on CPU, cuSPARSE on CUDA).
- "scatter": edge-wise gather + native `index_add_`.
- "pyg": edge-wise gather + `torch_geometric.utils.scatter` (uses torch_scatter when it is installed).

Because the adjacency is symmetric, the gradient of `adj @ x` is `adj @ grad`; the fused LightGCN
propagation uses that to run its backward pass as a Horner scheme with no stored intermediates.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .adjacency import NormalizedAdjacency

BACKENDS = ("torch", "scatter", "pyg")
Perturb = Callable[[torch.Tensor], torch.Tensor]


def spmm_raw(adj: NormalizedAdjacency, x: torch.Tensor, backend: str = "torch",
             add: Optional[torch.Tensor] = None, beta: float = 1.0) -> torch.Tensor:
    """(num_nodes, d) = adj @ x (+ beta * add) without autograd bookkeeping, with the chosen backend.

    The torch backend makes it one fused `addmm` on the int32-indexed CSR (no output fill, no index copy).
    """
    if backend == "torch":  # addmm writing into its own input avoids an extra (num_nodes, d) copy
        if add is None:
            out = x.new_empty((adj.num_nodes, x.shape[1]))
            return torch.addmm(out, adj.csr, x, beta=0.0, out=out)
        return (add * beta).addmm_(adj.csr, x)
    messages = x[adj.col] * adj.values.unsqueeze(1)
    if backend == "scatter":
        out = torch.zeros_like(x).index_add_(0, adj.row, messages)
    elif backend == "pyg":
        from torch_geometric.utils import scatter
        out = scatter(messages, adj.row, dim=0, dim_size=adj.num_nodes, reduce="sum")
    else:
        raise ValueError(f"unknown propagation backend {backend!r}; choose one of {BACKENDS}")
    return out if add is None else out.add_(add, alpha=beta)


class _SymmetricSpMM(torch.autograd.Function):
    """adj @ x whose backward is adj @ grad (valid because adj is symmetric)."""

    @staticmethod
    def forward(ctx, x, adj, backend):  # type: ignore[override]
        ctx.adj, ctx.backend = adj, backend
        return spmm_raw(adj, x, backend)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return spmm_raw(ctx.adj, grad.contiguous(), ctx.backend), None, None


def spmm(adj: NormalizedAdjacency, x: torch.Tensor, backend: str = "torch") -> torch.Tensor:
    """Differentiable (num_nodes, d) = adj @ x."""
    return _SymmetricSpMM.apply(x, adj, backend)


def propagate_layers(adj: NormalizedAdjacency, x0: torch.Tensor, num_layers: int, backend: str = "torch",
                     perturb: Optional[Perturb] = None) -> list[torch.Tensor]:
    """[x0, x1, ..., xL], x_k = adj @ x_{k-1} (+ perturb(x_k) if given), each (num_nodes, d); autograd-ready."""
    layers = [x0]
    for _ in range(num_layers):
        h = spmm(adj, layers[-1], backend)
        layers.append(h + perturb(h) if perturb is not None else h)
    return layers


def layerwise_propagation(adjs: Sequence[NormalizedAdjacency], x0: torch.Tensor, layer_weights: Sequence[float],
                          rows: Optional[torch.Tensor] = None, backend: str = "torch") -> torch.Tensor:
    """sum_k w_k x_k with x_k = adjs[k-1] @ x_{k-1}: another adjacency at every layer (SGL-RW), (num_nodes, d) or
    (len(rows), d); autograd through `spmm`, one product per layer each way."""
    if len(adjs) != len(layer_weights) - 1:
        raise ValueError(f"{len(adjs)} adjacencies for {len(layer_weights) - 1} layers")
    out, h = x0 * layer_weights[0], x0
    for adj, weight in zip(adjs, layer_weights[1:]):
        h = spmm(adj, h, backend)
        out = out + weight * h
    return out if rows is None else out.index_select(0, rows)


# The backward's first product may use the forward's row block transposed (the seed lives on the batch's rows
# only) when the block holds at most this fraction of the adjacency's entries: MKL's transposed product is ~4x
# slower per entry than the plain one, so past ~1/4 of the entries one full product is cheaper (Gowalla, CPU).
TRANSPOSED_BLOCK_MAX_FRACTION = 0.2


def _perturbed_copies(adj: NormalizedAdjacency, x0: torch.Tensor, weights: list[float], rows: Optional[torch.Tensor],
                      backend: str, perturb: Perturb, views: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """weighted_propagation's forward with `views`: ((m, (1 + views) d) clean | views, the last layer's row block).

    The views are carried as offsets from the clean state, (n, views, d): x0 has none, so the first product is the
    clean one alone; each later layer moves the offsets by one product of width views x d and adds the noise that
    `perturb` draws from the views' states.
    """
    num_layers, dim = len(weights) - 1, x0.shape[1]
    pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))  # noqa: E731
    clean = pick(x0) * weights[0]
    shift = clean.new_zeros((len(clean), views, dim))  # sum_k w_k offsets_k at the output rows
    h, offsets, block = x0, None, None
    for k in range(1, num_layers + 1):
        at_rows = k == num_layers and rows is not None  # the last layer only at the batch's rows
        if at_rows and backend == "torch":
            block = adj.row_block(rows)
            product = lambda x: torch.mm(block, x)  # noqa: E731
        elif at_rows:
            product = lambda x: spmm_raw(adj, x, backend).index_select(0, rows)  # noqa: E731
        else:
            product = lambda x: spmm_raw(adj, x, backend)  # noqa: E731
        h = product(h)
        if offsets is None:
            offsets = perturb(h.unsqueeze(1).expand(-1, views, -1))
        else:
            moved = product(offsets.flatten(1)).view(-1, views, dim)
            offsets = moved.add_(perturb(moved + h.unsqueeze(1)))
        layer_pick = (lambda t: t) if at_rows else pick  # noqa: E731
        clean.add_(layer_pick(h), alpha=weights[k])
        shift.add_(layer_pick(offsets), alpha=weights[k])
    return torch.cat([clean, (shift + clean.unsqueeze(1)).flatten(1)], 1), block


class _WeightedPropagation(torch.autograd.Function):
    """sum_k w_k adj^k x0 (optionally only at `rows`), backward by Horner's scheme with num_layers SpMMs.

    `extra` layers j are returned too (adj^j x0 at the same rows, from the same pass); their gradients join the
    Horner scheme at step j, so they cost no extra product. With `views` > 0 the output is the clean sum and
    `views` perturbed copies side by side (`_perturbed_copies`); the copies' gradients are summed and run through
    one Horner scheme of the clean width.
    """

    @staticmethod
    def forward(ctx, x0, adj, weights, rows, backend, perturb, extra, views):  # type: ignore[override]
        ctx.adj, ctx.weights, ctx.rows, ctx.backend, ctx.extra = adj, weights, rows, backend, extra
        ctx.num_nodes, ctx.block, ctx.views = x0.shape[0], None, views
        if views:
            out, block = _perturbed_copies(adj, x0, weights, rows, backend, perturb, views)
            if block is not None and block.values().numel() <= TRANSPOSED_BLOCK_MAX_FRACTION * adj.nnz:
                ctx.block = block
            return out
        num_layers = len(weights) - 1
        pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))  # noqa: E731
        out = pick(x0) * weights[0]
        layers = {0: pick(x0).clone()} if 0 in extra else {}
        h = x0
        for k in range(1, num_layers + 1):
            last = k == num_layers
            if last and rows is not None and k not in extra:  # the last layer only at the batch's rows
                if backend == "torch":
                    block = adj.row_block(rows)
                    if perturb is None:
                        out.addmm_(block, h, alpha=weights[k])
                    else:
                        h_rows = torch.mm(block, h)
                        out.add_(h_rows + perturb(h_rows), alpha=weights[k])
                    if block.values().numel() <= TRANSPOSED_BLOCK_MAX_FRACTION * adj.nnz:
                        ctx.block = block
                else:
                    h_rows = spmm_raw(adj, h, backend).index_select(0, rows)
                    out.add_(h_rows if perturb is None else h_rows + perturb(h_rows), alpha=weights[k])
                break
            h = spmm_raw(adj, h, backend)
            if perturb is not None:
                h = h + perturb(h)
            out.add_(pick(h), alpha=weights[k])
            if k in extra:
                layers[k] = pick(h) if rows is not None else h.clone()
        return (out, *(layers[j] for j in extra)) if extra else out

    @staticmethod
    def backward(ctx, grad_out, *grad_extra):  # type: ignore[override]
        weights, rows, grad_out = ctx.weights, ctx.rows, grad_out.contiguous()
        if ctx.views:  # every copy has the clean copy's Jacobian: the perturbation is not differentiated
            grad_out = grad_out.unflatten(1, (1 + ctx.views, -1)).sum(1)
        seeds = {j: g.contiguous() for j, g in zip(ctx.extra, grad_extra) if g is not None}
        if rows is None:
            acc = grad_out * weights[-1]
            if len(weights) - 1 in seeds:
                acc = acc + seeds[len(weights) - 1]
            for k in range(len(weights) - 2, -1, -1):
                acc = spmm_raw(ctx.adj, acc, ctx.backend, add=grad_out, beta=weights[k])
                if k in seeds:
                    acc.add_(seeds[k])
        elif len(weights) == 1:
            acc = grad_out.new_zeros((ctx.num_nodes, grad_out.shape[1])).index_add_(0, rows, grad_out, alpha=weights[0])
            if 0 in seeds:
                acc.index_add_(0, rows, seeds[0])
        else:  # the seed lives on the batch's rows only
            last = len(weights) - 1
            if ctx.block is not None:  # adj @ seed = (adj[rows, :])^T @ grad by symmetry; repeated rows add up
                acc = torch.mm(ctx.block.t(), grad_out * weights[-1])
            else:
                seed = grad_out.new_zeros((ctx.num_nodes, grad_out.shape[1])).index_add_(0, rows, grad_out,
                                                                                         alpha=weights[-1])
                if last in seeds:
                    seed.index_add_(0, rows, seeds[last])
                acc = spmm_raw(ctx.adj, seed, ctx.backend)
            acc.index_add_(0, rows, grad_out, alpha=weights[-2])
            if last - 1 in seeds:
                acc.index_add_(0, rows, seeds[last - 1])
            for k in range(len(weights) - 3, -1, -1):
                acc = spmm_raw(ctx.adj, acc, ctx.backend).index_add_(0, rows, grad_out, alpha=weights[k])
                if k in seeds:
                    acc.index_add_(0, rows, seeds[k])
        return acc, None, None, None, None, None, None, None


def weighted_propagation(adj: NormalizedAdjacency, x0: torch.Tensor, layer_weights: Sequence[float],
                         rows: Optional[torch.Tensor] = None, backend: str = "torch",
                         perturb: Optional[Perturb] = None, extra_layers: Sequence[int] = (), views: int = 0):
    """sum_k layer_weights[k] * (adj^k x0), as (num_nodes, d), or (len(rows), d) when rows are given.

    The fused LightGCN combination: the same values and gradients as stacking `propagate_layers`,
    with num_layers SpMMs backward and none stored. With `rows`, the last layer is computed only at
    those rows (the loss needs nothing else), saving one full SpMM forward. `perturb(h)` adds a term
    after each layer that must not depend differentiably on h and must be row-local (row i of the term depends on
    row i of h only: SimGCL's sign-aligned noise), since the last layer may be perturbed at `rows` alone.
    With `extra_layers` (e.g. (1,) for XSimGCL's contrastive layer) it returns (combination, [layer_j, ...]),
    each layer j being adj^j x0 (perturbed) at the same rows, from the same pass and differentiable.
    With `views` = V > 0 it returns (n, (1 + V) d): the clean combination, then V combinations perturbed after
    every layer (SimGCL's views; `perturb` gets the views' states of a layer as (n, V, d), maybe a broadcast view,
    and must not write into it). The first product is the clean one alone (x0 is not perturbed), later ones
    add one of width V d, and since the perturbation is not differentiated every copy's gradient is the clean
    one's: the backward is one pass of width d on their sum.
    """
    extra = tuple(sorted(set(int(j) for j in extra_layers)))
    if any(j < 0 or j >= len(layer_weights) for j in extra):
        raise ValueError(f"extra_layers {list(extra)} must lie in 0..{len(layer_weights) - 1}")
    if views and (extra or perturb is None):
        raise ValueError("views need a perturb and cannot be combined with extra_layers")
    out = _WeightedPropagation.apply(x0, adj, [float(w) for w in layer_weights], rows, backend, perturb, extra,
                                     int(views))
    if not extra:
        return out
    order = [extra.index(int(j)) for j in extra_layers]
    return out[0], [out[1 + i] for i in order]


class _InjectedMean(torch.autograd.Function):
    """mean over l = 0..L of H_l, H_0 = x0, H_l = adj @ H_{l-1} + inject; backward by Horner's scheme with adj^T."""

    @staticmethod
    def forward(ctx, x0, inject, adj, adj_t, num_layers):  # type: ignore[override]
        ctx.adj_t, ctx.num_layers, ctx.has_inject = adj_t, num_layers, inject is not None
        total, h = x0.clone(), x0
        for _ in range(num_layers):
            h = torch.addmm(inject, adj, h) if inject is not None else torch.mm(adj, h)
            total.add_(h)
        return total.div_(num_layers + 1)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        seed = grad.contiguous() / (ctx.num_layers + 1)  # a_L = seed, a_l = adj^T a_{l+1} + seed
        acc, inject_grad = seed, torch.zeros_like(seed) if ctx.has_inject else None
        for _ in range(ctx.num_layers):
            if inject_grad is not None:
                inject_grad.add_(acc)  # d inject = a_1 + ... + a_L
            acc = torch.addmm(seed, ctx.adj_t, acc)
        return acc, inject_grad, None, None, None


def injected_mean_propagation(adj: torch.Tensor, adj_t: torch.Tensor, x0: torch.Tensor, num_layers: int,
                              inject: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(num_nodes, d) mean over l = 0..L of H_l, H_0 = x0, H_l = adj @ H_{l-1} (+ inject): IDSF's structure.

    `adj` is any (num_nodes, num_nodes) sparse CSR (not necessarily symmetric) and `adj_t` its transpose as CSR;
    one product per layer each way, none stored, the injection fused into each product.
    """
    return _InjectedMean.apply(x0, inject, adj, adj_t, num_layers)
