"""VBPR (He & McAuley, AAAI 2016): matrix factorization whose item vector is extended by projected item features."""
from __future__ import annotations

from typing import Optional

import torch

from . import register
from .multimodal import MultimodalRecommender


@register("vbpr")
class VBPR(MultimodalRecommender):
    """score(u, i) = <gamma_u, gamma_i> + <theta_u, sum_m W_m x_i^m + b_m>: users [gamma_u; theta_u], items
    [gamma_i; content_i], both (2 * dim). MMRec's form: no bias terms; the modalities' features enter as one
    concatenated vector through one linear map (= the sum of per-modality maps)."""

    summary = "VBPR: MF with item vectors extended by linearly projected item features"
    uses_graph = False

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.user_content = torch.nn.Parameter(torch.empty(self.num_users, cfg.embedding_dim))
        torch.nn.init.normal_(self.user_content, std=cfg.init_std)

    def content(self, items: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(num_items or len(items), dim) sum over modalities of the projected features."""
        return sum(self.projected(m, items) for m in self.modalities)

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(num_nodes or len(rows), 2 * dim) users [gamma_u; theta_u] and items [gamma_i; content_i]."""
        if rows is None:
            return torch.cat([self.embedding, torch.cat([self.user_content, self.content()])], dim=1)
        is_user = rows < self.num_users
        side = self.embedding.new_empty(len(rows), self.cfg.embedding_dim)
        side = side.index_put((is_user,), self.user_content[rows[is_user]])
        side = side.index_put((~is_user,), self.content(rows[~is_user] - self.num_users))
        return torch.cat([self.embedding[rows], side], dim=1)
