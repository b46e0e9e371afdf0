"""LightGCN (He et al., SIGIR 2020): linear propagation over D^-1/2 A D^-1/2, layers combined by weights."""
from __future__ import annotations

from typing import Optional

import torch
from pydantic import Field, model_validator

from ..schema import ModelConfig
from ..graph.propagate import BACKENDS, weighted_propagation
from . import register
from .base import Recommender


class LightGCNConfig(ModelConfig):
    """LightGCN keys: layers, optional layer weights (default: the mean, 1 / (num_layers + 1) each), backend."""

    num_layers: int = Field(3, ge=0, description="propagation layers L")
    layer_weights: Optional[list[float]] = Field(None, description="layer weights w_0..w_L (default: the mean, "
                                                                  "1 / (L + 1) each)")
    backend: str = Field("torch", description="propagation: torch (sparse CSR), scatter (index_add), pyg (PyG "
                                              "scatter / torch_scatter)")

    @model_validator(mode="after")
    def _check(self) -> "LightGCNConfig":
        if self.backend not in BACKENDS:
            raise ValueError(f"model.backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.layer_weights is not None and len(self.layer_weights) != self.num_layers + 1:
            raise ValueError(f"model.layer_weights needs num_layers + 1 = {self.num_layers + 1} values, "
                             f"got {len(self.layer_weights)}")
        return self


@register("lightgcn")
class LightGCN(Recommender):
    """Final embedding = sum_k w_k A_hat^k E0 with A_hat = D^-1/2 A D^-1/2 of the training graph."""

    config_class = LightGCNConfig
    partitionable = True
    summary = "LightGCN: mean of linear propagation layers over the normalized user-item graph"

    @property
    def layer_weights(self) -> list[float]:
        """w_0..w_L: the configured ones or the uniform mean."""
        cfg = self.cfg
        return cfg.layer_weights or [1.0 / (cfg.num_layers + 1)] * (cfg.num_layers + 1)

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final embeddings, (num_nodes, dim) or (len(rows), dim), with the fused propagation (or this rank's rows
        propagated over its block of the graph, the requested rows fetched from their owners)."""
        if self.partition is not None:
            local = self.partition.propagate(self.embedding, self.layer_weights)
            return self.partition.gather(local) if rows is None else self.partition.fetch(local, rows)
        return weighted_propagation(self.graph, self.embedding, self.layer_weights, rows, self.cfg.backend)

    @torch.no_grad()
    def scorer(self):
        """Dot-product scores against every item; under a partition for the users this rank owns (the evaluation
        shards users by owner), so only the item rows are gathered, never the whole final table."""
        if self.partition is None:
            return super().scorer()
        return self.partition.scorer(self.partition.propagate(self.embedding, self.layer_weights))
