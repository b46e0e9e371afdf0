"""Gaussian diffusion over embeddings (DiffRec-style), shared by the CausalDiffRec and DRGO models.

Forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), t = 0..T-1 (0-based, as in the DiffRec code).
The denoiser predicts x_0 (target 'x0', what both official models use) or the noise (target 'eps'); the reverse
step is the posterior mean of q(x_{t-1} | x_t, x0_hat). Formulas and choices: docs/ood-pieces.md.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

from .draws import dropout
from .errors import GraphrecError

SCHEDULES = ("linear", "linear-var", "cosine")
TARGETS = ("x0", "eps")
MAX_BETA = 0.999  # cap on one step's variance, as in DiffRec (keeps alpha_bar > 0 for cosine / linear-var)


@dataclass(frozen=True)
class NoiseSchedule:
    """Per-step (steps,) float64 coefficients of a diffusion schedule; index t = 0..steps-1."""

    betas: torch.Tensor            # beta_t, variance added at step t
    alphas: torch.Tensor           # 1 - beta_t
    alpha_bar: torch.Tensor        # prod_{s <= t} alpha_s
    alpha_bar_prev: torch.Tensor   # alpha_bar_{t-1}, with alpha_bar_{-1} = 1
    posterior_mean_x0: torch.Tensor  # coefficient of x_0 in the mean of q(x_{t-1} | x_t, x_0)
    posterior_mean_xt: torch.Tensor  # coefficient of x_t in that mean
    posterior_variance: torch.Tensor  # variance of q(x_{t-1} | x_t, x_0); 0 at t = 0
    posterior_log_variance: torch.Tensor  # its log, with t = 0 set to t = 1's value (finite; unused at t = 0)
    x0_loss_weight: torch.Tensor   # SNR(t-1) - SNR(t), SNR = abar / (1 - abar); 1 at t = 0 (DiffRec `reweight`)
    eps_loss_weight: torch.Tensor  # x0_loss_weight / SNR(t): the same weight on the x0 error implied by a noise prediction

    @property
    def steps(self) -> int:
        """Number of diffusion steps T."""
        return int(self.betas.shape[0])


def _linear_bounds(kind: str, noise_min: float, noise_max: float, scale: float) -> tuple[float, float]:
    """(scale * noise_min, scale * noise_max) after checking they make a valid schedule."""
    if not scale > 0:
        raise GraphrecError(f"diffusion.noise_scale must be > 0 (got {scale}); the default is 1")
    if not noise_min < noise_max:
        raise GraphrecError(f"diffusion.noise_min ({noise_min}) must be below diffusion.noise_max ({noise_max}); "
                            "swap or fix them")
    low, high = scale * noise_min, scale * noise_max
    if not (0 < low and high < 1):
        what = "beta_t" if kind == "linear" else "1 - alpha_bar_t"
        raise GraphrecError(f"diffusion.noise_min * noise_scale and diffusion.noise_max * noise_scale must lie in "
                            f"(0, 1) for schedule '{kind}' (they bound {what}); got {low} and {high}")
    return low, high


def make_schedule(kind: str, steps: int, noise_min: float = 1e-4, noise_max: float = 0.02,
                  scale: float = 1.0) -> NoiseSchedule:
    """The schedule `kind` ('linear' | 'linear-var' | 'cosine') with `steps` steps, in float64.

    - 'linear': beta_t = linspace(scale * noise_min, scale * noise_max, steps) (DDPM).
    - 'linear-var': the *variance* is linear, 1 - alpha_bar_t = linspace(scale * noise_min, scale * noise_max, steps);
      then beta_0 = 1 - alpha_bar_0 and beta_t = min(1 - alpha_bar_t / alpha_bar_{t-1}, 0.999) (DiffRec, CausalDiffRec,
      DRGO; with the cap never reached, alpha_bar is exactly 1 - linspace).
    - 'cosine': alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2 at s = t / steps, beta_t =
      min(1 - alpha_bar((t+1)/steps) / alpha_bar(t/steps), 0.999) (Nichol and Dhariwal); noise bounds are ignored.
    """
    if kind not in SCHEDULES:
        close = difflib.get_close_matches(str(kind), SCHEDULES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(SCHEDULES)}"
        raise GraphrecError(f"unknown diffusion.schedule '{kind}'; {hint}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise GraphrecError(f"diffusion.steps must be a positive integer (got {steps!r})")
    f64 = torch.float64
    if kind == "cosine":
        s = torch.arange(steps + 1, dtype=f64) / steps
        abar_fn = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - abar_fn[1:] / abar_fn[:-1]).clamp(max=MAX_BETA)
    else:
        low, high = _linear_bounds(kind, noise_min, noise_max, scale)
        ramp = torch.linspace(low, high, steps, dtype=f64)
        if kind == "linear":
            betas = ramp
        else:
            abar_target = 1 - ramp
            betas = torch.cat([ramp[:1], (1 - abar_target[1:] / abar_target[:-1]).clamp(max=MAX_BETA)])
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=f64), alpha_bar[:-1]])
    posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
    log_var = posterior_variance.clone()
    log_var[0] = posterior_variance[1] if steps > 1 else betas[0]
    snr = alpha_bar / (1 - alpha_bar)
    x0_loss_weight = torch.cat([torch.ones(1, dtype=f64), snr[:-1] - snr[1:]])
    return NoiseSchedule(
        betas=betas, alphas=alphas, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
        posterior_mean_x0=betas * alpha_bar_prev.sqrt() / (1 - alpha_bar),
        posterior_mean_xt=(1 - alpha_bar_prev) * alphas.sqrt() / (1 - alpha_bar),
        posterior_variance=posterior_variance, posterior_log_variance=log_var.log(),
        x0_loss_weight=x0_loss_weight, eps_loss_weight=x0_loss_weight / snr)


def _at(coef: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(n, 1) entries coef[t] in the dtype and device of `like`."""
    return coef.to(like.device)[t].to(like.dtype).unsqueeze(1)


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(n, d) x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, for x0 (n, d), steps t (n,) and noise (n, d)."""
    return _at(schedule.alpha_bar.sqrt(), t, x0) * x0 + _at((1 - schedule.alpha_bar).sqrt(), t, x0) * noise


def posterior(schedule: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor,
              t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (n, d) and log-variance (n, 1) of q(x_{t-1} | x_t, x_0) for x0, xt (n, d) and steps t (n,)."""
    mean = _at(schedule.posterior_mean_x0, t, x0) * x0 + _at(schedule.posterior_mean_xt, t, xt) * xt
    return mean, _at(schedule.posterior_log_variance, t, xt)


