"""Distributionally robust (KL / entropy-regularised) reweighting of losses, per sample or per group, and the
Sinkhorn divergence used by DRGO. Formulas and choices: docs/ood-pieces.md.

The adversary maximises sum_i w_i l_i - tau * KL(w || uniform) over the simplex; its maximiser is
w = softmax(l / tau), computed from detached losses, and the model minimises sum_i w_i l_i.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds

from .errors import GraphrecError


def _check_temperature(temperature: float) -> None:
    """GraphrecError unless the temperature is a positive number."""
    if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature > 0):
        raise GraphrecError(f"dro.temperature must be a number > 0 (got {temperature!r}); larger is closer to the "
                            "plain mean, smaller puts more weight on the worst losses")


def dro_weights(losses: torch.Tensor, temperature: float) -> torch.Tensor:
    """(n,) worst-case weights softmax(losses / temperature) of (n,) losses, detached (no gradient flows through w)."""
    _check_temperature(temperature)
    return torch.softmax(losses.detach() / temperature, dim=0)


def dro_objective(losses: torch.Tensor, temperature: float) -> torch.Tensor:
    """Scalar sum_i w_i l_i with w = dro_weights(l); its gradient is sum_i w_i grad l_i (the weights are constants).

    Same gradient as the dual form tau * log mean_i exp(l_i / tau) (Danskin); the value is the reweighted risk.
    """
    return (dro_weights(losses, temperature) * losses).sum()


def group_losses(losses: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(num_groups,) mean of the (n,) losses in each group (groups (n,) int64 in [0, num_groups)); NaN if empty.

    NaN marks an empty group so it cannot pass for a zero loss; its gradient is zero, not NaN.
    """
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
        raise GraphrecError(f"dro.num_groups must be a positive integer (got {num_groups!r})")
    if groups.numel():
        low, high = torch.aminmax(groups)
        if int(low) < 0 or int(high) >= num_groups:
            raise GraphrecError(f"group ids must lie in [0, dro.num_groups = {num_groups}) (got {int(low)}..."
                                f"{int(high)}); raise dro.num_groups or fix the group ids")
    sums = losses.new_zeros(num_groups).index_add(0, groups, losses)
    counts = torch.bincount(groups, minlength=num_groups).to(losses.dtype)
    means = sums / counts.clamp(min=1)
    return torch.where(counts > 0, means, torch.full_like(means, float("nan")))


