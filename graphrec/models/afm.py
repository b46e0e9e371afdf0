"""AFM (Xiao et al., IJCAI 2017): the pairwise products e_i * e_j pooled by attention, projected to one score."""
from __future__ import annotations

import torch
from pydantic import Field

from . import register
from .base import ModelContext
from .field_model import FieldModel, FieldModelConfig
from .fields import AttentionInteraction


class AFMConfig(FieldModelConfig):
    """AFM keys: the attention network's width and the dropout on the pooled pair vector."""

    attention_dim: int = Field(32, ge=1, description="hidden width of the attention network over field pairs")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout on the attention-pooled pair vector")


@register("afm")
class AFM(FieldModel):
    """Attentional factorization machine."""

    config_class = AFMConfig
    summary = "attentional FM: attention over field-pair products (feature rows; embedding: plain | gem)"

    def __init__(self, cfg: AFMConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.attention = AttentionInteraction(cfg.embedding_dim, cfg.attention_dim, cfg.dropout)

    def interaction(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) attention-weighted sum of the pair products, projected."""
        return self.attention(emb)
