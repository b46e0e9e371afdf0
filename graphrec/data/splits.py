"""Splits as pure seeded functions: IID ones (interactions, ratios, seed) -> (train, valid, test); OOD ones
(interactions, seed, keys) -> {train, valid, test, test_ood}; `split_events` is the one entry by method name."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .dataset import Interactions

Split = tuple[Interactions, Interactions, Interactions]



def _rank_within_user(user: np.ndarray, *order_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each event among its user's events sorted by `order_keys` (first key first), and their count."""
    order = np.lexsort(tuple(reversed(order_keys)) + (user,))
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - starts[user[order]]
    return rank, counts[user]


def _tail_masks(rank: np.ndarray, count: np.ndarray, n_valid: np.ndarray | int,
                n_test: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the last n_test events of each group (by rank) and of the n_valid before them."""
    from_end = count - 1 - rank
    test = from_end < n_test
    return ~test & (from_end < n_test + n_valid), test


def _tail_split(data: Interactions, rank: np.ndarray, count: np.ndarray, n_valid: np.ndarray,
                n_test: np.ndarray) -> Split:
    """The last n_test events of each user (by rank) to test, the n_valid before them to valid."""
    valid, test = _tail_masks(rank, count, n_valid, n_test)
    return data.take(~test & ~valid), data.take(valid), data.take(test)


def _per_user_counts(count: np.ndarray, valid_ratio: float, test_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """How many of a user's `count` events go to valid and test; at least one stays in train."""
    n_test = np.floor(count * test_ratio).astype(np.int64)
    n_valid = np.floor(count * valid_ratio).astype(np.int64)
    n_test = np.minimum(n_test, count - 1)
    n_valid = np.minimum(n_valid, count - 1 - n_test)
    return n_valid, n_test


def random_split(data: Interactions, valid_ratio: float, test_ratio: float, seed: int) -> Split:
    """Per user, a seeded random test_ratio of events to test and valid_ratio to valid."""
    rng = np.random.default_rng(seed)
    rank, count = _rank_within_user(data.user, rng.random(len(data)))
    return _tail_split(data, rank, count, *_per_user_counts(count, valid_ratio, test_ratio))


def leave_one_out(data: Interactions, seed: int) -> Split:
    """Per user with 3+ events, the last (by time, ties and untimed events in a seeded random order) to test and the
    one before to valid."""
    tiebreak = np.random.default_rng(seed).random(len(data))
    keys = (data.timestamp, tiebreak) if data.timestamp is not None else (tiebreak,)
    rank, count = _rank_within_user(data.user, *keys)
    enough = (count >= 3).astype(np.int64)
    return _tail_split(data, rank, count, enough, enough)


def _temporal_masks(data: Interactions, valid_ratio: float, test_ratio: float, seed: int,
                    per_user: bool) -> tuple[np.ndarray, np.ndarray]:
    """Valid and test masks of the latest events, per user or over all events (ties in time broken by seed)."""
    if data.timestamp is None:
        raise ValueError("temporal split needs timestamps")
    tiebreak = np.random.default_rng(seed).random(len(data))
    group = data.user if per_user else np.zeros(len(data), dtype=np.int64)
    rank, count = _rank_within_user(group, data.timestamp, tiebreak)
    if per_user:
        return _tail_masks(rank, count, *_per_user_counts(count, valid_ratio, test_ratio))
    return _tail_masks(rank, count, int(len(data) * valid_ratio), int(len(data) * test_ratio))


def temporal_split(data: Interactions, valid_ratio: float, test_ratio: float, seed: int) -> Split:
    """Per user, the latest test_ratio of events to test and the valid_ratio before them to valid."""
    valid, test = _temporal_masks(data, valid_ratio, test_ratio, seed, per_user=True)
    return data.take(~test & ~valid), data.take(valid), data.take(test)


def global_temporal_split(data: Interactions, valid_ratio: float, test_ratio: float, seed: int) -> Split:
    """All events after the global (1 - test_ratio) time quantile to test, the valid_ratio before to valid."""
    valid, test = _temporal_masks(data, valid_ratio, test_ratio, seed, per_user=False)
    return data.take(~test & ~valid), data.take(valid), data.take(test)


def carve_validation(train: Interactions, ratio: float, seed: int) -> tuple[Interactions, Interactions]:
    """A seeded per-user `ratio` of train as validation, the rest as the new train."""
    new_train, valid, _ = random_split(train, ratio, 0.0, seed)
    return new_train, valid


# --- OOD splits: train / valid / test (IID) / test_ood --------------------------------------------------------------

Parts = dict[str, Interactions]

OOD_METHODS = ("popularity", "degree", "temporal", "temporal_global")
# Methods that, with given files, re-split the union of the files (every other method is refused there).
RESPLIT_METHODS: frozenset[str] = frozenset(OOD_METHODS)
"""split.method values whose result has a test_ood part besides train, valid and the IID test."""


def child_seed(seed: int, stream: int) -> int:
    """An independent seed for the `stream`-th random draw of a split made with `seed`."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _with_iid_rest(data: Interactions, ood: np.ndarray, valid: np.ndarray | None, valid_ratio: float,
                   test_ratio: float, seed: int) -> Parts:
    """`ood` (mask) as test_ood and `valid` (mask, or None) as valid; test (and valid when None) drawn per
    user from the remaining events as random_split does."""
    taken = ood if valid is None else ood | valid
    train, rest_valid, test = random_split(data.take(~taken), valid_ratio if valid is None else 0.0, test_ratio,
                                           child_seed(seed, 1))
    return {"train": train, "valid": rest_valid if valid is None else data.take(valid), "test": test,
            "test_ood": data.take(ood)}


def popularity_split(data: Interactions, seed: int, valid_ratio: float = 0.1, test_ratio: float = 0.2,
                     test_ood_ratio: float = 0.1, alpha: float = 1.0, valid_from: str = "iid") -> Parts:
    """test_ood: test_ood_ratio of all events drawn without replacement w.p. proportional to pop(item)^-alpha
    (pop: the item's event count), never a user's last remaining event; valid and test per user from the rest
    as in `random` (valid_from 'ood': valid is valid_ratio of all events drawn like test_ood instead).

    Weighted sampling without replacement by exponential keys (Exp(1) * pop^alpha, smallest first): vectorized.
    """
    rng = np.random.default_rng(seed)
    key = rng.exponential(size=len(data)) * np.bincount(data.item)[data.item].astype(np.float64) ** alpha
    largest = np.zeros(int(data.user.max(initial=-1)) + 1)
    np.maximum.at(largest, data.user, key)
    key[key == largest[data.user]] = np.inf  # each user's least likely event stays in train
    drawable = int(np.isfinite(key).sum())
    n_ood = min(int(len(data) * test_ood_ratio), drawable)
    n_valid = min(int(len(data) * valid_ratio), drawable - n_ood) if valid_from == "ood" else 0
    picked = np.argpartition(key, n_ood + n_valid - 1)[:n_ood + n_valid] if n_ood + n_valid else np.zeros(0, int)
    picked = picked[np.argsort(key[picked], kind="stable")]
    ood, valid = np.zeros(len(data), bool), np.zeros(len(data), bool)
    ood[picked[:n_ood]] = True
    valid[picked[n_ood:]] = True
    return _with_iid_rest(data, ood, valid if valid_from == "ood" else None, valid_ratio, test_ratio, seed)


def degree_split(data: Interactions, seed: int, valid_ratio: float = 0.1, test_ratio: float = 0.2,
                 degree_quantile: float = 0.2, degree_side: str = "low", valid_from: str = "iid") -> Parts:
    """Per user a seeded test_ratio of events held out as in `random` (at least one for a selected user with 2+
    events); the held-out events of the degree_quantile share of users with the fewest (degree_side 'low') or
    most ('high') events form test_ood, the other users' form test. valid_from 'ood': valid only from the
    selected users (at least one each, with 3+ events)."""
    rng = np.random.default_rng(seed)
    degree = np.bincount(data.user)
    present = np.flatnonzero(degree)
    sign = 1 if degree_side == "low" else -1
    by_degree = present[np.lexsort((rng.random(len(present)), sign * degree[present]))]
    selected = np.zeros(len(degree), bool)
    selected[by_degree[:int(round(degree_quantile * len(present)))]] = True
    rank, count = _rank_within_user(data.user, rng.random(len(data)))
    n_valid, n_test = _per_user_counts(count, valid_ratio, test_ratio)
    chosen = selected[data.user]
    n_test = np.where(chosen, np.minimum(np.maximum(n_test, 1), count - 1), n_test)
    if valid_from == "ood":
        n_valid = np.where(chosen, np.maximum(n_valid, 1), 0)
    n_valid = np.minimum(n_valid, count - 1 - n_test)
    train, valid, held = _tail_split(data, rank, count, n_valid, n_test)
    ood = selected[held.user]
    return {"train": train, "valid": valid, "test": held.take(~ood), "test_ood": held.take(ood)}


def temporal_ood_split(data: Interactions, seed: int, valid_ratio: float = 0.1, test_ratio: float = 0.2,
                       test_ood_ratio: float = 0.1, valid_from: str = "iid", per_user: bool = True) -> Parts:
    """test_ood: the latest period, per user (each user's latest test_ood_ratio, as temporal_split) or global
    (after the 1 - test_ood_ratio time quantile); valid and test per user from the earlier events as in
    `random` (valid_from 'ood': valid is the valid_ratio period just before test_ood, as temporal_split's)."""
    valid, ood = _temporal_masks(data, valid_ratio if valid_from == "ood" else 0.0, test_ood_ratio, seed, per_user)
    return _with_iid_rest(data, ood, valid if valid_from == "ood" else None, valid_ratio, test_ratio, seed)


def split_events(data: Interactions, method: str, seed: int, **keys: Any) -> Parts:
    """{train, valid, test[, test_ood]} of one set of events by split.method name; `keys` are SplitConfig's
    (valid_ratio and test_ratio always; the keys a method does not take are ignored)."""
    if method == "random":
        return dict(zip(("train", "valid", "test"), random_split(data, keys["valid_ratio"], keys["test_ratio"], seed)))
    if method == "loo":
        return dict(zip(("train", "valid", "test"), leave_one_out(data, seed)))
    if method in ("temporal", "temporal_global"):
        keys = {**keys, "per_user": method == "temporal"}
    fn = {"popularity": popularity_split, "degree": degree_split, "temporal": temporal_ood_split,
          "temporal_global": temporal_ood_split}[method]
    taken = inspect.signature(fn).parameters
    return fn(data, seed, **{k: v for k, v in keys.items() if k in taken})
