"""graphrec.dro: the entropy-regularised worst-case weights, their gradients, the group form, popularity groups,
the Sinkhorn divergence, and a planted minority that DRO training must help."""
import math

import pytest
import torch
import torch.nn.functional as F

from graphrec.dro import (dro_objective, dro_weights, group_dro_objective, group_losses, popularity_groups,
                          sinkhorn_distance, sinkhorn_divergences)
from graphrec.errors import GraphrecError

torch.set_num_threads(1)


def test_weights_hand_values_and_limits():
    losses = torch.tensor([0.0, math.log(2.0), math.log(3.0)])
    torch.testing.assert_close(dro_weights(losses, 1.0), torch.tensor([1 / 6, 2 / 6, 3 / 6]))
    # tau = 0.5 squares the odds: 1 : 4 : 9
    torch.testing.assert_close(dro_weights(losses, 0.5), torch.tensor([1 / 14, 4 / 14, 9 / 14]))
    spread = torch.tensor([0.3, 2.0, -1.0, 0.7])
    for tau in (0.01, 0.3, 1.0, 50.0):
        assert float(dro_weights(spread, tau).sum()) == pytest.approx(1.0)
    uniform_gap = [float((dro_weights(spread, tau) - 0.25).abs().max()) for tau in (1.0, 10.0, 1e4)]
    assert uniform_gap[0] > uniform_gap[1] > uniform_gap[2] and uniform_gap[2] < 1e-3
    assert float(dro_weights(spread, 1e-3)[1]) > 0.999  # all the weight on the largest loss


def test_objective_gradient_is_weighted_sum_of_gradients():
    theta = torch.tensor([0.5, -1.0], requires_grad=True)
    features = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    targets = torch.tensor([1.0, 0.0, 2.0])
    losses = (features @ theta - targets) ** 2
    weights = dro_weights(losses, 0.7)
    assert not weights.requires_grad
    grad = torch.autograd.grad(dro_objective(losses, 0.7), theta, retain_graph=True)[0]
    per_sample = torch.stack([torch.autograd.grad(l, theta, retain_graph=True)[0] for l in losses])
    torch.testing.assert_close(grad, (weights.unsqueeze(1) * per_sample).sum(0))
    # the dual form tau * log mean exp(l / tau) has the same gradient (Danskin)
    dual = 0.7 * torch.logsumexp(losses / 0.7, 0)
    torch.testing.assert_close(grad, torch.autograd.grad(dual, theta)[0])
    assert float(dro_objective(losses, 0.7).detach()) == pytest.approx(float((weights * losses).sum().detach()))


def test_group_losses_hand_values_and_empty_groups():
    losses = torch.tensor([1.0, 3.0, 2.0, 6.0], requires_grad=True)
    groups = torch.tensor([0, 0, 2, 2])
    per_group = group_losses(losses, groups, 3)
    torch.testing.assert_close(per_group[[0, 2]], torch.tensor([2.0, 4.0]))
    assert bool(torch.isnan(per_group[1]))
    value = group_dro_objective(losses, groups, 3, 1.0)
    w = torch.softmax(torch.tensor([2.0, 4.0]), 0)  # the empty group gets no weight
    assert float(value.detach()) == pytest.approx(float(w[0] * 2 + w[1] * 4))
    value.backward()
    torch.testing.assert_close(losses.grad, torch.stack([w[0] / 2, w[0] / 2, w[1] / 2, w[1] / 2]))


def test_group_objective_with_singleton_groups_equals_sample_objective():
    theta = torch.tensor([0.2, 0.4], requires_grad=True)
    features = torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 3.0], [0.5, 0.5]])
    losses = (features @ theta - 1.0) ** 2
    sample = dro_objective(losses, 0.3)
    group = group_dro_objective(losses, torch.tensor([2, 0, 3, 1]), 4, 0.3)
    assert float(group.detach()) == pytest.approx(float(sample.detach()))
    torch.testing.assert_close(torch.autograd.grad(group, theta, retain_graph=True)[0],
                               torch.autograd.grad(sample, theta)[0])


