"""SGL (Wu et al., SIGIR 2021): LightGCN + InfoNCE between two dropout views of the graph, redrawn every epoch."""
from __future__ import annotations

from typing import Literal, Optional, Union

import torch
from pydantic import Field

from ..graph.adjacency import NormalizedAdjacency
from ..graph.propagate import layerwise_propagation, weighted_propagation
from ..graph.views import edge_dropout_view, node_dropout_view, per_layer_edge_dropout
from . import register
from .contrastive import ContrastiveConfig, ContrastiveLightGCN

View = Union[NormalizedAdjacency, list[NormalizedAdjacency]]  # one adjacency, or one per layer (random_walk)


class SGLConfig(ContrastiveConfig):
    """SGL keys; defaults from SELFRec's SGL.yaml (2 layers, lambda 0.1, edge dropout 0.1, tau 0.2)."""

    view: Literal["edge", "node", "random_walk"] = Field(
        "edge", description="view kind: edge dropout (ED), node dropout (ND) or another edge dropout per layer (RW)")
    view_rate: float = Field(0.1, ge=0, lt=1, description="dropout rate of the views' edges (nodes for node), in [0, 1)")


@register("sgl")
class SGL(ContrastiveLightGCN):
    """Two views drawn once per epoch by edge, node or per-layer edge dropout, each propagated like the clean graph."""

    config_class = SGLConfig
    summary = "SGL: LightGCN + InfoNCE between two edge/node/random-walk dropout views redrawn each epoch"

    def __init__(self, cfg: SGLConfig, ctx):
        super().__init__(cfg, ctx)
        self.views: Optional[tuple[View, View]] = None

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Draw the epoch's two views with the trainer's view generator."""
        self.views = (self.draw_view(generator), self.draw_view(generator))

    def draw_view(self, generator: torch.Generator) -> View:
        """One renormalized dropout view of the training graph (a list of num_layers for random_walk)."""
        cfg = self.cfg
        if cfg.view == "node":
            return node_dropout_view(self.graph, cfg.view_rate, generator)
        if cfg.view == "random_walk":
            return per_layer_edge_dropout(self.graph, cfg.view_rate, cfg.num_layers, generator)
        return edge_dropout_view(self.graph, cfg.view_rate, generator)

    def propagate_view(self, view: View, rows: Optional[torch.Tensor]) -> torch.Tensor:
        """Final embeddings over a view, (len(rows), d) or (num_nodes, d)."""
        if isinstance(view, list):
            return layerwise_propagation(view, self.embedding, self.layer_weights, rows, self.cfg.backend)
        return weighted_propagation(view, self.embedding, self.layer_weights, rows, self.cfg.backend)

    def encode(self, rows):
        """The clean (or MixGCF) table and the two views' embeddings at rows."""
        if self.views is None:
            raise RuntimeError(f"{type(self).__name__}: call on_epoch_start(epoch, generator) to draw the views first")
        return (self.rec_table(rows), *(self.propagate_view(view, rows) for view in self.views))
