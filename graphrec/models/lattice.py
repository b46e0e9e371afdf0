"""LATTICE (Zhang et al., MM 2021): item-item graphs learned from projected features, mixed with the raw-feature kNN
graphs, convolve the item ID embeddings; added (normalized) to LightGCN's item embeddings."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from ..graph.item_graph import EdgeList, edge_dots, edge_matmul, normalized_edge_values, symmetric_edges
from ..graph.knn import topk_cosine_neighbours
from ..graph.propagate import weighted_propagation
from . import register
from .multimodal import ItemGraphConfig, MultimodalRecommender


class LATTICEConfig(ItemGraphConfig):
    """LATTICE keys (defaults: the MMRec code's)."""

    lambda_coeff: float = Field(0.9, ge=0, le=1, description="weight of the fixed raw-feature kNN graph against the "
                                "learned one: S_m = (1 - lambda) learned_m + lambda raw_m")


@register("lattice")
class LATTICE(MultimodalRecommender):
    """Item graph sum_m softmax(a)_m [(1 - lambda) L_m + lambda R_m]: R_m the weighted kNN graph of the raw features
    (fixed), L_m the kNN graph of the projected features, its cosine edge weights differentiable.

    The official code recomputes L_m's neighbours with a dense items x items product every batch; here they are
    recomputed (chunked, top-k) at each epoch start and kept in the checkpoint, so a resumed epoch uses the same.
    """

    config_class = LATTICEConfig
    summary = "LATTICE: learned + raw-feature item-item graphs over ID embeddings, added to LightGCN"

    def __init__(self, cfg: LATTICEConfig, ctx):
        super().__init__(cfg, ctx)
        self.raw_graphs = self.item_graphs(weighted=True)
        self.modality_logits = torch.nn.Parameter(torch.zeros(len(self.modalities)))
        self.register_buffer("neighbours", torch.zeros(len(self.modalities), self.num_items,
                                                       min(cfg.knn_k, self.num_items - 1), dtype=torch.int64))
        self.register_buffer("neighbours_epoch", torch.tensor(-1))
        self._edges: tuple[tuple, list[EdgeList]] = ((), [])
        self.learn_neighbours()

    @torch.no_grad()
    def learn_neighbours(self) -> None:
        """Top-k cosine neighbours of every item's projected features, per modality, into `neighbours`."""
        for j, m in enumerate(self.modalities):
            self.neighbours[j] = topk_cosine_neighbours(self.projected(m), self.cfg.knn_k).index

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Relearn the neighbours unless this epoch already did (a resumed one keeps the checkpoint's)."""
        if int(self.neighbours_epoch) != epoch:
            self.learn_neighbours()
            self.neighbours_epoch.fill_(epoch)

    def learned_edges(self) -> list[EdgeList]:
        """Per modality, the edges of the symmetrized learned kNN graph, rebuilt only when `neighbours` changes
        (relearned, loaded from a checkpoint or moved), not at every step."""
        key = (self.neighbours._version, self.neighbours.data_ptr())
        if self._edges[0] != key:
            self._edges = (key, [symmetric_edges(neighbours) for neighbours in self.neighbours])
        return self._edges[1]

    def item_convolution(self, items: torch.Tensor) -> torch.Tensor:
        """(num_items, dim) item_layers convolutions of `items` over the mixed item graph."""
        cfg, mix = self.cfg, torch.softmax(self.modality_logits, 0)
        learned = []
        for edges, m in zip(self.learned_edges(), self.modalities):
            proj = F.normalize(self.projected(m), dim=1)
            cosine = edge_dots(edges, proj, proj).clamp_min(0.0)
            learned.append((edges, normalized_edge_values(edges.row, edges.col, cosine, self.num_items)))
        for _ in range(cfg.item_layers):
            items = sum(mix[j] * ((1 - cfg.lambda_coeff) * edge_matmul(*learned[j], items)
                                  + cfg.lambda_coeff * torch.sparse.mm(self.raw_graphs[m], items))
                        for j, m in enumerate(self.modalities))
        return items

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """LightGCN (mean of num_layers + 1 layers) + the normalized item convolution on the item rows."""
        layers = self.cfg.num_layers + 1
        table = weighted_propagation(self.graph, self.embedding, [1.0 / layers] * layers, rows)
        items = self.item_convolution(self.embedding[self.num_users:])
        return self.with_item_rows(table, F.normalize(items, dim=1), rows)