def test_group_penalty_lowers_a_groups_weight():
    losses = torch.tensor([1.0, 1.0, 2.0, 2.0])
    groups = torch.tensor([0, 0, 1, 1])
    plain = float(group_dro_objective(losses, groups, 2, 1.0))
    assert plain > 1.5  # the worse group dominates
    penalised = float(group_dro_objective(losses, groups, 2, 1.0, penalty=torch.tensor([0.0, 5.0])))
    assert penalised < 1.1  # a far group (large Sinkhorn distance) is no longer the worst case


def test_popularity_groups_hand_values():
    popularity = torch.tensor([5, 1, 3, 3, 0, 9])
    # ranks by (popularity, id): item4 0, item1 1, item2 2, item3 3, item0 4, item5 5 -> rank * 3 // 6
    torch.testing.assert_close(popularity_groups(popularity, 3), torch.tensor([2, 0, 1, 1, 0, 2]))
    ties = popularity_groups(torch.ones(10, dtype=torch.long), 5)  # all tied: equal groups by id
    torch.testing.assert_close(torch.bincount(ties), torch.full((5,), 2))


def test_sinkhorn_zero_for_identical_clouds_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    assert abs(float(sinkhorn_distance(x, x.clone()))) < 1e-6
    shifts = [0.25, 0.5, 1.0, 2.0]
    values = [float(sinkhorn_distance(x, x + torch.tensor([s, 0.0, 0.0], dtype=torch.float64))) for s in shifts]
    assert all(a < b for a, b in zip(values, values[1:]))
    # Euclidean ground cost: a rigid shift by 2 costs about 2 per unit of mass (Wasserstein-1)
    assert values[-1] == pytest.approx(2.0, rel=0.1)


def test_sinkhorn_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, generator=g, dtype=torch.float64) + 0.5
    grad = torch.autograd.grad(sinkhorn_distance(x, y, 0.1, 500), x)[0]
    step = 1e-6
    numeric = torch.zeros_like(x)
    with torch.no_grad():
        for i in range(6):
            for j in range(2):
                bump = torch.zeros_like(x)
                bump[i, j] = step
                numeric[i, j] = (sinkhorn_distance(x + bump, y, 0.1, 500)
                                 - sinkhorn_distance(x - bump, y, 0.1, 500)) / (2 * step)
    torch.testing.assert_close(grad, numeric, atol=1e-5, rtol=1e-4)


def dense_entropic_ot(x: torch.Tensor, y: torch.Tensor, epsilon: float, iterations: int = 3000) -> float:
    """Reference OT_eps(x, y): plain (not log-domain) Sinkhorn scaling on the Gibbs kernel, value <a, f> + <b, g>."""
    cost = torch.cdist(x, y)
    kernel = torch.exp(-cost / epsilon)
    a, b = torch.full((len(x),), 1 / len(x), dtype=x.dtype), torch.full((len(y),), 1 / len(y), dtype=x.dtype)
    v = torch.ones_like(b)
    for _ in range(iterations):
        u = a / (kernel @ v)
        v = b / (kernel.t() @ u)
    return float((a * epsilon * u.log()).sum() + (b * epsilon * v.log()).sum())


