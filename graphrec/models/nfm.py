"""NFM (He & Chua, SIGIR 2017): Bi-Interaction pooling sum_{i<j} e_i * e_j, dropout, then an MLP to one score."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ..draws import Dropout
from . import register
from .base import ModelContext
from .field_model import DeepConfig, FieldModel
from .fields import bi_interaction


class NFMConfig(DeepConfig):
    """NFM keys: the MLP tower (hidden, dropout, batch_norm) and the Bi-Interaction dropout."""

    bi_dropout: float = Field(0.2, ge=0, lt=1, description="dropout on the Bi-Interaction vector (NFM: keep 0.8)")


@register("nfm")
class NFM(FieldModel):
    """Neural factorization machine: MLP over the Bi-Interaction pooled vector."""

    config_class = NFMConfig
    summary = "neural FM: Bi-Interaction pooling + MLP (feature rows; embedding: plain | gem)"

    def __init__(self, cfg: NFMConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.bi_dropout = Dropout(cfg.bi_dropout)
        # with batch_norm the Bi-Interaction vector is normalized too, before its dropout, as NFM's code does
        self.bi_norm = nn.BatchNorm1d(cfg.embedding_dim) if cfg.batch_norm else nn.Identity()
        self.tower = cfg.tower(cfg.embedding_dim)

    def interaction(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) MLP(dropout(norm(Bi-Interaction(e)))) from (b, f, d) embeddings (norm: BatchNorm with batch_norm)."""
        return self.tower(self.bi_dropout(self.bi_norm(bi_interaction(emb))))
