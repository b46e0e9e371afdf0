"""Tiny models that prove each extension point (not registered for users: tests register them on import).

Each is a few lines over the shared pieces, as docs/extending.md shows: a per-epoch view with a contrastive term,
a pointwise FM-like model, a two-stage model with two optimizers, and a model with its own scorer.
"""
from __future__ import annotations

from typing import Optional

import torch

from graphrec.batches import GraphStep, PairBatch, PointBatch
from graphrec.graph.propagate import weighted_propagation
from graphrec.losses import info_nce
from graphrec.models import MODELS, register
from graphrec.models.base import Stage
from graphrec.models.fields import FieldEmbedding, fm_interaction
from graphrec.models.lightgcn import LightGCN
from graphrec.models.mf import MF
from graphrec.models.pointwise import PointwiseModel


class TinyViewContrast(LightGCN):
    """LightGCN + InfoNCE between the batch's rows and the same rows over an edge-dropped view redrawn each epoch."""

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        self.view = self.graph.drop_edges(0.3, generator)

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        rows, index = self.batch_rows(batch)
        out = self.pairwise_loss(batch, self.propagate(rows), index)
        view_rows = weighted_propagation(self.view, self.embedding, self.layer_weights, rows)
        out["ssl"] = info_nce(self.propagate(rows), view_rows, 0.2)
        out["loss"] = out["loss"] + 0.05 * out["ssl"]
        return out


class TinyFM(PointwiseModel):
    """Factorization machine: bias + linear + sum_{i<j} <v_i, v_j> over the row's features."""

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.fields = FieldEmbedding(ctx.dataset.fields.space.num_features, cfg.embedding_dim, cfg.init_std)

    def predict(self, batch: PointBatch) -> torch.Tensor:
        emb, linear = self.fields(batch.features, batch.values)
        return linear + fm_interaction(emb)


class TwoStage(LightGCN):
    """Pre-trains a linear head for 2 whole-graph epochs (embeddings frozen), then BPR through the head, each group
    with its own optimizer."""

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.head = torch.nn.Linear(cfg.embedding_dim, cfg.embedding_dim)

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"main": [self.embedding], "head": list(self.head.parameters())}

    def stages(self) -> list[Stage]:
        return [Stage("pretrain", epochs=2, groups=("head",), batch_kind="graph", evaluate=False),
                Stage("main", groups=("main", "head"))]

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.head(super().propagate(rows))

    def loss(self, batch) -> dict[str, torch.Tensor]:
        if isinstance(batch, GraphStep):  # reconstruct the (detached) propagated table through the head
            target = super().propagate().detach()
            return {"loss": (self.head(target) - 2.0 * target).pow(2).mean()}
        return super().loss(batch)


class ItemBiasMF(MF):
    """MF with a learned item bias, which its scorer adds to every user's dot products."""

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.item_bias = torch.nn.Parameter(torch.zeros(self.num_items))

    def scorer(self):
        user_emb, item_emb = self.embeddings()
        bias = self.item_bias.detach()
        return lambda users: user_emb[users] @ item_emb.t() + bias


for _name, _cls in {"tiny_view_contrast": TinyViewContrast, "tiny_fm": TinyFM, "tiny_two_stage": TwoStage,
                    "tiny_item_bias_mf": ItemBiasMF}.items():
    if _name not in MODELS:
        register(_name)(_cls)
