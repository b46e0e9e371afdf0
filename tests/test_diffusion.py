"""graphrec.diffusion: schedules against their definitions, q_sample statistics, a denoiser that learns, the reverse
chain, and one-line errors for bad inputs."""
import math

import pytest
import torch
from torch import nn

from graphrec.diffusion import (Denoiser, diffusion_loss, make_schedule, posterior, q_sample,
                                reverse_sample, timestep_embedding, x0_from_eps)
from graphrec.errors import GraphrecError

torch.set_num_threads(1)


def test_linear_schedule_hand_values():
    s = make_schedule("linear", 3, 0.1, 0.3)
    assert s.steps == 3 and s.betas.dtype == torch.float64
    torch.testing.assert_close(s.betas, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    torch.testing.assert_close(s.alpha_bar, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))
    torch.testing.assert_close(s.alpha_bar_prev, torch.tensor([1.0, 0.9, 0.72], dtype=torch.float64))
    # posterior variance beta_t (1 - abar_{t-1}) / (1 - abar_t): 0 at t = 0, 0.2 * 0.1 / 0.28 at t = 1
    torch.testing.assert_close(s.posterior_variance[:2], torch.tensor([0.0, 0.02 / 0.28], dtype=torch.float64))
    assert float(s.posterior_log_variance[0]) == pytest.approx(math.log(0.02 / 0.28))  # t = 0 borrows t = 1
    # SNR = 9, 0.72 / 0.28, 0.504 / 0.496; weights 1, SNR_0 - SNR_1, SNR_1 - SNR_2
    snr = [9.0, 0.72 / 0.28, 0.504 / 0.496]
    torch.testing.assert_close(s.x0_loss_weight, torch.tensor([1.0, snr[0] - snr[1], snr[1] - snr[2]],
                                                              dtype=torch.float64))


def test_linear_var_schedule_has_linear_variance():
    # CausalDiffRec's defaults: scale 0.1, noise 0.01..0.09, 100 steps -> 1 - abar from 1e-3 to 9e-3
    s = make_schedule("linear-var", 100, 0.01, 0.09, scale=0.1)
    torch.testing.assert_close(1 - s.alpha_bar, torch.linspace(1e-3, 9e-3, 100, dtype=torch.float64))
    assert float(s.betas[0]) == pytest.approx(1e-3)
    torch.testing.assert_close(s.betas[1:], 1 - s.alpha_bar[1:] / s.alpha_bar[:-1])


