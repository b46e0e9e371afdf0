"""Perturbed views of the user-item graph for contrastive learning: edge, node and per-layer edge dropout
(SGL-ED / ND / RW, SGCL), SimGCL's sign-aligned embedding noise, and pure-noise rows for the robustness experiment."""
from __future__ import annotations

from typing import Optional

import torch

from ..draws import uniform
from .adjacency import NormalizedAdjacency


def edge_dropout_view(adj: NormalizedAdjacency, rate: float,
                      generator: Optional[torch.Generator] = None) -> NormalizedAdjacency:
    """The renormalized adjacency of the subgraph keeping each user-item edge with probability 1 - rate."""
    return adj.drop_edges(rate, generator)


def node_dropout_view(adj: NormalizedAdjacency, rate: float,
                      generator: Optional[torch.Generator] = None) -> NormalizedAdjacency:
    """The renormalized adjacency without any edge of floor(rate * num_users) random users and
    floor(rate * num_items) random items (SGL-ND; the nodes stay, isolated)."""
    device = adj.users.device
    user_kept = _keep_mask(adj.num_users, rate, generator, device)
    item_kept = _keep_mask(adj.num_items, rate, generator, device)
    return adj.keep_edges(user_kept[adj.users] & item_kept[adj.items])


def per_layer_edge_dropout(adj: NormalizedAdjacency, rate: float, num_layers: int,
                           generator: Optional[torch.Generator] = None) -> list[NormalizedAdjacency]:
    """num_layers independent edge-dropout views, one per propagation layer (SGL-RW)."""
    return [edge_dropout_view(adj, rate, generator) for _ in range(num_layers)]


def sign_aligned_noise(h: torch.Tensor, eps: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(..., d) SimGCL noise for (..., d) embeddings h: eps * sign(h) * a normalized U(0, 1)^d vector per row.

    Each row has norm eps and lies in h's orthant; an all-zero row of h (an isolated node) gets none, as sign(0) = 0
    gives, while a lone zero entry of a nonzero row takes the + sign (a float embedding has none in practice).
    Detached from h, so it can be `perturb` of graphrec.graph.propagate:
    `perturb=lambda h: sign_aligned_noise(h, eps, generator)`.
    """
    noise = uniform(h.shape, generator, h.device, h.dtype)
    noise.mul_(eps / noise.norm(dim=-1, keepdim=True).clamp_min_(1e-12))
    distinct = h.detach()  # a broadcast h (stride 0, e.g. views sharing a state) is signed once per distinct entry
    for dim, stride in enumerate(h.stride()):
        if stride == 0:
            distinct = distinct.narrow(dim, 0, 1)
    noise.copysign_(distinct)  # sign(h) * noise, several times faster than torch.sign on the CPU
    zero_rows = torch.linalg.vector_norm(distinct, dim=-1) == 0  # isolated nodes: sign(0) = 0, no noise
    if bool(zero_rows.any()):
        noise.masked_fill_(zero_rows.unsqueeze(-1), 0.0)
    return noise


def replace_rows_with_noise(view: torch.Tensor, share: float,
                            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(n, d) copy of an (n, d) view whose floor(share * n) random rows are N(0, 1) embeddings: pure-noise views
    on purpose (the robustness experiment). The replaced rows are constants, so no gradient reaches them."""
    replaced = ~_keep_mask(len(view), share, generator, view.device)
    noise = torch.randn(view.shape, generator=generator, device=view.device, dtype=view.dtype)
    return torch.where(replaced.unsqueeze(1), noise, view)


def _keep_mask(n: int, rate: float, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """(n,) bool mask that is False at floor(rate * n) positions drawn without replacement."""
    keep = torch.ones(n, dtype=torch.bool, device=device)
    keep[torch.randperm(n, generator=generator, device=device)[:int(rate * n)]] = False
    return keep
