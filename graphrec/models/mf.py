"""Matrix factorization trained with BPR (Rendle et al., 2009)."""
from __future__ import annotations

from typing import Optional

import torch

from . import register
from .base import Recommender


@register("mf")
class MF(Recommender):
    """Score = dot product of the user's and the item's ego embeddings."""

    summary = "matrix factorization with BPR (no graph)"
    uses_graph = False

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Ego embeddings, (num_nodes, dim) or (len(rows), dim)."""
        return self.embedding if rows is None else self.embedding[rows]
