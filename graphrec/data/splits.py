"""Splits as pure seeded functions of (interactions, ratios, seed) -> (train, valid, test)."""
from __future__ import annotations

import numpy as np

from .dataset import Interactions

Split = tuple[Interactions, Interactions, Interactions]

# split.method values that, with given files, re-split the union of the files instead of being refused as having no
# effect (protocols.md: the explicit OOD kinds). The OOD splits add their names here along with their functions.
RESPLIT_METHODS: frozenset[str] = frozenset()


def _rank_within_user(user: np.ndarray, *order_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each event among its user's events sorted by `order_keys` (first key first), and their count."""
    order = np.lexsort(tuple(reversed(order_keys)) + (user,))
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - starts[user[order]]
    return rank, counts[user]


def _tail_split(data: Interactions, rank: np.ndarray, count: np.ndarray, n_valid: np.ndarray,
                n_test: np.ndarray) -> Split:
    """The last n_test events of each user (by rank) to test, the n_valid before them to valid."""
    from_end = count - 1 - rank
    test = from_end < n_test
    valid = ~test & (from_end < n_test + n_valid)
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


def temporal_split(data: Interactions, valid_ratio: float, test_ratio: float, seed: int) -> Split:
    """Per user, the latest test_ratio of events to test and the valid_ratio before them to valid."""
    if data.timestamp is None:
        raise ValueError("temporal split needs timestamps")
    tiebreak = np.random.default_rng(seed).random(len(data))
    rank, count = _rank_within_user(data.user, data.timestamp, tiebreak)
    return _tail_split(data, rank, count, *_per_user_counts(count, valid_ratio, test_ratio))


def global_temporal_split(data: Interactions, valid_ratio: float, test_ratio: float, seed: int) -> Split:
    """All events after the global (1 - test_ratio) time quantile to test, the valid_ratio before to valid."""
    if data.timestamp is None:
        raise ValueError("temporal split needs timestamps")
    order = np.lexsort((np.random.default_rng(seed).random(len(data)), data.timestamp))
    position = np.empty(len(data), dtype=np.int64)
    position[order] = np.arange(len(data))
    n_test, n_valid = int(len(data) * test_ratio), int(len(data) * valid_ratio)
    test = position >= len(data) - n_test
    valid = ~test & (position >= len(data) - n_test - n_valid)
    return data.take(~test & ~valid), data.take(valid), data.take(test)


def carve_validation(train: Interactions, ratio: float, seed: int) -> tuple[Interactions, Interactions]:
    """A seeded per-user `ratio` of train as validation, the rest as the new train."""
    new_train, valid, _ = random_split(train, ratio, 0.0, seed)
    return new_train, valid
