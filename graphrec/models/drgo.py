"""DRGO (Zhao et al., WWW 2025): latent diffusion denoising of VGAE embeddings, and group DRO with an entropy (KL)
regularised adversary whose group weights a Sinkhorn distance to high-centrality nodes shapes. docs/ood-models.md."""
from __future__ import annotations

import math

import torch
from pydantic import Field

from ..batches import GraphStep, PairBatch
from ..dro import sinkhorn_divergences
from ..errors import GraphrecError
from ..graph.centrality import sampled_betweenness
from . import register
from ..schema import with_defaults
from .base import ModelContext
from .latent import DiffusionConfig, LatentDiffusionConfig, LatentDiffusionRecommender


DRGODiffusion = with_defaults(DiffusionConfig, "DRGODiffusion", noise_min=1e-4, noise_max=0.02, sampling_steps=0,
                              time_dim=16, normalize_input=True)


class DRGOConfig(LatentDiffusionConfig):
    """DRGO keys: the latent-diffusion keys with DRGO's defaults, and the Sinkhorn shaping of the DRO weights."""

    diffusion: DRGODiffusion = Field(
        default_factory=DRGODiffusion,
        description="the latent diffusion (DRGO: linear-var 1e-5..2e-3, T = 100, chain from the clean latent)")
    recon_weight_end: float | None = Field(0.01, gt=0, description="recon_weight at the last epoch, reached "
                                                                   "geometrically (none: constant)")
    sinkhorn_weight: float = Field(1.0, ge=0, description="gamma: group weights softmax((L_g - gamma * S_g) / tau), "
                                                          "S_g the Sinkhorn distance of the group to the nominal nodes")
    nominal_fraction: float = Field(0.05, gt=0, le=1, description="share of nodes, by betweenness centrality, that "
                                                                  "form the nominal distribution")
    centrality_pivots: int = Field(100, ge=1, description="BFS pivots of the sampled betweenness centrality")
    sinkhorn_points: int = Field(64, ge=2, description="at most this many points per cloud in a Sinkhorn distance")
    sinkhorn_iterations: int = Field(100, ge=1, description="at most this many log-domain Sinkhorn iterations per "
                                                            "transport problem")
    sinkhorn_tolerance: float = Field(1e-4, ge=0, description="stop the Sinkhorn iterations once no dual potential "
                                                              "moves by more than this (cost units; 0: all iterations)")
    sinkhorn_blur: float = Field(0.05, gt=0, description="entropic blur epsilon (Euclidean ground cost)")


@register("drgo")
class DRGO(LatentDiffusionRecommender):
    """BPR on the LightGCN read-out of denoised VGAE latents, reduced by group DRO (default: K-means user clusters),
    plus diffusion and reconstruction losses; whole-graph pre-training of the latent objective first."""

    config_class = DRGOConfig
    summary = "DRGO: latent diffusion denoising + entropy-regularised group DRO with a Sinkhorn-shaped adversary"
    dro_defaults = {"enabled": True, "groups": "user_cluster", "num_groups": 5}

    def __init__(self, cfg: DRGOConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.shaped = ctx.dro.enabled and cfg.sinkhorn_weight > 0
        if self.shaped and ctx.dro.groups == "sample":
            raise GraphrecError("model.sinkhorn_weight > 0 shapes group weights, but dro.groups is 'sample'; set "
                                "dro.groups: user_cluster (or popularity), or model.sinkhorn_weight: 0")
        if self.shaped:
            pivots = torch.randperm(self.graph.num_nodes, device=ctx.device)[:cfg.centrality_pivots]
            centrality = sampled_betweenness(self.graph, pivots)
            count = max(2, math.ceil(cfg.nominal_fraction * self.graph.num_nodes))
            self.register_buffer("nominal", centrality.topk(count).indices, persistent=False)

    def graph_loss(self, step: GraphStep) -> dict[str, torch.Tensor]:
        """L_pre = diffusion + kappa * reconstruction over every training edge (and one sampled negative each)."""
        objective, terms, _ = self.latent_objective(self.graph, *self.training_edges())
        return {"loss": objective, **terms}

    def subsample(self, points: torch.Tensor) -> torch.Tensor:
        """At most sinkhorn_points random rows of (n, d) points (the model's generator)."""
        limit = self.cfg.sinkhorn_points
        if len(points) <= limit:
            return points
        pick = torch.randperm(len(points), generator=self.noise_gen, device=self.noise_gen.device)[:limit]
        return points[pick.to(points.device)]

    def penalty_rows(self) -> torch.Tensor:
        """(e,) nominal nodes the Sinkhorn penalty reads: at most sinkhorn_points of them (none when unshaped)."""
        if not self.shaped:
            return super().penalty_rows()
        return self.subsample(self.nominal.unsqueeze(1)).squeeze(1)

    @torch.no_grad()
    def group_penalty(self, batch: PairBatch, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(num_groups,) gamma * S_g: Sinkhorn distance between each group's samples in the batch (their users for
        user clusters, positives for popularity) and the nominal nodes, both read from `table`, the (r + e, d)
        read-out at the batch's sorted (r,) rows then at penalty_rows; 0 for groups absent from the batch."""
        cfg, reduction = self.cfg, self.reduction
        groups = reduction.groups(batch)
        members = table[torch.searchsorted(rows, reduction.group_nodes(batch))]
        nominal = table[len(rows):]
        present = torch.unique(groups)
        clouds = [self.subsample(members[groups == group]) for group in present.tolist()]
        penalty = table.new_zeros(reduction.cfg.num_groups)
        penalty[present] = sinkhorn_divergences(clouds, nominal, epsilon=cfg.sinkhorn_blur,
                                                iterations=cfg.sinkhorn_iterations, tolerance=cfg.sinkhorn_tolerance)
        return cfg.sinkhorn_weight * penalty

    def reduce(self, per_sample: torch.Tensor, batch: PairBatch, rows: torch.Tensor,
               table: torch.Tensor) -> torch.Tensor:
        """Group DRO of the per-sample BPR, the weights shaped by the Sinkhorn penalty when sinkhorn_weight > 0."""
        if not self.shaped:
            return self.reduce_samples(per_sample, batch)
        return self.reduction(per_sample, batch, self.group_penalty(batch, rows, table.detach()))
