"""The graph contrastive family's shared keys and loss: LightGCN + ssl_weight x a contrastive loss between two views.

SGL, SGCL, SimGCL and XSimGCL differ only in how their two views are made (`encode`); the loss composition, the
contrastive loss (InfoNCE or SGCL's symmetric loss, for every model), MixGCF negatives and the model's own
per-batch generator are here. See docs/contrastive.md.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
from pydantic import Field

from ..draws import uniform
from ..errors import GraphrecError
from ..graph.propagate import spmm
from ..graph.views import replace_rows_with_noise
from ..losses import contrast_nodes, info_nce, symmetric_contrastive
from ..negatives import mixgcf_negatives
from ..schema import default_of  # noqa: F401 (re-exported for the family's configs)
from .lightgcn import LightGCN, LightGCNConfig


SSLLoss = Literal["infonce", "symmetric"]


class ContrastiveConfig(LightGCNConfig):
    """Keys every graph contrastive model shares: the contrastive loss, its weight, and the BPR negatives."""

    num_layers: int = default_of(LightGCNConfig, "num_layers", 2,
                                 description="propagation layers (2 in the SELFRec and SGCL codes)")
    ssl_loss: SSLLoss = Field(
        "infonce", description="contrastive loss: infonce (SGL, SimGCL, XSimGCL) or symmetric (SGCL's RINCE form)")
    ssl_weight: float = Field(0.1, ge=0, description="weight of the contrastive loss added to BPR (lambda / beta)")
    ssl_temperature: float = Field(0.2, gt=0, description="temperature tau of the cosine logits")
    ssl_q: float = Field(0.01, gt=0, le=1, description="symmetric loss: exponent q in (0, 1] (q -> 0: InfoNCE-like, "
                                                       "q = 1: linear, most tolerant of noisy views)")
    ssl_lam: float = Field(0.1, gt=0, description="symmetric loss: weight lambda of the denominator term")
    ssl_double_positive: bool = Field(True, description="symmetric loss: lambda (p + S) with p inside S, as the "
                                                        "SGCL code (false: lambda S)")
    ssl_bidirectional: bool = Field(False, description="average the loss over both directions (view 1 -> 2 and "
                                                       "2 -> 1); false: view 1 -> 2 only, as the reference codes")
    ssl_joint: bool = Field(False, description="contrast the batch's users and items as one set (SGCL code) instead "
                                               "of two summed losses (SGL, SimGCL)")
    ssl_noise_share: float = Field(0.0, ge=0, lt=1, description="robustness experiment: share of the contrasted "
                                   "nodes whose second view is replaced by a random N(0, 1) embedding at every batch "
                                   "(pure-noise views on purpose; 0: off, the method as published)")
    mixgcf: bool = Field(False, description="BPR negatives synthesized by MixGCF positive and hop mixing over "
                                            "train.negative_candidates uniform candidates (SGCL code: 40)")
    mixgcf_mix: Literal["element", "layer"] = Field(
        "element", description="MixGCF mixing weights: one per entry (SGCL code) or per sample and layer (MixGCF)")
    mixgcf_dropout: float = Field(0.1, ge=0, lt=1, description="MixGCF: dropout on each propagated layer of the BPR "
                                                               "branch, fed forward (SGCL code: 0.1)")


class ContrastiveLightGCN(LightGCN):
    """LightGCN whose loss is BPR + L2 + ssl_weight x contrast(view 1, view 2) over the batch's users and items.

    A subclass says how its views are made by `encode(rows)`. The model keeps its own generator, `batch_gen`, for
    what it draws at every batch (noise, MixGCF mixing, dropout); the trainer saves its state in checkpoints.
    """

    config_class = ContrastiveConfig
    per_sample_loss = True  # the BPR part goes through reduce_samples, so dro.enabled applies

    def __init__(self, cfg: ContrastiveConfig, ctx):
        super().__init__(cfg, ctx)
        train = ctx.train
        if cfg.mixgcf and (train.negative_candidates < 2 or train.num_negatives != 1):
            raise GraphrecError(f"model.mixgcf synthesizes one negative per positive from train.negative_candidates "
                                f"uniform candidates; set train.num_negatives: 1 and train.negative_candidates > 1 "
                                f"(SGCL: 40), not {train.num_negatives} and {train.negative_candidates}")
        seed = int(torch.randint(2 ** 62, (1,)))  # drawn from the run's seeded global generator
        self.batch_gen = torch.Generator(device=ctx.device).manual_seed(seed)

    def encode(self, rows: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pairwise loss's table and the two views at `rows`, (len(rows), d) each ((num_nodes, d) without rows).

        With model.mixgcf the table is a (len(rows), L+1, d) layer stack (see `rec_table`).
        """
        raise NotImplementedError

    def rec_table(self, rows: Optional[torch.Tensor]) -> torch.Tensor:
        """The clean LightGCN rows (len(rows), d), or with model.mixgcf the (len(rows), L+1, d) layers of the clean
        graph with dropout on each propagated layer, fed forward (the SGCL code's BPR branch)."""
        if not self.cfg.mixgcf:
            return self.propagate(rows)
        rate, h = self.cfg.mixgcf_dropout, self.embedding
        layers = [h]
        for _ in range(self.cfg.num_layers):
            h = spmm(self.graph, h, self.cfg.backend)
            if rate > 0:
                keep = uniform(h.shape, self.batch_gen, h.device) >= rate
                h = h * keep / (1 - rate)
            layers.append(h)
        return torch.stack(layers if rows is None else [layer[rows] for layer in layers], 1)

    def pair_embeddings(self, batch, table, index):
        """As Recommender's; from a (n, L+1, d) layer table each negative is synthesized by MixGCF from the batch's
        (b, 1, c) candidates: u, p and n (b, d) pooled with the layer weights, and the (b, L+1) candidates kept at
        each layer as the negatives used (their L2 counts 1 / (L+1) each)."""
        if table.dim() == 2:
            return super().pair_embeddings(batch, table, index)
        weights = table.new_tensor(self.layer_weights)
        pooled = torch.einsum("nld,l->nd", table, weights)
        u, p = pooled[index.users], pooled[index.pos]
        synthetic, choice = mixgcf_negatives(u, table[index.pos], table, index.neg[:, 0], self.batch_gen,
                                             self.cfg.mixgcf_mix, return_choice=True)
        return u, p, torch.einsum("bld,l->bd", synthetic, weights), batch.neg[:, 0].gather(1, choice)

    def contrast(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """Scalar contrastive loss of (n, d) views, row i's positive being row i: InfoNCE or the symmetric loss."""
        cfg = self.cfg
        if cfg.ssl_loss == "symmetric":
            return symmetric_contrastive(view1, view2, cfg.ssl_temperature, cfg.ssl_q, cfg.ssl_lam,
                                         double_positive=cfg.ssl_double_positive,
                                         bidirectional=cfg.ssl_bidirectional)
        if cfg.ssl_bidirectional:
            return (info_nce(view1, view2, cfg.ssl_temperature) + info_nce(view2, view1, cfg.ssl_temperature)) / 2
        return info_nce(view1, view2, cfg.ssl_temperature)

    def contrastive_loss(self, batch, rows: torch.Tensor, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """Scalar sum over the contrasted groups (users and items jointly, or apart) of `contrast`, from (len(rows), d)
        views at the batch's sorted distinct rows; with model.ssl_noise_share that share of each group's second
        view is pure noise (drawn from batch_gen)."""
        total, share = view1.new_zeros(()), self.cfg.ssl_noise_share
        for nodes in contrast_nodes(batch.users, batch.pos, self.num_users, self.cfg.ssl_joint):
            at = torch.searchsorted(rows, nodes)
            second = replace_rows_with_noise(view2[at], share, self.batch_gen) if share else view2[at]
            total = total + self.contrast(view1[at], second)
        return total

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 (on `encode`'s table) + ssl_weight * the contrastive loss of its views; 'ssl' reported."""
        rows, index = self.batch_rows(batch)
        table, view1, view2 = self.encode(rows)
        out = self.pairwise_loss(batch, table, index)
        ssl = self.contrastive_loss(batch, rows, view1, view2)
        out.update(loss=out["loss"] + self.cfg.ssl_weight * ssl, ssl=ssl)
        return out

    @torch.no_grad()
    def view_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views of every node, (num_nodes, d) each, drawn as training draws them (after on_epoch_start)."""
        _, view1, view2 = self.encode(None)
        return view1, view2
