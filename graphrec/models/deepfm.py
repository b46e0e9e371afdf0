"""DeepFM (Guo et al., IJCAI 2017): FM's pairwise term plus an MLP over the concatenated field embeddings."""
from __future__ import annotations

import torch
from pydantic import Field

from . import register
from .base import ModelContext
from .field_model import DeepConfig, FieldModel
from .fields import fm_interaction


class DeepFMConfig(DeepConfig):
    """DeepFM keys: the MLP tower over the f * d concatenated embeddings."""

    hidden: list[int] = Field(default_factory=lambda: [400, 400, 400], description="widths of the MLP's hidden "
                                                                                   "layers")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="batch normalization after each hidden layer's Linear")


@register("deepfm")
class DeepFM(FieldModel):
    """FM and a deep tower sharing the field embeddings."""

    config_class = DeepFMConfig
    summary = "DeepFM: FM + MLP over concatenated embeddings (feature rows; embedding: plain | gem)"

    def __init__(self, cfg: DeepFMConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.tower = cfg.tower(self.num_fields * cfg.embedding_dim)

    def interaction(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) FM pairwise term + MLP(flattened (b, f * d) embeddings)."""
        return fm_interaction(emb) + self.tower(emb.flatten(1))
