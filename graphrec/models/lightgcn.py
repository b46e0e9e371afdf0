"""LightGCN (He et al., SIGIR 2020): linear propagation over D^-1/2 A D^-1/2, layers combined by weights."""
from __future__ import annotations

from typing import Literal, Optional

import torch
from pydantic import Field, model_validator

from ..schema import ModelConfig
from ..graph.propagate import BACKENDS, weighted_propagation
from . import register
from .base import Recommender


LayerMean = Literal["all", "propagated"]


class LightGCNConfig(ModelConfig):
    """LightGCN keys: layers, how they combine (the mean of 0..L or of 1..L, or explicit weights), backend."""

    num_layers: int = Field(3, ge=0, description="propagation layers L")
    layer_mean: LayerMean = Field(
        "all", description="final embedding: mean of layers 0..L (all, LightGCN) or of 1..L (propagated, the "
                           "SimGCL/XSimGCL code); model.layer_weights overrides both")
    layer_weights: Optional[list[float]] = Field(None, description="layer weights w_0..w_L (default: the mean "
                                                                  "that model.layer_mean names)")
    backend: str = Field("torch", description="propagation: torch (sparse CSR), scatter (index_add), pyg (PyG "
                                              "scatter / torch_scatter)")

    @model_validator(mode="after")
    def _check(self) -> "LightGCNConfig":
        if self.backend not in BACKENDS:
            raise ValueError(f"model.backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.layer_weights is not None and len(self.layer_weights) != self.num_layers + 1:
            raise ValueError(f"model.layer_weights needs num_layers + 1 = {self.num_layers + 1} values, "
                             f"got {len(self.layer_weights)}")
        if self.layer_mean == "propagated" and self.num_layers < 1:
            raise ValueError("model.layer_mean: propagated needs model.num_layers >= 1")
        return self


@register("lightgcn")
class LightGCN(Recommender):
    """Final embedding = sum_k w_k A_hat^k E0 with A_hat = D^-1/2 A D^-1/2 of the training graph."""

    config_class = LightGCNConfig
    partitionable = True
    summary = "LightGCN: mean of linear propagation layers over the normalized user-item graph"

    @property
    def layer_weights(self) -> list[float]:
        """w_0..w_L: the configured ones, or the uniform mean of layers 0..L (layer_mean: all) or 1..L
        (propagated)."""
        cfg = self.cfg
        if cfg.layer_weights:
            return cfg.layer_weights
        if cfg.layer_mean == "propagated":
            return [0.0] + [1.0 / cfg.num_layers] * cfg.num_layers
        return [1.0 / (cfg.num_layers + 1)] * (cfg.num_layers + 1)

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