def test_batched_divergences_equal_a_dense_reference_cloud_by_cloud():
    """Clouds of other sizes than y (padded in the batched solve) and OT(y, y) solved once give each cloud's own
    debiased divergence."""
    g = torch.Generator().manual_seed(2)
    y = torch.randn(12, 3, generator=g, dtype=torch.float64)
    xs = [torch.randn(n, 3, generator=g, dtype=torch.float64) + shift for n, shift in ((12, 0.0), (5, 0.5), (2, 1.0),
                                                                                     (17, 0.2))]
    eps = 0.5
    batched = sinkhorn_divergences(xs, y, eps, 500)
    expected = [dense_entropic_ot(x, y, eps) - 0.5 * (dense_entropic_ot(x, x, eps) + dense_entropic_ot(y, y, eps))
                for x in xs]
    torch.testing.assert_close(batched, torch.tensor(expected, dtype=torch.float64), atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(sinkhorn_distance(xs[1], y, eps, 500), batched[1])


def test_sinkhorn_early_exit_matches_all_iterations_within_tolerance():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(30, 4, generator=g, dtype=torch.float64)
    xs = [torch.randn(n, 4, generator=g, dtype=torch.float64) + 0.3 for n in (30, 8)]
    full = sinkhorn_divergences(xs, y, 0.2, 2000)
    early = sinkhorn_divergences(xs, y, 0.2, 2000, tolerance=1e-7)
    torch.testing.assert_close(early, full, atol=1e-6, rtol=0)
    # the exit happens: a tolerance no change exceeds stops after the first iteration
    torch.testing.assert_close(sinkhorn_divergences(xs, y, 0.2, 2000, tolerance=1e9),
                               sinkhorn_divergences(xs, y, 0.2, 1))
    assert not torch.allclose(sinkhorn_divergences(xs, y, 0.2, 1), full)


def planted_minority(seed: int = 0, n: int = 1000, minority: int = 100):
    """2-d points labelled by the first axis, except a 10% minority labelled by the second axis."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    groups = (torch.arange(n) < minority).long()
    y = torch.where(groups == 1, (x[:, 1] > 0).float(), (x[:, 0] > 0).float())
    return x, y, groups


def fit_logistic(objective, steps: int = 300):
    """Full-batch gradient descent on a bias-free logistic regression; returns the final per-sample losses."""
    x, y, groups = planted_minority()
    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    for _ in range(steps):
        losses = F.binary_cross_entropy_with_logits(x @ w, y, reduction="none")
        opt.zero_grad()
        objective(losses, groups).backward()
        opt.step()
    return F.binary_cross_entropy_with_logits(x @ w, y, reduction="none").detach(), groups, w.detach()


def test_dro_helps_a_planted_minority_that_averaging_neglects():
    mean_losses, groups, w_mean = fit_logistic(lambda losses, groups: losses.mean())
    dro_losses, _, w_dro = fit_logistic(lambda losses, groups: dro_objective(losses, 0.5))
    minority = groups == 1
    # averaging leaves the minority far worse off than DRO does
    assert float(dro_losses[minority].mean()) < float(mean_losses[minority].mean()) - 0.3
    # the adversary gives the minority more than its 10% share of the weight
    assert float(dro_weights(dro_losses, 0.5)[minority].sum()) > 0.15
    # and the classifier turns towards the minority's direction (the second axis)
    assert float(w_dro[1] / w_dro.norm()) > 2 * float(w_mean[1] / w_mean.norm())
    group_losses_, _, _ = fit_logistic(lambda losses, groups: group_dro_objective(losses, groups, 2, 0.1))
    assert float(group_losses_[minority].mean()) < float(mean_losses[minority].mean()) - 0.5


@pytest.mark.parametrize("call, message", [
    (lambda: dro_weights(torch.ones(3), 0.0), "dro.temperature must be a number > 0"),
    (lambda: dro_objective(torch.ones(3), -1.0), "dro.temperature must be a number > 0"),
    (lambda: group_dro_objective(torch.ones(3), torch.zeros(3, dtype=torch.long), 1, 0), "dro.temperature"),
    (lambda: group_losses(torch.ones(2), torch.tensor([0, 3]), 2), "group ids must lie in [0, dro.num_groups = 2)"),
    (lambda: group_losses(torch.ones(2), torch.tensor([0, 1]), 0), "dro.num_groups must be a positive integer"),
    (lambda: popularity_groups(torch.ones(3), 4), "dro.num_groups must be an integer in [1, number of items = 3]"),
    (lambda: sinkhorn_distance(torch.zeros(2, 2), torch.zeros(2, 2), 0.0), "Sinkhorn epsilon must be > 0"),
    (lambda: sinkhorn_distance(torch.zeros(2, 2), torch.zeros(2, 2), 0.1, 0), "iterations must be a positive"),
    (lambda: sinkhorn_distance(torch.zeros(2, 2), torch.zeros(2, 2), 0.1, 5, -1.0), "tolerance must be >= 0"),
])
def test_bad_inputs_raise_one_line_errors(call, message):
    with pytest.raises(GraphrecError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)
