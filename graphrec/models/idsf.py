"""IDSF (Liu et al., arXiv 2311.05956): ID embeddings as subtle features of content (hierarchical attention with
contrastive terms) and of structure (a weightless GCN per modality with the IDs added after every layer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from ..batches import PairBatch
from ..data.sampling import subset_or_all
from ..graph.adjacency import random_walk_adjacency
from ..graph.propagate import injected_mean_propagation
from ..losses import info_nce_intra
from ..schema import all_or_count
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
    cl_items: Union[Literal["all"], int] = Field(
        512, description="items each contrastive term runs over per step: all (the official loss, O(items^2 d)) "
        "or this many drawn uniformly without replacement each step (seeded; all items when >= num_items), each "
        "one an anchor whose negatives are the other drawn items in both views")
    cl_anchors: Literal["all", "batch"] = Field("all", description="contrastive anchors: every item of the "
                                                "cl_items set, or the batch's positive items (a deviation; "
                                                "negatives: the cl_items set plus these)")
    cl_chunk_rows: int = Field(4096, ge=1, description="anchors per chunk of the contrastive loss; with more "
                               "anchors than one chunk each chunk is recomputed in backward (memory: chunk x "
                               "items logits)")

    @field_validator("cl_items", mode="before")
    @classmethod
    def _all_or_count(cls, value):
        if all_or_count(value, 2):
            return value
        raise ValueError("expected 'all' or a number of items >= 2, e.g. 512")


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
    """One forward: the final vectors of some node rows and the content views of some items (the contrastive set)."""

    table: torch.Tensor  # (len(rows) or num_nodes, dim)
    features: dict[str, torch.Tensor]  # F_m = W_m x_m + b_m, (len(items) or num_items, dim)
    item_ids: dict[str, torch.Tensor]  # E_m, same rows
    content: dict[str, torch.Tensor]  # h_m, same rows
    fused: torch.Tensor  # h_f, same rows


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
        self.structure_graph_t = (self.structure_graph.to_sparse_coo().t().coalesce().to_sparse_csr()
                                  if cfg.structure_adjacency == "rw" else self.structure_graph)
        seed = int(torch.randint(2 ** 62, (1,)))  # drawn from the run's seeded global generator
        self.batch_gen = torch.Generator(device=ctx.device).manual_seed(seed)  # the cl_items draws

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
        inject = (torch.cat([torch.cat([user_ids, ids[m]]) for m in mods], 1) * cfg.gamma if cfg.id_in_structure
                  else None)
        total = injected_mean_propagation(self.structure_graph, self.structure_graph_t, h, cfg.num_layers, inject)
        return total.view(len(total), len(mods), -1)

    def content_views(self, features: dict[str, torch.Tensor], items: Optional[torch.Tensor]) -> IDSFOutput:
        """F_m, E_m, h_m = Att_m(F_m, E_m) (F_m without id_in_content) and h_f of `items` (default all), (n, dim)
        each, from the (num_items, dim) projected features; `table` is left empty."""
        cfg, mods = self.cfg, self.modalities
        feats = {m: features[m] if items is None else features[m][items] for m in mods}
        ids = {m: self.item_ids(m) if items is None else self.item_ids(m)[items] for m in mods}
        content = {m: (self.content_attention[m](torch.stack([feats[m], ids[m]], 1))[0] if cfg.id_in_content
                       else feats[m]) for m in mods}
        fused = self.fusion_attention(torch.stack([content[m] for m in mods], 1))[0]
        return IDSFOutput(fused.new_empty(0, fused.shape[1]), feats, ids, content, fused)

    def encode(self, rows: Optional[torch.Tensor] = None, items: Optional[torch.Tensor] = None) -> IDSFOutput:
        """Final vectors of node `rows` (default all) and content views of `items` (default all). The projections
        and the structure propagation cover every node; attention, fusion and heads only the rows and items asked."""
        cfg, mods, users = self.cfg, self.modalities, self.num_users
        features = {m: self.projected(m) for m in mods}  # every item: the structure's H_0
        structure = self.structure(features, {m: self.item_ids(m) for m in mods})
        if rows is None:
            rows = torch.arange(len(structure), device=structure.device)
        is_item = rows >= users
        item_rows = rows[is_item] - users
        every = torch.arange(self.num_items, device=rows.device)
        asked = torch.cat([item_rows, every if items is None else items])
        needed, where = torch.unique(asked, return_inverse=True)
        if len(needed) == self.num_items:  # every item: no gather (needed is 0..num_items-1, so where = asked)
            needed, where = None, asked
        views = self.content_views(features, needed)
        fused = views.fused[where[:len(item_rows)]]
        item_vectors = self.item_attention(structure[rows[is_item]])[0]
        item_vectors = (self.structure_head(item_vectors) + self.content_head(fused) if cfg.head == "mlp_ln" else
                        item_vectors + F.normalize(fused, dim=1))
        table = item_vectors.new_empty(len(rows), item_vectors.shape[1])
        table = table.index_put((~is_item,), self.user_attention(structure[rows[~is_item]])[0])
        table = table.index_put((is_item,), item_vectors)
        if items is None:
            return IDSFOutput(table, views.features, views.item_ids, views.content, views.fused)
        at = where[len(item_rows):]
        return IDSFOutput(table, {m: v[at] for m, v in views.features.items()},
                          {m: v[at] for m, v in views.item_ids.items()}, {m: v[at] for m, v in views.content.items()},
                          views.fused[at])

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final (num_nodes, dim) embeddings, or their `rows` (projections and structure always cover every node)."""
        return self.encode(rows, items=rows.new_empty(0) if rows is not None else None).table

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

    def contrastive_items(self, batch: PairBatch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(n,) the step's contrastive item set (every item, or cl_items drawn uniformly without replacement, plus
        the batch's positives with cl_anchors: batch) and the anchors' positions in it (None: every one)."""
        cfg, count, device = self.cfg, self.num_items, batch.pos.device
        drawn = subset_or_all(count, cfg.cl_items, self.batch_gen)
        items = torch.arange(count, device=device) if drawn is None else drawn.to(device)
        if cfg.cl_anchors == "all":
            return items, None
        positives = torch.unique(batch.pos)
        items = torch.unique(torch.cat([items, positives]))
        return items, torch.searchsorted(items, positives)

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 of the final vectors + cl_weight * sum of the contrastive terms over the step's items."""
        cfg = self.cfg
        rows, index = self.batch_rows(batch)
        items, anchors = self.contrastive_items(batch)
        out = self.encode(rows, items)
        losses = self.pairwise_loss(batch, out.table, index)
        cl = sum((info_nce_intra(a, b, cfg.cl_tau, anchors, cfg.cl_chunk_rows) for a, b in self.contrastive_pairs(out)),
                 out.table.new_zeros(()))
        losses["cl"] = cl
        losses["loss"] = losses["loss"] + cfg.cl_weight * cl
        return losses
