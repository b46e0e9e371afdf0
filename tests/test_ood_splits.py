"""OOD splits: which events go where on tiny data, sampling weights, purity, and the loader's use of them."""
from collections import Counter

import numpy as np
import pytest

from graphrec.config import build_config
from graphrec.data.dataset import Interactions
from graphrec.data.loader import load_dataset
from graphrec.data.splits import (degree_split, popularity_split, split_events, temporal_ood_split,
                                  temporal_split)
from graphrec.errors import GraphrecError

KEYS = {"valid_ratio": 0.1, "test_ratio": 0.2, "test_ood_ratio": 0.1, "alpha": 1.0, "degree_quantile": 0.2,
        "degree_side": "low", "valid_from": "iid"}


def pairs(data: Interactions) -> list[tuple[int, int]]:
    return sorted(zip(data.user.tolist(), data.item.tolist()))


def timed_events(seed: int = 0) -> Interactions:
    """40 users with 3..22 distinct items each (of 60), shuffled, with distinct timestamps."""
    rng = np.random.default_rng(seed)
    users = np.concatenate([[u] * (3 + u % 20) for u in range(40)])
    items = np.concatenate([rng.choice(60, 3 + u % 20, replace=False) for u in range(40)])
    perm = rng.permutation(len(users))
    return Interactions(users[perm], items[perm], None, rng.permutation(len(users)).astype(np.float64))


def test_popularity_split_takes_the_rare_events_when_alpha_is_large():
    # 4 users: items 0 and 1 seen by everyone (pop 4), item 10 + u only by user u (pop 1)
    users = np.repeat(np.arange(4), 3)
    items = np.stack([np.zeros(4, int), np.ones(4, int), 10 + np.arange(4)], 1).ravel()
    parts = popularity_split(Interactions(users, items), seed=3, valid_ratio=0.0, test_ratio=0.5,
                             test_ood_ratio=4 / 12, alpha=20.0)
    assert pairs(parts["test_ood"]) == [(0, 10), (1, 11), (2, 12), (3, 13)]
    assert Counter(parts["test"].user.tolist()) == {0: 1, 1: 1, 2: 1, 3: 1}  # half of the 2 left per user
    assert Counter(parts["train"].user.tolist()) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert len(parts["valid"]) == 0


def test_popularity_split_draws_events_in_proportion_to_pop_to_the_minus_alpha():
    # 1000 users x 8 events: 4 among 100 items of popularity 40, 4 among 400 of popularity 10
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1000), 8)
    items = np.concatenate([np.stack([rng.choice(100, 4, replace=False) for _ in range(1000)]),
                            100 + np.stack([rng.choice(400, 4, replace=False) for _ in range(1000)])], 1).ravel()
    data = Interactions(users, items)
    for alpha, expected in ((0.0, 1.0), (1.0, 4.0)):  # per-event odds rare : popular = (40 / 10) ** alpha
        rare = popular = 0
        for seed in range(4):
            ood = popularity_split(data, seed, 0.0, 0.0, test_ood_ratio=0.05, alpha=alpha)["test_ood"]
            rare, popular = rare + int((ood.item >= 100).sum()), popular + int((ood.item < 100).sum())
        assert rare + popular == 4 * 400
        assert 0.8 * expected < rare / popular < 1.2 * expected, (alpha, rare, popular)


def test_popularity_split_valid_from_ood_draws_valid_like_test_ood():
    data = timed_events()
    pop = np.bincount(data.item)
    iid = popularity_split(data, 0, 0.2, 0.2, 0.2, 1.0, "iid")
    ood = popularity_split(data, 0, 0.2, 0.2, 0.2, 1.0, "ood")
    assert len(ood["valid"]) == int(len(data) * 0.2)
    assert pop[ood["valid"].item].mean() < pop[iid["valid"].item].mean()
    assert pop[ood["test_ood"].item].mean() < pop[iid["test"].item].mean()


def test_degree_split_holds_out_the_lowest_degree_users_events_as_test_ood():
    # users with 2, 3, 5, 10 and 12 events; 20% of 5 users = user 0
    degrees = [2, 3, 5, 10, 12]
    users = np.repeat(np.arange(5), degrees)
    items = np.concatenate([np.arange(d) for d in degrees])
    data = Interactions(users, items)
    low = degree_split(data, 0, valid_ratio=0.0, test_ratio=0.2, degree_quantile=0.2, degree_side="low")
    assert Counter(low["test_ood"].user.tolist()) == {0: 1}  # at least one for a selected user
    assert Counter(low["test"].user.tolist()) == {2: 1, 3: 2, 4: 2}  # floor(0.2 * degree), 3 -> 0
    high = degree_split(data, 0, valid_ratio=0.0, test_ratio=0.2, degree_quantile=0.2, degree_side="high")
    assert Counter(high["test_ood"].user.tolist()) == {4: 2}
    assert Counter(high["test"].user.tolist()) == {2: 1, 3: 2}
    both = degree_split(data, 0, valid_ratio=0.1, test_ratio=0.2, degree_quantile=0.4, valid_from="ood")
    assert Counter(both["valid"].user.tolist()) == {1: 1}  # selected users 0, 1; user 0 has too few events
    assert Counter(both["test_ood"].user.tolist()) == {0: 1, 1: 1}