def test_cosine_schedule_follows_its_alpha_bar_and_caps_beta():
    steps = 20
    s = make_schedule("cosine", steps)
    f = [math.cos((k / steps + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(steps + 1)]
    expected = torch.tensor([f[k + 1] / f[0] for k in range(steps - 1)], dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bar[:-1], expected)
    assert float(s.betas[-1]) == pytest.approx(0.999)  # alpha_bar(1) = 0 would make the last beta 1


@pytest.mark.parametrize("kind", ["linear", "linear-var", "cosine"])
def test_schedule_matches_direct_definitions(kind):
    s = make_schedule(kind, 50, 1e-3, 0.3)
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alpha_bar, torch.cumprod(1 - s.betas, 0))
    torch.testing.assert_close(s.alpha_bar_prev[1:], s.alpha_bar[:-1])
    # q(x_{t-1} | x_t, x_0) by Gaussian conditioning: precision alpha_t / beta_t + 1 / (1 - abar_{t-1}),
    # mean = var * (sqrt(alpha_t) x_t / beta_t + sqrt(abar_{t-1}) x_0 / (1 - abar_{t-1})), for t >= 1
    b, a, ap = s.betas[1:], s.alphas[1:], s.alpha_bar_prev[1:]
    var = 1 / (a / b + 1 / (1 - ap))
    torch.testing.assert_close(s.posterior_variance[1:], var)
    torch.testing.assert_close(s.posterior_mean_xt[1:], var * a.sqrt() / b)
    torch.testing.assert_close(s.posterior_mean_x0[1:], var * ap.sqrt() / (1 - ap))
    # at t = 0 the posterior is the point x_0
    assert float(s.posterior_mean_x0[0]) == pytest.approx(1.0) and float(s.posterior_mean_xt[0]) == 0.0


def test_q_sample_and_posterior_formulas():
    s = make_schedule("linear", 3, 0.1, 0.3)
    x0 = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    noise = torch.tensor([[0.3, 1.0], [-1.0, 2.0]])
    t = torch.tensor([0, 2])
    expected = torch.stack([math.sqrt(0.9) * x0[0] + math.sqrt(0.1) * noise[0],
                            math.sqrt(0.504) * x0[1] + math.sqrt(0.496) * noise[1]])
    torch.testing.assert_close(q_sample(s, x0, t, noise), expected)
    xt = q_sample(s, x0, t, noise)
    mean, log_var = posterior(s, x0, xt, t)
    assert log_var.shape == (2, 1)
    torch.testing.assert_close(mean[0], x0[0])  # t = 0: the posterior mean is x_0 itself
    # x0_from_eps inverts q_sample given the true noise
    torch.testing.assert_close(x0_from_eps(s, xt, t, noise), x0)


def test_q_sample_statistics():
    s = make_schedule("linear-var", 20, 0.01, 0.5)
    n = 40000
    x0 = torch.tensor([[2.0, -1.0, 0.5]]).expand(n, 3)
    g = torch.Generator().manual_seed(0)
    xt = q_sample(s, x0, torch.full((n,), 12), torch.randn(n, 3, generator=g))
    abar = float(s.alpha_bar[12])
    sd = math.sqrt(1 - abar)
    torch.testing.assert_close(xt.mean(0), math.sqrt(abar) * x0[0], atol=5 * sd / math.sqrt(n), rtol=0)
    torch.testing.assert_close(xt.var(0), torch.full((3,), 1 - abar), atol=0.03 * (1 - abar), rtol=0)


def test_timestep_embedding_hand_values():
    emb = timestep_embedding(torch.tensor([0, 1]), 4)  # frequencies 1 and 10000^(-1/2) = 0.01
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(emb[1], torch.tensor([math.cos(1), math.cos(0.01), math.sin(1), math.sin(0.01)]))
    odd = timestep_embedding(torch.tensor([3]), 5)
    assert odd.shape == (1, 5) and float(odd[0, 4]) == 0.0


class Zero(nn.Module):
    """A denoiser that always predicts zeros."""

    def forward(self, x_t, t, condition=None):
        return torch.zeros_like(x_t)


def test_denoiser_rows_are_independent_of_the_other_rows_steps():
    """The step embedding computed once per distinct step: each row's output is what it gets alone."""
    torch.manual_seed(0)
    denoiser = Denoiser(6, hidden=(8,), time_dim=4, condition_dim=3).eval()
    x, cond = torch.randn(7, 6), torch.randn(7, 3)
    t = torch.tensor([3, 0, 3, 9, 1, 0, 3])
    alone = torch.cat([denoiser(x[i:i + 1], t[i:i + 1], cond[i:i + 1]) for i in range(7)])
    torch.testing.assert_close(denoiser(x, t, cond), alone)


@pytest.mark.parametrize("normalize", [False, True])
def test_scaled_parameters_rescale_input_and_output(normalize):
    """functional_call with scaled_parameters(s_in, s_out) = f(x * s_in) * s_out, the parameters detached."""
    torch.manual_seed(0)
    denoiser = Denoiser(6, hidden=(8, 5), time_dim=4, condition_dim=3, normalize_input=normalize).eval()
    x, cond, t = torch.randn(7, 6), torch.randn(7, 3), torch.tensor([3, 0, 3, 9, 1, 0, 3])
    s_in, s_out = torch.tensor(2.5), torch.tensor(0.3)
    params = denoiser.scaled_parameters(s_in, s_out)
    out = torch.func.functional_call(denoiser, params, (x, t, cond))
    torch.testing.assert_close(out, denoiser(x * s_in, t, cond) * s_out)
    assert not any(p.requires_grad for p in params.values())


def test_diffusion_loss_hand_values_and_reweighting():
    s = make_schedule("linear", 5, 0.1, 0.5)
    x0 = torch.tensor([[1.0, 3.0], [2.0, 0.0], [0.0, -1.0]])
    out = diffusion_loss(Zero(), s, x0, None, torch.Generator().manual_seed(7), target="x0")
    torch.testing.assert_close(out.loss, torch.tensor([5.0, 2.0, 0.5]))  # mean over d of x0^2
    torch.testing.assert_close(out.x0_pred, torch.zeros(3, 2))
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 5, (3,), generator=g)
    noise = torch.randn(3, 2, generator=g)  # the same draws, in the same order, as diffusion_loss makes
    eps = diffusion_loss(Zero(), s, x0, None, torch.Generator().manual_seed(7), target="eps")
    torch.testing.assert_close(eps.loss, noise.pow(2).mean(1))
    weighted = diffusion_loss(Zero(), s, x0, None, torch.Generator().manual_seed(7), target="x0", reweight=True)
    torch.testing.assert_close(weighted.loss, out.loss * s.x0_loss_weight[t].float())
    # eps: the same weight on the error of the x0 that the noise prediction implies
    weighted_eps = diffusion_loss(Zero(), s, x0, None, torch.Generator().manual_seed(7), target="eps", reweight=True)
    implied_error = (weighted_eps.x0_pred - x0).pow(2).mean(1)
    torch.testing.assert_close(weighted_eps.loss, implied_error * s.x0_loss_weight[t].float())


