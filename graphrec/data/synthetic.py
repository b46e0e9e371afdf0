"""The embedded synthetic data: seeded generators with planted structure (interactions; feature-field rows)."""
from __future__ import annotations

import numpy as np

from .dataset import Interactions
from .fields import FieldRows, FieldSpace


def generate(num_users: int, num_items: int, num_communities: int = 12, mean_degree: float = 25.0,
             in_community: float = 0.8, popularity_exponent: float = 1.1, seed: int = 7) -> Interactions:
    """Implicit feedback where each user mostly picks popular items of their own community.

    Users and items get a community each; item weights follow a Zipf law (`popularity_exponent`);
    user degrees are log-normal around `mean_degree` (at least 3). Each event picks the user's
    community with probability `in_community`, else any item, by popularity. Duplicates are dropped.
    Timestamps are uniform in [0, 1e6) with a popularity drift: a growing share of later events
    follows a second popularity ranking, so temporal splits show a measurable shift. Vectorized.
    """
    rng = np.random.default_rng(seed)
    user_comm, item_comm = _draw_communities(rng, num_users, num_items, num_communities)
    weight = (1.0 + rng.permutation(num_items)) ** -popularity_exponent

    sigma = 0.8
    degree = rng.lognormal(np.log(mean_degree) - sigma ** 2 / 2, sigma, num_users)
    degree = np.clip(np.round(degree), 3, max(3, num_items // 2)).astype(np.int64)
    user = np.repeat(np.arange(num_users, dtype=np.int64), degree)
    n = len(user)

    # one inverse-CDF table per community (and one for "any item"), laid end to end as [c, c + 1)
    order = np.lexsort((np.arange(num_items), item_comm))
    comm_of_sorted = item_comm[order]
    w_sorted = weight[order]
    comm_total = np.bincount(comm_of_sorted, weights=w_sorted, minlength=num_communities)
    within = np.cumsum(w_sorted) - np.concatenate([[0], np.cumsum(comm_total)])[comm_of_sorted]
    comm_cdf = comm_of_sorted + within / np.maximum(comm_total[comm_of_sorted], 1e-300)
    any_cdf = np.cumsum(weight) / weight.sum()

    own = rng.random(n) < in_community
    pick_own = np.minimum(np.searchsorted(comm_cdf, user_comm[user] + rng.random(n)), num_items - 1)
    pick_any = np.minimum(np.searchsorted(any_cdf, rng.random(n)), num_items - 1)
    item = np.where(own, order[pick_own], pick_any)

    timestamp = rng.random(n) * 1e6
    trend_cdf = np.cumsum(weight[rng.permutation(num_items)])
    trending = np.minimum(np.searchsorted(trend_cdf / trend_cdf[-1], rng.random(n)), num_items - 1)
    item = np.where(rng.random(n) < 0.3 * timestamp / 1e6, trending, item)

    _, first = np.unique(user * num_items + item, return_index=True)
    first.sort()
    return Interactions(user[first], item[first], None, timestamp[first])


def planted_communities(num_users: int, num_items: int, num_communities: int = 12,
                        seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(num_users,) and (num_items,) community ids that `generate` plants with the same arguments and seed."""
    return _draw_communities(np.random.default_rng(seed), num_users, num_items, num_communities)


def _draw_communities(rng: np.random.Generator, num_users: int, num_items: int,
                      num_communities: int) -> tuple[np.ndarray, np.ndarray]:
    """User then item communities, the first draws of `generate`'s generator."""
    return rng.integers(0, num_communities, num_users), rng.integers(0, num_communities, num_items)


def generate_field_rows(num_rows: int, field_sizes: list[int], rank: int, labels: str = "binary",
                        noise: float = 0.1, seed: int = 7) -> tuple[FieldRows, FieldSpace]:
    """Feature-field rows whose labels come from a planted FM over one-hot fields.

    Each row takes one value per field, uniformly; feature ids run field by field. The planted score is
    sum_i w_i + sum_{i<j} <v_i, v_j> with w ~ N(0, 0.5^2) and v ~ N(0, 1/rank), standardized to mean 0 and sd 3.
    labels 'binary': 1 with probability sigmoid(score), else -1 (the NFM convention); 'real': score / 3 + N(0, noise^2).
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(field_sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    features = (rng.random((num_rows, len(sizes))) * sizes).astype(np.int64) + offsets
    linear = rng.normal(0.0, 0.5, sizes.sum())
    vectors = rng.normal(0.0, rank ** -0.5, (sizes.sum(), rank))
    emb = vectors[features]
    score = linear[features].sum(1) + 0.5 * (np.square(emb.sum(1)) - np.square(emb).sum(1)).sum(1)
    score = 3.0 * (score - score.mean()) / max(score.std(), 1e-12)
    if labels == "binary":
        label = np.where(rng.random(num_rows) < 1.0 / (1.0 + np.exp(-score)), 1.0, -1.0)
    else:
        label = score / 3.0 + rng.normal(0.0, noise, num_rows)
    rows = FieldRows(features, np.ones(features.shape, np.float32), label.astype(np.float32))
    space = FieldSpace(int(sizes.sum()), np.repeat(np.arange(len(sizes)), sizes), [f"field{j}" for j in
                                                                                   range(len(sizes))])
    return rows, space
