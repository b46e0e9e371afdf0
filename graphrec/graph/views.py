"""Perturbed views of the user-item graph for contrastive learning: edge, node and per-layer edge dropout
(SGL-ED / ND / RW, SGCL) and SimGCL's sign-aligned embedding noise."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

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
    keep = user_kept[adj.users] & item_kept[adj.items]
    return NormalizedAdjacency(adj.users[keep], adj.items[keep], adj.num_users, adj.num_items)


def per_layer_edge_dropout(adj: NormalizedAdjacency, rate: float, num_layers: int,
                           generator: Optional[torch.Generator] = None) -> list[NormalizedAdjacency]:
    """num_layers independent edge-dropout views, one per propagation layer (SGL-RW)."""
    return [edge_dropout_view(adj, rate, generator) for _ in range(num_layers)]


def sign_aligned_noise(h: torch.Tensor, eps: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(n, d) SimGCL noise for (n, d) embeddings h: eps * sign(h) * a row-normalized U(0, 1) vector.

    Each row has norm eps (less where h has zeros) and lies in h's orthant. Detached from h, so it can be
    `perturb` of graphrec.graph.propagate: `perturb=lambda h: sign_aligned_noise(h, eps, generator)`.
    """
    uniform = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype)
    return torch.sign(h.detach()) * F.normalize(uniform, dim=1) * eps


def _keep_mask(n: int, rate: float, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """(n,) bool mask that is False at floor(rate * n) positions drawn without replacement."""
    keep = torch.ones(n, dtype=torch.bool, device=device)
    keep[torch.randperm(n, generator=generator, device=device)[:int(rate * n)]] = False
    return keep