def test_temporal_kinds_put_the_latest_period_in_test_ood():
    data = timed_events()
    per_user = temporal_ood_split(data, 0, 0.1, 0.2, test_ood_ratio=0.25, per_user=True)
    for u in range(40):
        ood = per_user["test_ood"].timestamp[per_user["test_ood"].user == u]
        rest = np.concatenate([per_user[k].timestamp[per_user[k].user == u] for k in ("train", "valid", "test")])
        assert len(ood) == min(int((3 + u % 20) * 0.25), 2 + u % 20)
        assert len(ood) == 0 or ood.min() > rest.max()
    glob = temporal_ood_split(data, 0, 0.1, 0.2, test_ood_ratio=0.25, valid_from="ood", per_user=False)
    assert len(glob["test_ood"]) == int(len(data) * 0.25) and len(glob["valid"]) == int(len(data) * 0.1)
    assert glob["test_ood"].timestamp.min() > glob["valid"].timestamp.max()
    assert glob["valid"].timestamp.min() > max(glob["train"].timestamp.max(), glob["test"].timestamp.max())


def test_temporal_with_valid_from_ood_and_no_iid_test_is_the_old_temporal_split():
    data = timed_events(seed=2)
    train, valid, test = temporal_split(data, 0.1, 0.2, 5)
    parts = temporal_ood_split(data, 5, 0.1, 0.0, test_ood_ratio=0.2, valid_from="ood")
    assert [pairs(p) for p in (train, valid, test)] == [pairs(parts[k]) for k in ("train", "valid", "test_ood")]
    assert len(parts["test"]) == 0


@pytest.mark.parametrize("method", ["random", "loo", "popularity", "degree", "temporal", "temporal_global"])
def test_every_method_is_pure_seeded_disjoint_and_complete(method):
    data = timed_events()
    parts = split_events(data, method, 1, **KEYS)
    again = split_events(data, method, 1, **KEYS)
    other = split_events(data, method, 2, **KEYS)
    assert {k: pairs(v) for k, v in parts.items()} == {k: pairs(v) for k, v in again.items()}
    if method != "loo":  # with timestamps, leave-one-out takes the latest events whatever the seed
        assert {k: pairs(v) for k, v in parts.items()} != {k: pairs(v) for k, v in other.items()}
    assert sorted(sum((pairs(p) for p in parts.values()), [])) == pairs(data)
    assert set(parts) == ({"train", "valid", "test"} if method in ("random", "loo") else
                          {"train", "valid", "test", "test_ood"})
    assert set(parts["train"].user.tolist()) == set(data.user.tolist())  # every user keeps a training event


def _write_pairs(folder, name, events):
    (folder / name).write_text("".join(f"{u} {i}\n" for u, i in events))


def test_given_files_with_an_ood_method_resplit_their_union_with_a_warning(tmp_path, capsys):
    data = timed_events()
    events = list(zip(data.user.tolist(), data.item.tolist()))
    _write_pairs(tmp_path, "train.txt", events[:300])
    _write_pairs(tmp_path, "test.txt", events[300:])
    files = {"train": "train.txt", "test": "test.txt"}
    given = load_dataset(build_config({"data": {"path": str(tmp_path), "format": "pairs", "files": files}}))
    assert set(given.tests) == {"test"} and len(given.train) + len(given.valid) == 300
    ds = load_dataset(build_config({"data": {"path": str(tmp_path), "format": "pairs", "files": files},
                                    "split": {"method": "degree"}}))
    assert set(ds.tests) == {"test", "test_ood"}
    assert len(ds.train) + len(ds.valid) + sum(len(t) for t in ds.tests.values()) == len(events)
    assert ds.warnings.counts["resplit_given_files"] == 1
    assert "split.method degree re-splits the union of the given files (train, test)" in capsys.readouterr().err


def test_coat_reads_test_ood_and_carves_an_iid_test_from_train():
    files = load_dataset(build_config({"data": {"path": "coat"}}))
    assert list(files.tests) == ["test", "test_ood"]
    raw = load_dataset(build_config({"data": {"path": "coat", "format": "lightgcn",
                                              "files": {"train": "train.txt", "x": "test_ood.txt"}},
                                     "split": {"valid_ratio": 0.0}}))
    assert pairs(files.tests["test_ood"]) == pairs(raw.tests["x"])
    train_pairs = set(pairs(raw.train))
    assert set(pairs(files.tests["test"])) <= train_pairs and set(pairs(files.train)) <= train_pairs
    assert len(files.tests["test"]) > 0


def test_a_ratio_that_leaves_a_split_empty_is_refused():
    cfg = build_config({"data": {"synthetic": {"num_users": 30, "num_items": 20, "mean_degree": 12}},
                        "split": {"method": "popularity", "test_ood_ratio": 0.001}})
    with pytest.raises(GraphrecError, match=r"leaves test_ood empty with split.test_ood_ratio=0.001 .* raise "
                                            r"split.test_ood_ratio"):
        load_dataset(cfg)
    # a ratio of 0 asks for nothing: that split is left out instead
    cfg = build_config({"split": {"method": "temporal", "test_ratio": 0.0}})
    assert set(load_dataset(cfg).tests) == {"test_ood"}
