"""Latent-diffusion recommenders (the base of DRGO and CausalDiffRec): a VGAE encoder over LightGCN propagation of
the ego table, a conditional denoiser trained on its latents, and a LightGCN read-out of the denoised latents.

Training: z = mu + sigma * eps from the encoder; the denoiser learns to denoise z (diffusion loss, its prediction
x0_hat decoded by the reconstruction term on positive edges and sampled negatives); BPR ranks with the read-out of the
denoised latents f(z, t = 0 | condition), the denoiser's parameters held fixed there, so BPR shapes the latents (ego
table, encoder, condition) and the denoiser stays a denoiser. Evaluation: z = mu, the reverse chain
(graphrec.diffusion.reverse_sample) over all nodes at once, then the read-out, computed once per evaluation. Nothing is
ever a dense nodes x nodes matrix. Choices: docs/ood-models.md.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal, Optional, Union

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..batches import GraphStep, PairBatch
from ..data.sampling import subset_or_all
from ..diffusion import Denoiser, diffusion_loss, make_schedule, reverse_sample, x0_from_eps
from ..errors import GraphrecError
from ..graph.adjacency import NormalizedAdjacency
from ..graph.propagate import weighted_propagation
from ..losses import softplus_of_dots
from ..schema import ModelConfig, Section, all_or_count
from .base import ModelContext, Recommender, Stage


class DiffusionConfig(Section):
    """The latent diffusion: schedule, denoiser and reverse chain (formulas: docs/ood-pieces.md)."""

    schedule: Literal["linear", "linear-var", "cosine"] = Field("linear-var", description="noise schedule")
    steps: int = Field(100, ge=1, description="diffusion steps T")
    noise_min: float = Field(0.01, gt=0, description="lower noise bound (times noise_scale)")
    noise_max: float = Field(0.09, gt=0, description="upper noise bound (times noise_scale)")
    noise_scale: float = Field(0.1, gt=0, description="DiffRec's noise_scale on both bounds")
    sampling_steps: int = Field(100, ge=0, description="evaluation: forward-noising depth T' before all T reverse "
                                                       "steps (0: start from the clean latent)")
    target: Literal["x0", "eps"] = Field("x0", description="what the denoiser predicts")
    reweight: bool = Field(True, description="weight each row's loss by SNR(t-1) - SNR(t) (target eps: that over "
                                             "SNR(t), the same weight on the implied x0 error)")
    time_dim: int = Field(16, ge=1, description="sinusoidal step-embedding width")
    hidden: Optional[list[int]] = Field(None, description="denoiser hidden widths (default: one layer of "
                                                          "embedding_dim)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on the denoiser's noisy input")
    normalize_input: bool = Field(False, description="L2-normalise the denoiser's noisy input (DRGO)")
    clip_x0: Optional[float] = Field(None, gt=0, description="clamp x0_hat to +-clip_x0 in the reverse chain")

    @model_validator(mode="after")
    def _check(self) -> "DiffusionConfig":
        try:
            make_schedule(self.schedule, self.steps, self.noise_min, self.noise_max, self.noise_scale)
        except GraphrecError as err:
            raise ValueError(str(err)) from None
        if self.sampling_steps > self.steps:
            raise ValueError(f"diffusion.sampling_steps ({self.sampling_steps}) must be at most diffusion.steps "
                             f"({self.steps})")
        return self


class LatentDiffusionConfig(ModelConfig):
    """Keys shared by the latent-diffusion models (subclasses change the defaults)."""

    encoder_layers: int = Field(2, ge=0, description="LightGCN layers of the VGAE encoder: mu is their layer mean, "
                                                     "log-sigma a linear map of it")
    num_layers: int = Field(2, ge=0, description="LightGCN layers of the read-out over the denoised latents")
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig, description="the latent diffusion")
    diffusion_weight: float = Field(1.0, ge=0, description="weight of diffusion + recon_weight * reconstruction "
                                                           "beside BPR")
    recon_weight: float = Field(1.0, ge=0, description="weight of the VGAE reconstruction (+ KL) of x0_hat")
    recon_weight_end: Optional[float] = Field(None, gt=0, description="recon_weight at the last epoch, reached "
                                                                      "geometrically (none: constant)")
    sample_nodes: Union[Literal["all"], int] = Field(
        2048, description="pairwise batches: the per-node losses (diffusion; CausalDiffRec's environment VAE) are "
                          "means over a uniform sample of this many nodes (without replacement, the model's "
                          "generator: an unbiased estimate of the all-node mean); 'all': every node. Whole-graph steps "
                          "use every node")
    pretrain_epochs: int = Field(2, ge=0, description="whole-graph pre-training epochs before BPR")
    pretrain_steps: int = Field(10, ge=1, description="whole-graph steps per pre-training epoch")

    @field_validator("sample_nodes", mode="before")
    @classmethod
    def _check_nodes(cls, value):
        if all_or_count(value, 1):
            return value
        raise ValueError("expected a positive number of nodes or 'all'")


class LatentDiffusionRecommender(Recommender):
    """Ego table -> VGAE encoder (LightGCN propagation) -> z -> denoiser -> x0_hat -> LightGCN read-out -> scores.

    Subclasses give `condition(z, sample)` (the denoiser's condition and its weighted loss) and `graph_loss(step)`
    for the whole-graph pre-training stage, and may add parameter groups.
    """

    config_class: ClassVar[type[ModelConfig]] = LatentDiffusionConfig
    per_sample_loss: ClassVar[bool] = True
    conditioned: ClassVar[bool] = False  # the denoiser takes a (num_nodes, embedding_dim) condition

    def __init__(self, cfg: LatentDiffusionConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        dim, diff = cfg.embedding_dim, cfg.diffusion
        # mu is the propagation itself (LightGCN: no feature transform); only log-sigma has a map, starting at a
        # noise a tenth of the ego scale
        self.logstd_map = nn.Linear(dim, dim)
        with torch.no_grad():
            self.logstd_map.weight.zero_()
            self.logstd_map.bias.fill_(math.log(0.1 * cfg.init_std))
        self.schedule = make_schedule(diff.schedule, diff.steps, diff.noise_min, diff.noise_max, diff.noise_scale)
        self.denoiser = Denoiser(dim, hidden=tuple(diff.hidden or (dim,)), time_dim=diff.time_dim,
                                 condition_dim=dim if self.conditioned else 0, dropout=diff.dropout,
                                 normalize_input=diff.normalize_input)
        self.noise_gen = torch.Generator(device=ctx.device).manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
        self.eval_seed = int(torch.randint(0, 2 ** 62, (1,)))
        self.graph_steps = cfg.pretrain_steps
        self.num_epochs, self.epoch = ctx.train.epochs, 0

    # ---- pieces -------------------------------------------------------------------------------------
    def encode(self, adj: NormalizedAdjacency, sample: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(num_nodes, d) z and mu of the VGAE over `adj`, and its scalar KL term: mu = the LightGCN layer mean of the
        ego table, log-sigma = a linear map of it; when `sample`, z = mu + sigma * eps and
        KL = -(0.5 / n) mean_i sum_d (1 + 2 log sigma - mu^2 - sigma^2), else z = mu and KL = 0."""
        layers = self.cfg.encoder_layers
        mu = weighted_propagation(adj, self.embedding, [1.0 / (layers + 1)] * (layers + 1))
        if not sample:
            return mu, mu, mu.new_zeros(())
        # sigma at most the latents' own RMS: the KL's 1/n weight barely holds sigma, and at a high lr the unbounded
        # map drove it to 1e4 x the latents, so z was noise and the diffusion loss ran to 1e6
        logstd = self.logstd_map(mu).clamp(max=-self.latent_scale(mu).log())
        std = logstd.exp()
        n, d = mu.shape  # the KL by whole-table reductions: no (n, d) temporaries forward or backward
        norm = torch.linalg.vector_norm
        kl = -0.5 / n * (d + (2 * logstd.sum() - norm(mu).square() - norm(std).square()) / n)
        return mu + self.gaussian(mu) * std, mu, kl

    def gaussian(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like `like`, from the model's own (checkpointed) generator."""
        return torch.randn(like.shape, generator=self.noise_gen, device=like.device, dtype=like.dtype)

    def readout(self, latents: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """LightGCN layer mean of (num_nodes, d) latents over the training graph, at `rows` (default: all nodes)."""
        layers = self.cfg.num_layers
        return weighted_propagation(self.graph, latents, [1.0 / (layers + 1)] * (layers + 1), rows)

    @staticmethod
    def latent_scale(mu: torch.Tensor) -> torch.Tensor:
        """Scalar 1 / RMS of the (num_nodes, d) mu (detached): the diffusion runs on unit-scale latents, as latent
        diffusion scales its codes, so that the noise levels and the step embedding mean the same at any init_std."""
        return (torch.linalg.vector_norm(mu.detach()).square() / mu.numel()).clamp(min=1e-12).rsqrt()

    def denoised(self, z: torch.Tensor, cond: Optional[torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
        """(num_nodes, d) x0_hat = f(z * scale, t = 0 | cond) / scale with the denoiser's parameters detached and no
        dropout: the latents BPR ranks with in training (the reverse chain's last step; gradients reach z and cond).
        Target x0: the scales fold into the frozen parameters (Denoiser.scaled_parameters)."""
        x0_target = self.cfg.diffusion.target == "x0"
        if x0_target:
            frozen, x = self.denoiser.scaled_parameters(scale, 1 / scale), z
        else:
            frozen, x = {name: p.detach() for name, p in self.denoiser.named_parameters()}, z * scale
        t = torch.zeros(len(z), dtype=torch.int64, device=z.device)
        mode = self.denoiser.training
        self.denoiser.eval()
        try:
            out = torch.func.functional_call(self.denoiser, frozen, (x, t, cond))
        finally:
            self.denoiser.train(mode)
        return out if x0_target else x0_from_eps(self.schedule, x, t, out) / scale

    def condition(self, z: torch.Tensor, sample: bool, rows: Optional[torch.Tensor] = None
                  ) -> tuple[Optional[torch.Tensor], torch.Tensor]:
        """The denoiser's (num_nodes, c) condition from z (None: unconditional) and its weighted scalar loss, a mean
        over the node `rows` (None: every node)."""
        return None, z.new_zeros(())

    def recon_weight(self) -> float:
        """kappa of this epoch: recon_weight, moved geometrically to recon_weight_end over the run's epochs."""
        cfg = self.cfg
        if cfg.recon_weight_end is None or cfg.recon_weight == 0:
            return cfg.recon_weight
        return cfg.recon_weight * (cfg.recon_weight_end / cfg.recon_weight) ** (self.epoch / max(1, self.num_epochs))

    @staticmethod
    def reconstruction(latents: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                       neg: torch.Tensor) -> torch.Tensor:
        """Scalar balanced BCE of sigmoid(<x_u, x_i>) on positive edges and sampled negatives, from the rows of
        `latents` of (m,) users, (m,) positive items and (m * k,) negatives (k per user, in user order): the
        expectation of the VGAE's pos_weight-balanced dense BCE. Whole-graph steps score every training edge in
        chunks recomputed in backward (softplus_of_dots), so no (edges, d) tensor is kept."""
        users_neg = users.repeat_interleave(len(neg) // len(users))
        return 0.5 * (softplus_of_dots(latents, users, pos, -1.0) / len(pos)
                      + softplus_of_dots(latents, users_neg, neg, 1.0) / len(neg))

    def node_sample(self, num_nodes: int) -> Optional[torch.Tensor]:
        """(sample_nodes,) uniform sample of node rows without replacement (the model's generator), or None for
        every node ('all', or a sample as large as the graph)."""
        return subset_or_all(num_nodes, self.cfg.sample_nodes, self.noise_gen)

    def diffusion_term(self, z: torch.Tensor, scale: torch.Tensor, cond: Optional[torch.Tensor],
                       recon_nodes: torch.Tensor, sample: Optional[torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scalar diffusion loss of the unit-scale latents x0 = z * scale ((num_nodes, d) z, detached here; condition
        (num_nodes, c) or None), the mean over the (s,) `sample` rows (None: every row); the (r, d) x0 predictions of
        the rows the denoiser ran on, and where the (q,) `recon_nodes` sit among them.

        The denoiser runs only on the sample and the reconstruction nodes, each row with its own step and noise; with
        a sample covering every node it draws and computes what the all-node form does."""
        diff = self.cfg.diffusion
        # the denoiser learns the current latents (detached, as latent diffusion trains on its encoder's codes): with
        # gradients into z the loss pulls every latent towards what the denoiser predicts, a collapse
        z = z.detach()
        if sample is None:
            loss_at, recon_at = None, recon_nodes
        else:
            rows, inverse = torch.unique(torch.cat([sample, recon_nodes]), return_inverse=True)
            loss_at, recon_at = inverse[:len(sample)], inverse[len(sample):]
            z, cond = z[rows], None if cond is None else cond[rows]
        out = diffusion_loss(self.denoiser, self.schedule, z * scale, cond, self.noise_gen, diff.target, diff.reweight)
        loss = out.loss.mean() if loss_at is None else out.loss[loss_at].mean()
        return loss, out.x0_pred, recon_at

    def latent_objective(self, adj: NormalizedAdjacency, users: torch.Tensor, pos: torch.Tensor,
                         neg: torch.Tensor, sampled: bool = False
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """diffusion_weight * (diffusion + kappa * (reconstruction + KL)) + the condition's loss, over the encoder
        of `adj`, the per-node losses over sample_nodes sampled nodes when `sampled`; returns it, its named terms and
        the (num_nodes, d) denoised latents BPR ranks with."""
        cfg = self.cfg
        z, mu, kl = self.encode(adj, sample=True)
        sample = self.node_sample(len(z)) if sampled else None
        # the condition reads the latents detached, as the denoiser does: its losses train the condition's networks,
        # never the latents (the environment VAE's reconstruction of z otherwise shrank z against BPR)
        cond, cond_loss = self.condition(z.detach(), sample=True, rows=sample)
        scale = self.latent_scale(mu)
        m, k = len(users), neg.numel() // len(users)
        recon_nodes = torch.cat([users, pos + self.num_users, neg.reshape(-1) + self.num_users])
        diffusion, x0_pred, recon_at = self.diffusion_term(z, scale, cond, recon_nodes, sample)
        recon = self.reconstruction(x0_pred / scale, *recon_at.split([m, m, m * k])) + kl
        objective = cfg.diffusion_weight * (diffusion + self.recon_weight() * recon) + cond_loss
        terms = {"diffusion": diffusion, "recon": recon, "condition": cond_loss}
        return objective, terms, self.denoised(z, cond, scale)

    def training_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every training edge (users, items) and one uniform negative item each, for whole-graph reconstruction."""
        users, items = self.graph.users, self.graph.items
        neg = torch.randint(0, self.num_items, items.shape, generator=self.noise_gen, device=items.device)
        return users, items, neg

    # ---- model interface ----------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Remember the epoch (the reconstruction weight's schedule)."""
        self.epoch = epoch

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """'embedding' (the ego table), 'encoder' (VGAE maps and the condition's networks), 'denoiser'."""
        taken = {id(self.embedding)} | {id(p) for p in self.denoiser.parameters()}
        return {"embedding": [self.embedding],
                "encoder": [p for p in self.encoder_parameters() if id(p) not in taken],
                "denoiser": list(self.denoiser.parameters())}

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the encoder group (subclasses add their condition networks)."""
        return list(self.logstd_map.parameters())

    def stages(self) -> list[Stage]:
        """Whole-graph pre-training (pretrain_epochs, not evaluated), then BPR on the read-out to the end."""
        main = Stage("main", groups=("embedding", "encoder", "denoiser"))
        if not self.cfg.pretrain_epochs:
            return [main]
        # pre-training leaves the ego table alone: its objective reads the latents detached, so only the KL would
        # reach E, and Adam scales that tiny gradient to lr-sized steps that drift E along one shared direction,
        # which started the main stage from a popularity ranking (docs/ood-models.md §2b)
        pretrained = tuple(group for group in self.param_groups() if group != "embedding")
        return [Stage("pretrain", epochs=self.cfg.pretrain_epochs, groups=pretrained, batch_kind="graph",
                      evaluate=False), main]

    def graph_loss(self, step: GraphStep) -> dict[str, torch.Tensor]:
        """One whole-graph pre-training step (subclasses)."""
        raise NotImplementedError

    def penalty_rows(self) -> torch.Tensor:
        """(e,) node rows besides the batch's whose read-out `reduce` reads (none here; DRGO: nominal nodes)."""
        return self.graph.users.new_zeros(0)

    def reduce(self, per_sample: torch.Tensor, batch: PairBatch, rows: torch.Tensor,
               table: torch.Tensor) -> torch.Tensor:
        """Scalar BPR from (b,) per-sample losses; `table` (r + e, d) is the read-out at the batch's sorted distinct
        (r,) `rows`, then at penalty_rows (DRGO's Sinkhorn penalty reads it)."""
        return self.reduce_samples(per_sample, batch)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """A GraphStep: the pre-training objective; a PairBatch: BPR on the read-out of the denoised latents +
        reg * L2 + the latent objective with the batch's pairs as reconstruction edges."""
        if isinstance(batch, GraphStep):
            return self.graph_loss(batch)
        objective, terms, latents = self.latent_objective(self.graph, batch.users, batch.pos, batch.neg,
                                                          sampled=True)
        rows, index = self.batch_rows(batch)
        table = self.readout(latents, torch.cat([rows, self.penalty_rows()]))
        per_sample, l2 = self.pairwise_terms(batch, table, index)
        bpr = self.reduce(per_sample, batch, rows, table)
        return {"loss": bpr + self.reg * l2 + objective, "bpr": bpr, "l2": l2, **terms}

    @torch.no_grad()
    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Evaluation embeddings (num_nodes, d) or (len(rows), d): z = mu, the reverse chain over all nodes at once on
        the unit-scale latents (seeded by the model, so a function of the parameters), then the read-out."""
        diff = self.cfg.diffusion
        z, _, _ = self.encode(self.graph, sample=False)
        cond, _ = self.condition(z, sample=False)
        generator = torch.Generator(device=z.device).manual_seed(self.eval_seed)
        scale = self.latent_scale(z)
        denoised = reverse_sample(self.denoiser, self.schedule, z * scale, cond, diff.sampling_steps,
                                  target=diff.target, generator=generator, clip_x0=diff.clip_x0)
        return self.readout(denoised / scale, rows)