def x0_from_eps(schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """(n, d) x_0 implied by x_t (n, d) and predicted noise eps (n, d): (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (xt - _at((1 - schedule.alpha_bar).sqrt(), t, xt) * eps) / _at(schedule.alpha_bar.sqrt(), t, xt)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(n, dim) sinusoidal embedding [cos(t f_k), sin(t f_k)], f_k = max_period^(-k / (dim // 2)); odd dim pads 0."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class Denoiser(nn.Module):
    """Conditional MLP f(x_t (n, d), t (n,), condition (n, c) | None) -> (n, d).

    Input concat[dropout(x_t) (L2-normalised first if `normalize_input`), Linear(sinusoidal(t)), condition], then
    Linear -> tanh -> ... -> Linear over `hidden` widths (both official models: one hidden layer, tanh). The
    concatenation is never built: the first layer adds up its column blocks.
    Weights Xavier-normal, biases zero.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64,), time_dim: int = 16, condition_dim: int = 0,
                 dropout: float = 0.0, normalize_input: bool = False) -> None:
        super().__init__()
        self.dim, self.condition_dim = dim, condition_dim
        self.time_dim = time_dim
        self.normalize_input = normalize_input
        self.dropout_rate = dropout
        self.time_proj = nn.Linear(time_dim, time_dim)
        widths = [dim + time_dim + condition_dim, *hidden, dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        for layer in [self.time_proj, *self.layers]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def scaled_parameters(self, in_scale: torch.Tensor, out_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """Detached parameters under which this denoiser computes f(x * in_scale, t | c) * out_scale: in_scale folds
        into the first layer's input columns of x (and drops out when inputs are L2-normalised), out_scale into the
        last layer. For torch.func.functional_call; no (n, d) rescaling of inputs or outputs."""
        params = {name: p.detach() for name, p in self.named_parameters()}
        if not self.normalize_input:
            weight = params["layers.0.weight"]
            params["layers.0.weight"] = torch.cat([weight[:, :self.dim] * in_scale, weight[:, self.dim:]], 1)
        last = f"layers.{len(self.layers) - 1}"
        params[f"{last}.weight"] = params[f"{last}.weight"] * out_scale
        params[f"{last}.bias"] = params[f"{last}.bias"] * out_scale
        return params

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(n, d) prediction (x_0 or noise, per the training target) for x_t (n, d) at steps t (n,)."""
        if (condition is None) != (self.condition_dim == 0):
            raise GraphrecError(f"Denoiser built with condition_dim={self.condition_dim} got "
                                f"{'no' if condition is None else 'a'} condition; pass one of width "
                                f"{self.condition_dim} or build it with condition_dim=0")
        x = dropout(nn.functional.normalize(x_t, dim=1) if self.normalize_input else x_t, self.dropout_rate,
                    self.training)
        # the first layer on concat[x, time, condition] as a sum of its column blocks: no concatenated copy, and the
        # time block (with the bias) once per distinct step, a single broadcast row when all rows share a step
        d, width, first = self.dim, self.time_dim, self.layers[0]
        steps, where = torch.unique(t, return_inverse=True)
        time = self.time_proj(timestep_embedding(steps, width).to(x_t.dtype))
        time = nn.functional.linear(time, first.weight[:, d:d + width], first.bias)
        h = torch.addmm(time if len(steps) == 1 else time[where], x, first.weight[:, :d].t())
        if condition is not None:
            h = torch.addmm(h, condition, first.weight[:, d + width:].t())
        for layer in self.layers[1:]:
            h = layer(torch.tanh(h))
        return h


class DiffusionLoss(NamedTuple):
    """Per-sample diffusion loss (n,) and the denoiser's x_0 prediction (n, d) (both models decode the latter)."""

    loss: torch.Tensor
    x0_pred: torch.Tensor


def _check_target(target: str) -> None:
    """GraphrecError unless `target` is a known prediction target."""
    if target not in TARGETS:
        close = difflib.get_close_matches(str(target), TARGETS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(TARGETS)}"
        raise GraphrecError(f"unknown diffusion.target '{target}'; {hint}")


def _predict_x0(denoiser: nn.Module, schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor,
                condition: Optional[torch.Tensor], target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw output (n, d), x_0 prediction (n, d)) of the denoiser at x_t, t."""
    out = denoiser(xt, t, condition)
    return out, (out if target == "x0" else x0_from_eps(schedule, xt, t, out))


def diffusion_loss(denoiser: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor,
                   condition: Optional[torch.Tensor], generator: torch.Generator, target: str = "x0",
                   reweight: bool = False) -> DiffusionLoss:
    """Per-row mean squared error (n,) of the denoiser's target at t ~ Uniform{0..T-1}, x_t = q_sample(x0 (n, d), t).

    The steps and the noise come from `generator`. With `reweight` each row is multiplied by SNR(t-1) - SNR(t)
    (1 at t = 0), DiffRec's ELBO weighting that both official models switch on; for target 'eps' by that over SNR(t),
    which makes the loss that weight times the error of the implied x0 (|x0 - x0_hat|^2 = |eps - eps_hat|^2 / SNR(t)).
    """
    _check_target(target)
    n = x0.shape[0]
    t = torch.randint(0, schedule.steps, (n,), generator=generator, device=generator.device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    xt = q_sample(schedule, x0, t, noise)
    out, x0_pred = _predict_x0(denoiser, schedule, xt, t, condition, target)
    loss = (out - (x0 if target == "x0" else noise)).pow(2).mean(dim=1)
    if reweight:
        loss = loss * _at(schedule.x0_loss_weight if target == "x0" else schedule.eps_loss_weight, t, x0).squeeze(1)
    return DiffusionLoss(loss, x0_pred)


@torch.no_grad()
def reverse_sample(denoiser: nn.Module, schedule: NoiseSchedule, x_start: torch.Tensor,
                   condition: Optional[torch.Tensor], steps: int, noise: bool = False, target: str = "x0",
                   generator: Optional[torch.Generator] = None, clip_x0: Optional[float] = None) -> torch.Tensor:
    """(n, d) denoised embeddings from x_start (n, d), DiffRec's inference (no gradient, denoiser in eval mode).

    x_T is x_start itself when steps == 0 (DRGO), else q_sample(x_start, t = steps - 1) (CausalDiffRec: steps = T);
    then all T reverse steps run, x_{t-1} = posterior mean at x0_hat = f(x_t, t) (clamped to +-clip_x0 if given),
    plus posterior noise when `noise` (never at t = 0). Deterministic when steps == 0 and not noise; otherwise the
    draws come from `generator`.
    """
    _check_target(target)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= schedule.steps:
        raise GraphrecError(f"diffusion.sampling_steps must be an integer in [0, diffusion.steps = {schedule.steps}] "
                            f"(got {steps!r})")
    if generator is None and (steps > 0 or noise):
        raise GraphrecError("reverse_sample with sampling_steps > 0 or noise draws random numbers: pass a seeded "
                            "torch.Generator")

    def gaussian() -> torch.Tensor:
        return torch.randn(x_start.shape, generator=generator, device=generator.device,
                           dtype=x_start.dtype).to(x_start.device)

    n = x_start.shape[0]
    x = x_start
    if steps > 0:
        x = q_sample(schedule, x_start, torch.full((n,), steps - 1, device=x_start.device), gaussian())
    was_training = denoiser.training
    denoiser.eval()
    try:
        for step in range(schedule.steps - 1, -1, -1):
            t = torch.full((n,), step, device=x_start.device)
            _, x0_hat = _predict_x0(denoiser, schedule, x, t, condition, target)
            if clip_x0 is not None:
                x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
            x, log_var = posterior(schedule, x0_hat, x, t)
            if noise and step > 0:
                x = x + (0.5 * log_var).exp() * gaussian()
    finally:
        denoiser.train(was_training)
    return x
