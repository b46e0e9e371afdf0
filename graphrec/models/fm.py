"""FM (Rendle, ICDM 2010): w0 + sum_i w_i x_i + sum_{i<j} <e_i, e_j> x_i x_j, in O(f d); GEM-FM with embedding: gem."""
from __future__ import annotations

import torch

from . import register
from .field_model import FieldModel
from .fields import fm_interaction


@register("fm")
class FM(FieldModel):
    """Factorization machine over feature fields."""

    summary = "factorization machine (feature rows; embedding: plain | gem)"

    def interaction(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) sum over field pairs of <e_i, e_j> from (b, f, d) embeddings."""
        return fm_interaction(emb)
