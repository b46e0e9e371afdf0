"""CausalDiffRec (Zhao et al., WWW 2025): latent diffusion conditioned on an inferred environment, trained for
invariance (mean + variance of the losses) across graphs that a learnable generator edits adversarially.
docs/ood-models.md."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..batches import GraphStep
from ..graph.adjacency import NormalizedAdjacency
from . import register
from .base import ModelContext
from ..schema import with_defaults
from .latent import DiffusionConfig, LatentDiffusionConfig, LatentDiffusionRecommender


MAX_LOGSTD = 10.0  # the environment VAE's log-stds are clamped here, as PyG's VGAE clamps its own

CausalDiffRecDiffusion = with_defaults(DiffusionConfig, "CausalDiffRecDiffusion", noise_min=0.01, noise_max=0.09,
                                       sampling_steps=100, time_dim=10, clip_x0=1.0)


class CausalDiffRecConfig(LatentDiffusionConfig):
    """CausalDiffRec keys: the latent-diffusion keys with its defaults, the environments and their objective."""

    num_layers: int = Field(3, ge=0, description="LightGCN layers of the read-out over the denoised latents")
    diffusion: CausalDiffRecDiffusion = Field(
        default_factory=CausalDiffRecDiffusion,
        description="the latent diffusion (CausalDiffRec: linear-var 1e-3..9e-3, T = T' = 100, x0 clamped to +-1)")
    diffusion_weight: float = Field(0.1, ge=0, description="weight of diffusion + recon_weight * reconstruction")
    env_weight: float = Field(0.01, ge=0, description="weight of the environment VAE's loss (reconstruction of z + "
                                                      "KL to its learned prior)")
    num_envs: int = Field(3, ge=2, description="generated environments per whole-graph step")
    edits_per_user: int = Field(5, ge=1, description="edges each user's row toggles in a generated environment")
    mean_weight: float = Field(1.0, ge=0, description="beta in Var_k(L_k) + beta * Mean_k(L_k)")


class EnvironmentVAE(nn.Module):
    """q(e | z) = N(W_mu relu(z), exp(W_sigma relu(z))^2), decoder W_d relu(e) -> z, learnable diagonal prior.

    The posterior's log-std is clamped to at most MAX_LOGSTD (PyG's VGAE bound) and the learned prior's, which
    divides, to within +-MAX_LOGSTD: with large latents (|z| in the hundreds at a high lr) the unclamped exp
    overflowed to inf and the loss to nan."""

    def __init__(self, dim: int):
        super().__init__()
        self.mean, self.logstd, self.decoder = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.prior_mean, self.prior_logstd = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, d) environment e (posterior sample, or its mean when noise is None) and the scalar VAE loss:
        mean over nodes (the node `rows`; None: all n) of ||W_d relu(e) - z||^2 + KL(q || prior)."""
        hidden = F.relu(z)
        mean, logstd = self.mean(hidden), self.logstd(hidden).clamp(max=MAX_LOGSTD)
        env = mean if noise is None else mean + noise * logstd.exp()
        if rows is not None:  # the loss at the sampled nodes only
            z, env_at, mean, logstd = z[rows], env[rows], mean[rows], logstd[rows]
        else:
            env_at = env
        recon = (self.decoder(F.relu(env_at)) - z).pow(2).sum(1)
        prior_logstd = self.prior_logstd.clamp(-MAX_LOGSTD, MAX_LOGSTD)
        kl = 0.5 * (2 * (prior_logstd - logstd) + ((2 * logstd).exp() + (mean - self.prior_mean).pow(2))
                    / (2 * prior_logstd).exp() - 1).sum(1)
        return env, (recon + kl).mean()


@register("causaldiffrec")
class CausalDiffRec(LatentDiffusionRecommender):
    """Environment stage: for each of K edited graphs the latent objective L_k; minimise Var_k + beta * Mean_k while
    the generator (REINFORCE) maximises Var_k. Then BPR on the read-out of the environment-conditioned x0_hat."""

    config_class = CausalDiffRecConfig
    summary = "CausalDiffRec: environment-conditioned latent diffusion, invariant across adversarially edited graphs"
    conditioned = True

    def __init__(self, cfg: CausalDiffRecConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.environment_vae = EnvironmentVAE(cfg.embedding_dim)
        self.edit_logits = nn.Parameter(torch.zeros(cfg.num_envs, self.num_items))
        graph = self.graph
        self.register_buffer("train_keys", torch.sort(graph.users * self.num_items + graph.items).values,
                             persistent=False)

    def condition(self, z: torch.Tensor, sample: bool,
                  rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The inferred environment (posterior sample in training, mean at evaluation) and env_weight * its loss (a
        mean over the node `rows`; None: every node)."""
        env, vae_loss = self.environment_vae(z, self.gaussian(z) if sample else None, rows)
        return env, self.cfg.env_weight * vae_loss

    def encoder_parameters(self) -> list[nn.Parameter]:
        """VGAE maps and the environment VAE."""
        return [*super().encoder_parameters(), *self.environment_vae.parameters()]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The latent groups and 'generator' (the edit distributions)."""
        return {**super().param_groups(), "generator": [self.edit_logits]}

    def environment(self, k: int) -> tuple[NormalizedAdjacency, torch.Tensor]:
        """Environment k: each user toggles edits_per_user items drawn from softmax(edit_logits[k]) (an absent edge
        is added, a training edge removed), and the mean over users of the draws' log-probabilities."""
        users, items = self.num_users, self.num_items
        log_probs = torch.log_softmax(self.edit_logits[k], 0)
        draws = torch.multinomial(log_probs.detach().exp(), users * self.cfg.edits_per_user, replacement=True,
                                  generator=self.noise_gen)
        rows = torch.arange(users, device=draws.device).repeat_interleave(self.cfg.edits_per_user)
        toggled = torch.unique(rows * items + draws)
        removed = torch.isin(toggled, self.train_keys)
        keys = torch.cat([self.train_keys[~torch.isin(self.train_keys, toggled[removed])], toggled[~removed]])
        adj = NormalizedAdjacency(keys // items, keys % items, users, items)
        return adj, log_probs[draws].sum() / users

    def graph_loss(self, step: GraphStep) -> dict[str, torch.Tensor]:
        """Var_k(L_k) + beta * Mean_k(L_k) over num_envs edited graphs (reconstruction targets: the training edges),
        plus the generator's REINFORCE term -Var.detach() * sum_k log p_k, which only the edit logits feel."""
        losses, log_prob = [], 0.0
        for k in range(self.cfg.num_envs):
            adj, log_prob_k = self.environment(k)
            objective, _, _ = self.latent_objective(adj, *self.training_edges())
            losses.append(objective)
            log_prob = log_prob + log_prob_k
        variance, mean = torch.var_mean(torch.stack(losses))
        invariance = variance + self.cfg.mean_weight * mean
        generator = -variance.detach() * log_prob
        return {"loss": invariance + generator, "invariance": invariance, "variance": variance, "mean": mean,
                "generator": generator}
