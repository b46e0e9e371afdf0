"""FREEDOM (Zhou & Shen, MM 2023): a frozen multimodal item-item graph over ID embeddings, and a user-item graph
denoised each epoch by degree-sensitive edge pruning."""
from __future__ import annotations

from typing import Optional

import torch
from pydantic import Field

from ..batches import PairBatch
from ..errors import GraphrecError
from ..graph.adjacency import NormalizedAdjacency
from ..graph.item_graph import mix_graphs
from ..graph.propagate import weighted_propagation
from ..losses import bpr_per_sample
from . import register
from .multimodal import ItemGraphConfig, MultimodalRecommender


class FREEDOMConfig(ItemGraphConfig):
    """FREEDOM keys (defaults: the official code's)."""

    edge_dropout: float = Field(0.8, ge=0, lt=1, description="share of user-item edges pruned each epoch, sampled "
                                "with probability proportional to 1 / sqrt(deg_u deg_i) kept (FREEDOM's 'dropout')")
    modality_weights: Optional[dict[str, float]] = Field(None, description="weight of each modality's kNN graph in "
                                                         "their sum (official: {image: 0.1, text: 0.9}); default: "
                                                         "equal weights")
    feature_loss_weight: float = Field(1e-4, ge=0, description="weight of the BPR terms scoring users against each "
                                       "modality's projected features (FREEDOM's reg_weight)")


@register("freedom")
class FREEDOM(MultimodalRecommender):
    """Items: LightGCN over the pruned user-item graph (full graph at evaluation) + S^L e_i with S the weighted sum
    of the modalities' binary kNN graphs of the raw features, built once and frozen."""

    config_class = FREEDOMConfig
    summary = "FREEDOM: frozen multimodal kNN item graph + degree-sensitive pruning of the user-item graph"

    def __init__(self, cfg: FREEDOMConfig, ctx):
        super().__init__(cfg, ctx)
        weights = cfg.modality_weights or {m: 1.0 / len(self.modalities) for m in self.modalities}
        if set(weights) != set(self.modalities):
            raise GraphrecError(f"model.modality_weights names {sorted(weights)}, but the model uses the "
                                f"modalities {self.modalities}; give one weight per modality")
        graphs = self.item_graphs(weighted=False)
        self.item_graph = mix_graphs([graphs[m] for m in self.modalities], [weights[m] for m in self.modalities])
        degree = self.graph.degree
        self.edge_keep_weight = (degree[self.graph.users] * degree[self.graph.items + self.num_users]).rsqrt()
        self.view = self.graph

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Keep (1 - edge_dropout) of the training edges, drawn without replacement with probability proportional to
        1 / sqrt(deg_u deg_i) (Gumbel top-k), and renormalize."""
        keep = round(len(self.edge_keep_weight) * (1.0 - self.cfg.edge_dropout))
        uniform = torch.rand(self.edge_keep_weight.shape, generator=generator, device=self.edge_keep_weight.device)
        chosen = (self.edge_keep_weight.log() - (-uniform.clamp_min(1e-20).log()).log()).topk(keep).indices
        self.view = NormalizedAdjacency(self.graph.users[chosen], self.graph.items[chosen], self.num_users,
                                        self.num_items)

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final embeddings (num_nodes or len(rows), dim): pruned graph while training, the full one otherwise."""
        cfg = self.cfg
        graph = self.view if self.training else self.graph
        table = weighted_propagation(graph, self.embedding, [1.0 / (cfg.num_layers + 1)] * (cfg.num_layers + 1), rows)
        items = self.embedding[self.num_users:]
        for _ in range(cfg.item_layers):
            items = torch.sparse.mm(self.item_graph, items)
        return self.with_item_rows(table, items, rows)

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """BPR + L2 on final vectors + feature_loss_weight * sum_m BPR(u, W_m x_pos + b_m, W_m x_neg + b_m)."""
        rows, index = self.batch_rows(batch)
        table = self.propagate(rows)
        out = self.pairwise_loss(batch, table, index)
        u, _, _, neg = self.pair_embeddings(batch, table, index)
        feature_bpr = u.new_zeros(())
        for m in self.modalities:
            pos_scores = (u * self.projected(m, batch.pos)).sum(1)
            neg_feats = self.projected(m, neg)
            neg_scores = (u * neg_feats).sum(-1) if neg.dim() == 1 else (u.unsqueeze(1) * neg_feats).sum(-1)
            feature_bpr = feature_bpr + bpr_per_sample(pos_scores, neg_scores).mean()
        out["feature_bpr"] = feature_bpr
        out["loss"] = out["loss"] + self.cfg.feature_loss_weight * feature_bpr
        return out
