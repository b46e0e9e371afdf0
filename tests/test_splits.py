"""Split functions: pure and seeded, disjoint and complete, per-user ratios, temporal order."""
from collections import Counter

import numpy as np
import pytest

from graphrec.data.dataset import Interactions
from graphrec.data.splits import (carve_validation, global_temporal_split, leave_one_out, random_split,
                                  temporal_split)

NUM_ITEMS = 50


def make_events(coarse_time: bool = False, seed: int = 0) -> Interactions:
    """30 users with 1..16 distinct items each, shuffled, with timestamps (many ties when coarse)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(30):
        n = 1 + u % 16
        users += [u] * n
        items += rng.choice(NUM_ITEMS, n, replace=False).tolist()
    perm = rng.permutation(len(users))
    users, items = np.array(users)[perm], np.array(items)[perm]
    time = rng.integers(0, 4, len(users)) if coarse_time else rng.random(len(users)) * 1000
    return Interactions(users, items, rating=rng.random(len(users)), timestamp=time.astype(np.float64))


def records(data: Interactions) -> list[tuple]:
    return sorted(zip(data.user.tolist(), data.item.tolist(), data.timestamp.tolist(), data.rating.tolist()))


def same(a: Interactions, b: Interactions) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("user", "item", "rating", "timestamp"))


SPLITTERS = {
    "random": lambda d, s: random_split(d, 0.1, 0.2, s),
    "loo": lambda d, s: leave_one_out(d, s),
    "temporal": lambda d, s: temporal_split(d, 0.1, 0.2, s),
    "global": lambda d, s: global_temporal_split(d, 0.1, 0.2, s),
    "carve": lambda d, s: carve_validation(d, 0.25, s) + (d.take(np.zeros(len(d), bool)),),
}


@pytest.mark.parametrize("name", list(SPLITTERS))
def test_pure_disjoint_complete(name):
    data = make_events(coarse_time=True)
    before = records(data)
    parts = SPLITTERS[name](data, 1)
    assert records(data) == before  # input untouched
    again = SPLITTERS[name](data, 1)
    assert all(same(a, b) for a, b in zip(parts, again))
    joined = records(parts[0]) + records(parts[1]) + records(parts[2])
    assert sorted(joined) == before  # every event in exactly one part, columns kept aligned
    assert len(parts[0]) > 0 and len(parts[1]) > 0
    if name != "carve":
        assert len(parts[2]) > 0


@pytest.mark.parametrize("name", list(SPLITTERS))
def test_different_seed_different_split(name):
    data = make_events(coarse_time=True)  # ties in time let the temporal tie-break depend on the seed
    if name == "loo":  # loo orders by time when there is time; without it, by a seeded random key
        data = Interactions(data.user, data.item, data.rating, None)
    a, b = SPLITTERS[name](data, 1), SPLITTERS[name](data, 2)
    key = lambda x: sorted(zip(x.user.tolist(), x.item.tolist()))  # noqa: E731
    assert key(a[1]) != key(b[1]) or key(a[2]) != key(b[2])


def _per_user(data: Interactions) -> Counter:
    return Counter(data.user.tolist())


def test_random_and_temporal_ratios_per_user():
    data = make_events()
    count = _per_user(data)
    for fn in (random_split, temporal_split):
        for valid_ratio, test_ratio in ((0.1, 0.2), (0.3, 0.9)):  # the second needs the "one stays in train" cap
            train, valid, test = fn(data, valid_ratio, test_ratio, 0)
            tr, va, te = _per_user(train), _per_user(valid), _per_user(test)
            for u, n in count.items():
                n_test = min(int(np.floor(n * test_ratio)), n - 1)
                n_valid = min(int(np.floor(n * valid_ratio)), n - 1 - n_test)
                assert tr[u] >= 1
                assert (tr[u], va[u], te[u]) == (n - n_test - n_valid, n_valid, n_test), (fn.__name__, u, n)
        train, valid, test = fn(data, 0.1, 0.2, 0)
        tr, va, te = _per_user(train), _per_user(valid), _per_user(test)
        # a few written out: 1 event -> all train; 5 -> 4/0/1; 10 -> 7/1/2; 16 -> 12/1/3
        by_count = {n: u for u, n in count.items()}
        assert (tr[by_count[1]], va[by_count[1]], te[by_count[1]]) == (1, 0, 0)
        assert (tr[by_count[5]], va[by_count[5]], te[by_count[5]]) == (4, 0, 1)
        assert (tr[by_count[10]], va[by_count[10]], te[by_count[10]]) == (7, 1, 2)
        assert (tr[by_count[16]], va[by_count[16]], te[by_count[16]]) == (12, 1, 3)


def test_temporal_test_not_earlier_than_train_per_user():
    for coarse in (False, True):
        data = make_events(coarse_time=coarse, seed=3)
        train, valid, test = temporal_split(data, 0.1, 0.3, 5)
        for u in np.unique(data.user):
            tr = train.timestamp[train.user == u]
            va = valid.timestamp[valid.user == u]
            te = test.timestamp[test.user == u]
            assert len(tr) > 0
            if len(te):
                assert te.min() >= tr.max(), u
                if len(va):
                    assert te.min() >= va.max(), u
            if len(va):
                assert va.min() >= tr.max(), u


def test_leave_one_out():
    data = make_events()
    count = _per_user(data)
    train, valid, test = leave_one_out(data, 0)
    tr, va, te = _per_user(train), _per_user(valid), _per_user(test)
    for u, n in count.items():
        expected = (n - 2, 1, 1) if n >= 3 else (n, 0, 0)
        assert (tr[u], va[u], te[u]) == expected, u
        if n >= 3:  # with timestamps: the latest event to test, the one before to valid
            times = np.sort(data.timestamp[data.user == u])
            assert test.timestamp[test.user == u][0] == times[-1]
            assert valid.timestamp[valid.user == u][0] == times[-2]


def test_global_temporal_split():
    data = make_events(seed=4)
    train, valid, test = global_temporal_split(data, 0.1, 0.2, 0)
    assert len(test) == int(len(data) * 0.2) and len(valid) == int(len(data) * 0.1)
    assert test.timestamp.min() >= train.timestamp.max()
    assert test.timestamp.min() >= valid.timestamp.max()
    assert valid.timestamp.min() >= train.timestamp.max()
    # coarse time: ties cross the boundary, still no test event earlier than a train event
    coarse = make_events(coarse_time=True, seed=4)
    train, valid, test = global_temporal_split(coarse, 0.1, 0.2, 0)
    assert test.timestamp.min() >= train.timestamp.max()


def test_splits_need_timestamps():
    data = make_events()
    data.timestamp = None
    with pytest.raises(ValueError):
        temporal_split(data, 0.1, 0.2, 0)
    with pytest.raises(ValueError):
        global_temporal_split(data, 0.1, 0.2, 0)


def test_carve_validation_ratio_per_user():
    data = make_events()
    count = _per_user(data)
    new_train, valid = carve_validation(data, 0.25, 0)
    tr, va = _per_user(new_train), _per_user(valid)
    for u, n in count.items():
        n_valid = min(int(np.floor(n * 0.25)), n - 1)
        assert (tr[u], va[u]) == (n - n_valid, n_valid), u
    assert sorted(records(new_train) + records(valid)) == records(data)
