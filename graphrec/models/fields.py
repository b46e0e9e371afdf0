"""Building blocks of FM-style models over feature fields: embedding layer, FM / Bi-Interaction / attention, MLP."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..draws import Dropout


class FieldEmbedding(nn.Module):
    """Per-feature linear weights (num_features,) with a global bias, and (num_features, dim) embeddings.

    Init: bias and linear weights zero (as libFM), embeddings N(0, init_std^2).
    """

    def __init__(self, num_features: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.linear = nn.Parameter(torch.zeros(num_features))
        self.embedding = nn.Parameter(torch.randn(num_features, dim) * init_std)

    def forward(self, features: torch.Tensor, values: torch.Tensor, vectors: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, f, d) embeddings x_i v_i and the (b,) linear term w0 + sum_i w_i x_i from (b, f) ids and values;
        `vectors` (b, f, d) replaces the table lookup v_i (GEM's high-order g(i))."""
        if vectors is None:
            vectors = self.embedding[features]
        linear = self.bias + (self.linear[features] * values).sum(dim=1)
        return vectors * values.unsqueeze(-1), linear


def bi_interaction(emb: torch.Tensor) -> torch.Tensor:
    """(b, d) Bi-Interaction pooling sum_{i<j} e_i * e_j of (b, f, d) embeddings, as 0.5 ((sum e)^2 - sum e^2)."""
    return 0.5 * (emb.sum(dim=1).square() - emb.square().sum(dim=1))


def fm_interaction(emb: torch.Tensor) -> torch.Tensor:
    """(b,) FM pairwise term sum_{i<j} <e_i, e_j> of (b, f, d) embeddings in O(f d)."""
    return bi_interaction(emb).sum(dim=1)


class AttentionInteraction(nn.Module):
    """AFM: attention-weighted sum of the pairwise products e_i * e_j (i < j), projected to a (b,) score."""

    def __init__(self, dim: int, attn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, attn_dim), nn.ReLU(), nn.Linear(attn_dim, 1, bias=False))
        self.projection = nn.Linear(dim, 1, bias=False)
        self.dropout = Dropout(dropout)

    def pair_products(self, emb: torch.Tensor) -> torch.Tensor:
        """(b, f (f - 1) / 2, d) products e_i * e_j of the field pairs i < j."""
        left, right = torch.triu_indices(emb.shape[1], emb.shape[1], offset=1, device=emb.device)
        # index_select, not emb[:, left]: its backward is an index_add, 1.7x faster than advanced indexing's
        return emb.index_select(1, left) * emb.index_select(1, right)

    def weights(self, pairs: torch.Tensor) -> torch.Tensor:
        """(b, pairs) attention weights, a softmax over the pairs of each row, from (b, pairs, d) products."""
        return torch.softmax(self.attention(pairs).squeeze(-1), dim=1)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) AFM pairwise term from (b, f, d) embeddings."""
        pairs = self.pair_products(emb)
        pooled = (self.weights(pairs).unsqueeze(-1) * pairs).sum(dim=1)
        return self.projection(self.dropout(pooled)).squeeze(-1)


class MLP(nn.Module):
    """(b, in_dim) -> (b,): hidden Linear (+ BatchNorm) + ReLU + dropout layers, then one linear output unit."""

    def __init__(self, in_dim: int, hidden: list[int], dropout: float, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            norm = [nn.BatchNorm1d(width)] if batch_norm else []
            layers += [nn.Linear(in_dim, width), *norm, nn.ReLU(), Dropout(dropout)]
            in_dim = width
        layers.append(nn.Linear(in_dim, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b,) output for (b, in_dim) input."""
        return self.layers(x).squeeze(-1)