def clustered(seed: int, n: int = 512, dim: int = 8, k: int = 4):
    """(n, dim) points tight around k random centres, their centres (k, dim) and cluster ids (n,)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g)
    label = torch.randint(0, k, (n,), generator=g)
    return centres[label] + 0.1 * torch.randn(n, dim, generator=g), centres, label


def x0_error(denoiser, schedule, x0, condition=None, target="x0"):
    """Mean squared error of the x_0 prediction at fixed random steps and noise."""
    with torch.no_grad():
        out = diffusion_loss(denoiser.eval(), schedule, x0, condition, torch.Generator().manual_seed(123), target)
    denoiser.train()
    return float((out.x0_pred - x0).pow(2).mean())


def train(denoiser, schedule, x0, condition=None, target="x0", steps=200):
    """Adam on the mean diffusion loss, seeded."""
    opt = torch.optim.Adam(denoiser.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        loss = diffusion_loss(denoiser, schedule, x0, condition, g, target).loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return denoiser


@pytest.fixture(scope="module")
def trained():
    """A denoiser trained 200 steps on clustered points (x0 target), with its schedule and data."""
    x0, _, _ = clustered(0)
    schedule = make_schedule("linear-var", 20, 0.01, 0.5)
    torch.manual_seed(0)
    untrained = Denoiser(8, hidden=(64,), time_dim=16)
    before = x0_error(untrained, schedule, x0)
    return train(untrained, schedule, x0), schedule, x0, before


def test_training_lowers_reconstruction_error(trained):
    denoiser, schedule, x0, before = trained
    after = x0_error(denoiser, schedule, x0)
    g = torch.Generator().manual_seed(123)
    t = torch.randint(0, schedule.steps, (x0.shape[0],), generator=g)
    identity = float((q_sample(schedule, x0, t, torch.randn(x0.shape, generator=g)) - x0).pow(2).mean())
    assert after < 0.2 * before
    assert after < 0.5 * identity  # it learned the clusters: better than returning x_t unchanged


def test_eps_target_learns_too():
    x0, _, _ = clustered(0)
    schedule = make_schedule("linear-var", 20, 0.01, 0.5)
    torch.manual_seed(0)
    denoiser = Denoiser(8, hidden=(64,), time_dim=16)
    before = x0_error(denoiser, schedule, x0, target="eps")
    assert x0_error(train(denoiser, schedule, x0, target="eps"), schedule, x0, target="eps") < 0.3 * before


def test_condition_carries_information():
    # pure points at 4 centres; at heavy noise only the condition (the one-hot cluster) tells them apart
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 8, generator=g)
    label = torch.randint(0, 4, (512,), generator=g)
    x0, condition = centres[label], nn.functional.one_hot(label, 4).float()
    schedule = make_schedule("linear-var", 20, 0.3, 0.95)
    torch.manual_seed(0)
    plain = train(Denoiser(8, hidden=(64,)), schedule, x0)
    torch.manual_seed(0)
    conditioned = train(Denoiser(8, hidden=(64,), condition_dim=4), schedule, x0, condition)
    assert x0_error(conditioned, schedule, x0, condition) < 0.5 * x0_error(plain, schedule, x0)


def test_reverse_sample_shape_determinism_and_denoising(trained):
    denoiser, schedule, x0, _ = trained
    denoiser.train()
    a = reverse_sample(denoiser, schedule, x0, None, steps=0)
    assert a.shape == x0.shape and not a.requires_grad
    torch.testing.assert_close(reverse_sample(denoiser, schedule, x0, None, steps=0), a, rtol=0, atol=0)
    assert denoiser.training  # its mode is restored
    seeded = [reverse_sample(denoiser, schedule, x0, None, steps=20, generator=torch.Generator().manual_seed(s))
              for s in (5, 5, 6)]
    torch.testing.assert_close(seeded[0], seeded[1], rtol=0, atol=0)
    assert not torch.equal(seeded[0], seeded[2])
    noisy = reverse_sample(denoiser, schedule, x0, None, steps=20, noise=True,
                           generator=torch.Generator().manual_seed(5))
    assert not torch.equal(noisy, seeded[0])
    # from x0 noised to the last step (CausalDiffRec's sampling_steps = T), the chain lands near x0
    g = torch.Generator().manual_seed(5)
    start = q_sample(schedule, x0, torch.full((x0.shape[0],), 19), torch.randn(x0.shape, generator=g))
    assert float((seeded[0] - x0).pow(2).mean()) < 0.4 * float((start - x0).pow(2).mean())


@pytest.mark.parametrize("call, message", [
    (lambda: make_schedule("cosin", 10), "did you mean 'cosine'"),
    (lambda: make_schedule("linear", 0), "diffusion.steps must be a positive integer"),
    (lambda: make_schedule("linear", 2.5), "diffusion.steps must be a positive integer"),
    (lambda: make_schedule("linear-var", 10, 0.02, 0.01), "diffusion.noise_min (0.02) must be below"),
    (lambda: make_schedule("linear", 10, 0.0, 0.5), "must lie in (0, 1)"),
    (lambda: make_schedule("linear-var", 10, 0.1, 2.0), "must lie in (0, 1)"),
    (lambda: make_schedule("linear", 10, 0.1, 0.2, scale=0), "diffusion.noise_scale must be > 0"),
    (lambda: diffusion_loss(Zero(), make_schedule("linear", 3, 0.1, 0.3), torch.zeros(2, 2), None,
                            torch.Generator(), target="x_0"), "did you mean 'x0'"),
    (lambda: reverse_sample(Zero(), make_schedule("linear", 3, 0.1, 0.3), torch.zeros(2, 2), None, steps=4),
     "diffusion.sampling_steps must be an integer in [0, diffusion.steps = 3]"),
    (lambda: reverse_sample(Zero(), make_schedule("linear", 3, 0.1, 0.3), torch.zeros(2, 2), None, steps=2),
     "pass a seeded torch.Generator"),
    (lambda: Denoiser(2, condition_dim=3)(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)),
     "got no condition"),
])
def test_bad_inputs_raise_one_line_errors(call, message):
    with pytest.raises(GraphrecError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)
