"""IDSF (Liu et al., arXiv 2311.05956): ID embeddings as subtle features of content (hierarchical attention with
contrastive terms) and of structure (a weightless GCN per modality with the IDs added after every layer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from ..batches import PairBatch
from ..graph.adjacency import random_walk_adjacency
from ..losses import info_nce_intra
from . import register
from .multimodal import MultimodalConfig, MultimodalRecommender


class IDSFConfig(MultimodalConfig):
    """IDSF keys (defaults: the official code's, except finetune_features and cl_anchors' chunking)."""

    num_layers: int = Field(2, ge=0, description="structure propagation layers L (mean over layers 0..L)")
    gamma: float = Field(0.3, ge=0, description="weight of the ID embeddings added after every structure layer")
    id_in_content: bool = Field(True, description="fuse each modality's item IDs into its projected features by "
                                "attention (false: the 'without ID in content' ablation, h_m = W_m x_m + b_m)")
    id_in_structure: bool = Field(True, description="add gamma * ID embeddings after every structure layer (false: "
                                  "the 'without ID in structure' ablation)")
    structure_adjacency: Literal["rw", "sym"] = Field("rw", description="structure graph: rw = D^-1 (A + I) (the "
                                                      "official code), sym = D^-1/2 A D^-1/2 (LightGCN's)")
    head: Literal["mlp_ln", "v0"] = Field("mlp_ln", description="item = head_s(structure) + head_c(content), each "
                                          "head LayerNorm(ReLU(W x + b)) (code HEAD); v0: structure + "
                                          "l2-normalized content (the 2023-10 code)")
    cl_weight: float = Field(1.0, ge=0, description="lambda: weight of the summed contrastive terms")
    cl_tau: float = Field(0.5, gt=0, description="contrastive temperature")
    cl_anchors: Literal["all", "batch"] = Field("all", description="contrastive anchors: all items (the official "
                                                "loss, O(items^2) per step) or the batch's positive items (a "
                                                "deviation; negatives are still all items)")
    cl_chunk_rows: int = Field(4096, ge=1, description="anchors per chunk of the contrastive loss (memory: "
                                                       "chunk x items logits, recomputed in backward)")


class CandidateAttention(torch.nn.Module):
    """Additive attention over M candidates per row: q(x) = w^T tanh(W x + b), softmax over the candidates."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = torch.nn.Linear(dim, dim)
        self.query = torch.nn.Linear(dim, 1, bias=False)

    def forward(self, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) weighted sum and (n, M) weights (rows sum to one) of (n, M, dim) candidates."""
        weights = torch.softmax(self.query(torch.tanh(self.project(candidates))).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * candidates).sum(1), weights


class Head(torch.nn.Sequential):
    """LayerNorm(ReLU(W x + b)), dim -> dim, eps 1e-6 (the official code's heads)."""

    def __init__(self, dim: int):
        super().__init__(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.LayerNorm(dim, eps=1e-6))


@dataclass
class IDSFOutput:
    """One full forward: the (num_nodes, dim) final table and the content views the contrastive terms tie."""

    table: torch.Tensor
    features: dict[str, torch.Tensor]  # F_m = W_m x_m + b_m, (num_items, dim)
    item_ids: dict[str, torch.Tensor]  # E_m, (num_items, dim)
    content: dict[str, torch.Tensor]  # h_m, (num_items, dim)
    fused: torch.Tensor  # h_f, (num_items, dim)


@register("idsf")
class IDSF(MultimodalRecommender):
    """Users: attention over the modalities' structure vectors. Items: head_s(attention over the structure vectors)
    + head_c(h_f), h_f = attention over h_m = Att_m(F_m, E_m). Structure per modality m: H_0 = rown([P_m; F_m]),
    H_l = A H_{l-1} + gamma [E_u; E_m], mean over l. Loss: BPR + reg * L2 of the final vectors + cl_weight * the sum
    of InfoNCE terms (F_m, h_m), (E_m, h_m), (h_m, h_f) (those that differ under the ablation keys).

    `self.embedding` holds every ID table: (num_users + M * num_items, dim), the shared users' E_u then each
    modality's item IDs E_m; `user_preference[m]` is P_m. All start normal(0, init_std) (the code: Xavier).
    """

    config_class = IDSFConfig
    summary = "IDSF: ID embeddings fused into content (attention + contrastive) and structure (per-modality GCN)"

    def __init__(self, cfg: IDSFConfig, ctx):
        super().__init__(cfg, ctx)
        dim, count = cfg.embedding_dim, len(self.modalities)
        self.embedding = torch.nn.Parameter(torch.empty(self.num_users + count * self.num_items, dim))
        self.user_preference = torch.nn.ParameterDict({m: torch.nn.Parameter(torch.empty(self.num_users, dim))
                                                       for m in self.modalities})
        for table in [self.embedding, *self.user_preference.values()]:
            torch.nn.init.normal_(table, std=cfg.init_std)
        self.content_attention = torch.nn.ModuleDict({m: CandidateAttention(dim) for m in self.modalities})
        self.fusion_attention, self.user_attention, self.item_attention = (CandidateAttention(dim) for _ in range(3))
        self.structure_head, self.content_head = Head(dim), Head(dim)
        self.structure_graph = (random_walk_adjacency(ctx.graph) if cfg.structure_adjacency == "rw" else
                                ctx.graph.csr)

    def item_ids(self, modality: str) -> torch.Tensor:
        """(num_items, dim) the item ID table E_m of a modality."""
        start = self.num_users + self.modalities.index(modality) * self.num_items
        return self.embedding[start:start + self.num_items]

    def structure(self, features: dict[str, torch.Tensor], ids: dict[str, torch.Tensor]) -> torch.Tensor:
        """(num_nodes, M, dim) per-modality structure vectors: mean over l = 0..L of H_l, H_0 = rown([P_m; F_m]),
        H_l = A H_{l-1} (+ gamma [E_u; E_m] with id_in_structure); one sparse product for all modalities."""
        cfg, mods = self.cfg, self.modalities
        user_ids = self.embedding[:self.num_users]
        h = torch.cat([F.normalize(torch.cat([self.user_preference[m], features[m]]), dim=1) for m in mods], 1)
        inject = torch.cat([torch.cat([user_ids, ids[m]]) for m in mods], 1) * cfg.gamma
        total = h
        for _ in range(cfg.num_layers):
            h = torch.sparse.mm(self.structure_graph, h)
            h = h + inject if cfg.id_in_structure else h
            total = total + h
        return torch.stack((total / (cfg.num_layers + 1)).chunk(len(mods), dim=1), 1)

    def encode(self) -> IDSFOutput:
        """The full forward pass (every user and item)."""
        cfg, mods = self.cfg, self.modalities
        features = {m: self.projected(m) for m in mods}
        ids = {m: self.item_ids(m) for m in mods}
        content = {m: (self.content_attention[m](torch.stack([features[m], ids[m]], 1))[0] if cfg.id_in_content
                       else features[m]) for m in mods}
        fused = self.fusion_attention(torch.stack([content[m] for m in mods], 1))[0]
        structure = self.structure(features, ids)
        users = self.user_attention(structure[:self.num_users])[0]
        items = self.item_attention(structure[self.num_users:])[0]
        items = (self.structure_head(items) + self.content_head(fused) if cfg.head == "mlp_ln" else
                 items + F.normalize(fused, dim=1))
        return IDSFOutput(torch.cat([users, items]), features, ids, content, fused)

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final (num_nodes, dim) embeddings, or their `rows` (the forward is always full)."""
        table = self.encode().table
        return table if rows is None else table[rows]

    def contrastive_pairs(self, out: IDSFOutput) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The (view1, view2) pairs the contrastive terms tie: (F_m, h_m) and (E_m, h_m) per modality when IDs enter
        the content, and (h_m, h_f) when several modalities are fused."""
        pairs = []
        for m in self.modalities:
            if self.cfg.id_in_content:
                pairs += [(out.features[m], out.content[m]), (out.item_ids[m], out.content[m])]
            if len(self.modalities) > 1:
                pairs.append((out.content[m], out.fused))
        return pairs

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 of the final vectors + cl_weight * sum of the contrastive terms."""
        cfg = self.cfg
        out = self.encode()
        losses = self.pairwise_loss(batch, out.table, self.node_index(batch))
        anchors = None if cfg.cl_anchors == "all" else torch.unique(batch.pos)
        pairs = self.contrastive_pairs(out)
        cl = sum((info_nce_intra(a, b, cfg.cl_tau, anchors, cfg.cl_chunk_rows) for a, b in pairs),
                 out.table.new_zeros(()))
        losses["cl"] = cl
        losses["loss"] = losses["loss"] + cfg.cl_weight * cl
        return losses