def group_dro_objective(losses: torch.Tensor, groups: torch.Tensor, num_groups: int, temperature: float,
                        penalty: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Scalar sum_g w_g L_g over non-empty groups, L_g = group_losses(...), w = softmax((L_g - penalty_g) / tau).

    `penalty` (num_groups,), e.g. DRGO's sinkhorn_weight * S(group, nominal), only lowers a group's weight; it is
    detached like the losses. Empty groups get weight 0.
    """
    _check_temperature(temperature)
    per_group = group_losses(losses, groups, num_groups)
    present = ~torch.isnan(per_group)
    scores = per_group.detach() - (penalty.detach() if penalty is not None else 0)
    weights = torch.softmax(scores.masked_fill(~present, float("-inf")) / temperature, dim=0)
    return (weights * per_group.nan_to_num(0.0)).sum()


def popularity_groups(item_popularity: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(num_items,) int64 group of each item by popularity quantile: 0 = least popular ... num_groups - 1 = most.

    Items are ranked by (popularity, item id) and cut into num_groups ranges of equal size (to within one item), so
    ties never leave a group empty.
    """
    num_items = int(item_popularity.shape[0])
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= num_items:
        raise GraphrecError(f"dro.num_groups must be an integer in [1, number of items = {num_items}] "
                            f"(got {num_groups!r})")
    order = torch.argsort(item_popularity, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_items, device=order.device)
    return rank * num_groups // num_items


def user_clusters(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, num_groups: int,
                  rank: int = 64, seed: int = 0, iterations: int = 100) -> torch.Tensor:
    """(num_users,) int64 K-means cluster of each user's row of the binary training matrix in a rank-`rank` SVD.

    DRGO's uncertainty-set groups: user factors U S of a truncated SVD (rank below min(users, items)), then Lloyd's
    K-means from a k-means++ start, both seeded by `seed`.
    """
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= num_users:
        raise GraphrecError(f"dro.num_groups must be an integer in [1, number of users = {num_users}] "
                            f"(got {num_groups!r})")
    rank = max(1, min(rank, min(num_users, num_items) - 1))
    matrix = csr_matrix((np.ones(len(users)), (users, items)), shape=(num_users, num_items))
    left, singular, _ = svds(matrix, k=rank, random_state=seed)
    return torch.from_numpy(kmeans(left * singular, num_groups, np.random.default_rng(seed), iterations))


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 100) -> np.ndarray:
    """(n,) int64 cluster of each of the (n, d) points: k-means++ seeding, then Lloyd steps until no label changes."""
    centers = points[[rng.integers(len(points))]]
    for _ in range(1, k):  # k-means++: the next center drawn with probability proportional to squared distance
        nearest = ((points[:, None, :] - centers[None]) ** 2).sum(-1).min(1)
        total = nearest.sum()
        pick = rng.choice(len(points), p=nearest / total) if total > 0 else rng.integers(len(points))
        centers = np.vstack([centers, points[pick]])
    labels = np.full(len(points), -1, dtype=np.int64)
    for _ in range(iterations):
        new = ((points[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):  # an emptied cluster keeps its center
            members = points[labels == c]
            if len(members):
                centers[c] = members.mean(0)
    return labels


def _entropic_ot(cost: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, epsilon: float, iterations: int,
                 tolerance: float = 0.0) -> torch.Tensor:
    """(B,) entropic OT values <a, f> + <b, g> of B problems at once, log-domain Sinkhorn.

    cost (B, n, m); log_a (B, n) and log_b (B, m) the log marginal weights, -inf on padding (a padded point carries
    no mass, so it changes nothing). The potentials are iterated without gradient, at most `iterations` times, and
    stop early once no potential g moved by more than `tolerance` (cost units; 0: always all iterations) in one
    iteration. The value is the semi-dual <a, T(g)> + <b, g> with one last differentiable soft c-transform
    f = T(g), whose gradient in the cost is the transport plan (envelope theorem), without storing every iteration.
    """
    def soft_c_transform(g: torch.Tensor) -> torch.Tensor:  # (B, n) f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)
        return -epsilon * torch.logsumexp((g.unsqueeze(1) - cost) / epsilon + log_b.unsqueeze(1), dim=2)

    with torch.no_grad():
        g = cost.new_zeros(cost.shape[0], cost.shape[2])
        for _ in range(iterations):
            f = soft_c_transform(g)
            moved, g = g, -epsilon * torch.logsumexp((f.unsqueeze(2) - cost) / epsilon + log_a.unsqueeze(2), dim=1)
            if tolerance > 0 and float((g - moved).abs().max()) <= tolerance:
                break
    return (log_a.exp() * soft_c_transform(g)).sum(1) + (log_b.exp() * g).sum(1)


def _padded(clouds: list[torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, size, d) zero-padded points of B clouds (n_k, d) and their (B, size) log uniform weights (-inf: padding)."""
    points = clouds[0].new_zeros(len(clouds), size, clouds[0].shape[1])
    log_w = clouds[0].new_full((len(clouds), size), float("-inf"))
    for k, cloud in enumerate(clouds):
        points[k, :len(cloud)] = cloud
        log_w[k, :len(cloud)] = -math.log(len(cloud))
    return points, log_w


def sinkhorn_divergences(xs: list[torch.Tensor], y: torch.Tensor, epsilon: float = 0.05, iterations: int = 100,
                         tolerance: float = 0.0) -> torch.Tensor:
    """(K,) debiased Sinkhorn divergences S(x_k, y) = OT(x_k, y) - (OT(x_k, x_k) + OT(y, y)) / 2 of K point clouds
    x_k (n_k, d) to one cloud y (m, d), as one batched solve of 2K + 1 transport problems (OT(y, y) once).

    Uniform weights, ground cost the Euclidean distance (DRGO's geomloss p = 1), blur epsilon; 0 for identical clouds.
    `tolerance` > 0 stops the iterations early (see _entropic_ot).
    """
    if not epsilon > 0:
        raise GraphrecError(f"Sinkhorn epsilon must be > 0 (got {epsilon}); DRGO uses 0.05")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise GraphrecError(f"Sinkhorn iterations must be a positive integer (got {iterations!r})")
    if not tolerance >= 0:
        raise GraphrecError(f"Sinkhorn tolerance must be >= 0 (got {tolerance}); 0 runs every iteration")
    k = len(xs)
    size = max(len(y), *(len(x) for x in xs))
    left, log_a = _padded([*xs, *xs, y], size)
    right, log_b = _padded([y] * k + [*xs, y], size)
    values = _entropic_ot(torch.cdist(left, right), log_a, log_b, epsilon, iterations, tolerance)
    return values[:k] - 0.5 * (values[k:2 * k] + values[2 * k])


def sinkhorn_distance(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.05, iterations: int = 100,
                      tolerance: float = 0.0) -> torch.Tensor:
    """Scalar debiased Sinkhorn divergence OT(x, y) - (OT(x, x) + OT(y, y)) / 2 between point clouds x (n, d), y (m, d)
    (sinkhorn_divergences of one cloud)."""
    return sinkhorn_divergences([x], y, epsilon, iterations, tolerance)[0]
