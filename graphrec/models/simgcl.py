"""SimGCL (Yu et al., SIGIR 2022): views made by adding sign-aligned uniform noise of norm eps after every layer."""
from __future__ import annotations

import torch
from pydantic import Field

from ..graph.propagate import weighted_propagation
from ..graph.views import sign_aligned_noise
from . import register
from .contrastive import ContrastiveConfig, ContrastiveLightGCN, default_of
from .lightgcn import LayerMean


class SimGCLConfig(ContrastiveConfig):
    """SimGCL keys; defaults from SELFRec's SimGCL.yaml (2 layers, lambda 0.5, eps 0.1, tau 0.2)."""

    ssl_weight: float = default_of(ContrastiveConfig, "ssl_weight", 0.5)
    noise_eps: float = Field(0.1, gt=0, description="norm eps of the noise added to each node after every layer")
    layer_mean: LayerMean = default_of(ContrastiveConfig, "layer_mean", "propagated")


@register("simgcl")
class SimGCL(ContrastiveLightGCN):
    """Clean pass for BPR, two noisy passes for the contrastive loss: side by side through one adjacency."""

    config_class = SimGCLConfig
    summary = "SimGCL: LightGCN + InfoNCE between two views with sign-aligned noise after every layer"

    def noise(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) sign-aligned noise of norm noise_eps for (..., d) layer embeddings, from the model's generator."""
        return sign_aligned_noise(h, self.cfg.noise_eps, self.batch_gen)

    def encode(self, rows):
        """The clean pass and two noisy views from one propagation (`views=2`: the first product is shared and the
        backward is one pass of width d); the table is MixGCF's with model.mixgcf."""
        d = self.cfg.embedding_dim
        clean, view1, view2 = weighted_propagation(self.graph, self.embedding, self.layer_weights, rows,
                                                   self.cfg.backend, self.noise, views=2).split(d, dim=1)
        return (self.rec_table(rows) if self.cfg.mixgcf else clean), view1, view2
