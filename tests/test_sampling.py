"""NegativeSampler and epoch_batches: no positives, seeded, every event once, rank shares partition batches."""
from collections import Counter

import numpy as np
import pytest
import torch

from graphrec.data.dataset import Interactions
from graphrec.data.sampling import NegativeSampler, epoch_batches
from graphrec.errors import GraphrecError

torch.set_num_threads(1)

NUM_USERS, NUM_ITEMS = 4, 6
# user 0 has every item but 5; user 1 has {1, 3}; user 2 has {0}; user 3 has none
TRAIN = Interactions(np.array([0, 0, 0, 0, 0, 1, 1, 2]), np.array([0, 1, 2, 3, 4, 1, 3, 0]))
POSITIVES = {0: {0, 1, 2, 3, 4}, 1: {1, 3}, 2: {0}, 3: set()}


def test_is_positive():
    sampler = NegativeSampler(TRAIN, NUM_USERS, NUM_ITEMS)
    users = torch.arange(NUM_USERS).repeat_interleave(NUM_ITEMS)
    items = torch.arange(NUM_ITEMS).repeat(NUM_USERS)
    got = sampler.is_positive(users, items).tolist()
    assert got == [i in POSITIVES[u] for u, i in zip(users.tolist(), items.tolist())]


def test_never_returns_a_training_positive():
    sampler = NegativeSampler(TRAIN, NUM_USERS, NUM_ITEMS)
    users = torch.arange(NUM_USERS).repeat(2500)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        items = sampler.sample(users, gen)
        assert items.dtype == torch.int64 and items.shape == users.shape
        assert ((items >= 0) & (items < NUM_ITEMS)).all()
        for u in range(NUM_USERS):
            drawn = set(items[users == u].tolist())
            assert not drawn & POSITIVES[u], u
            assert drawn == set(range(NUM_ITEMS)) - POSITIVES[u], u  # every negative is reachable
    assert (sampler.sample(torch.zeros(1000, dtype=torch.int64), gen) == 5).all()


def test_roughly_uniform_over_negatives():
    sampler = NegativeSampler(TRAIN, NUM_USERS, NUM_ITEMS)
    items = sampler.sample(torch.full((12000,), 1, dtype=torch.int64), torch.Generator().manual_seed(1))
    counts = Counter(items.tolist())
    assert set(counts) == {0, 2, 4, 5}
    assert all(2600 < c < 3400 for c in counts.values())  # 3000 expected each


def test_seeded_deterministic():
    sampler = NegativeSampler(TRAIN, NUM_USERS, NUM_ITEMS)
    users = torch.arange(NUM_USERS).repeat(50)
    a = sampler.sample(users, torch.Generator().manual_seed(42))
    b = sampler.sample(users, torch.Generator().manual_seed(42))
    c = sampler.sample(users, torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_user_with_all_items_is_an_error():
    full = Interactions(np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]))
    with pytest.raises(GraphrecError, match="user 0"):
        NegativeSampler(full, 2, 3)
    # duplicated events do not count twice towards "all items"
    dup = Interactions(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 0]))
    NegativeSampler(dup, 2, 3)


def _events(num_users=7, num_items=9, seed=0):
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, num_users * num_items, 40))
    return Interactions(keys // num_items, keys % num_items), num_users, num_items


def test_epoch_batches_cover_every_event_once():
    train, nu, ni = _events()
    sampler = NegativeSampler(train, nu, ni)
    users, items = torch.from_numpy(train.user), torch.from_numpy(train.item)
    expected = sorted(zip(train.user.tolist(), train.item.tolist()))
    gen = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):  # two epochs from one generator: each covers everything, in a new order
        batches = list(epoch_batches(users, items, sampler, 6, gen))
        sizes = [len(b[0]) for b in batches]
        assert sizes == [6] * (len(expected) // 6) + ([len(expected) % 6] if len(expected) % 6 else [])
        seen = [(u, i) for bu, bp, _ in batches for u, i in zip(bu.tolist(), bp.tolist())]
        assert sorted(seen) == expected
        for bu, _, bn in batches:
            assert not sampler.is_positive(bu, bn).any()
        orders.append(seen)
    assert orders[0] != orders[1]


def test_epoch_batches_with_k_negatives():
    train, nu, ni = _events()
    sampler = NegativeSampler(train, nu, ni)
    users, items = torch.from_numpy(train.user), torch.from_numpy(train.item)
    batches = list(epoch_batches(users, items, sampler, 6, torch.Generator().manual_seed(0), num_negatives=3))
    for bu, _, bn in batches:
        assert bn.shape == (len(bu), 3)
        assert not sampler.is_positive(bu.unsqueeze(1).expand_as(bn).reshape(-1), bn.reshape(-1)).any()
    negs = torch.cat([bn for _, _, bn in batches])
    assert (negs[:, 0] != negs[:, 1]).any()  # independent draws, not one repeated


@pytest.mark.parametrize("negatives", [{}, {"num_negatives": 2, "candidates": 3}])
def test_two_ranks_partition_each_global_batch(negatives):
    """Each rank's share of a global batch, negatives included, is exactly its slice of the one-process batch."""
    train, nu, ni = _events(seed=1)
    sampler = NegativeSampler(train, nu, ni)
    users, items = torch.from_numpy(train.user), torch.from_numpy(train.item)

    def epoch(**kw):
        return list(epoch_batches(users, items, sampler, 5, torch.Generator().manual_seed(3), **negatives, **kw))

    single, rank0, rank1 = epoch(), epoch(rank=0, world_size=2), epoch(rank=1, world_size=2)
    assert len(single) == len(rank0) == len(rank1)
    for whole, a, b in zip(single, rank0, rank1):
        assert 0 < len(a[0]) and abs(len(a[0]) - len(b[0])) <= 1
        assert len(a[0]) + len(b[0]) == len(whole[0])
        for part, share in ((a, slice(0, None, 2)), (b, slice(1, None, 2))):
            for got, expected in zip(part, whole):
                assert torch.equal(got, expected[share])
