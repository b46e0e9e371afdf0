"""Top-K ranking, metric formulas and the chunked full-ranking Evaluator against hand values and a dense reference."""
from math import log2

import numpy as np
import pytest
import torch

from graphrec.data.dataset import Dataset, Interactions
from graphrec.models.base import dot_scorer
from graphrec.evaluation import Evaluator, rank_topk, ranking_metrics

torch.set_num_threads(1)
INF = float("inf")
ALL_METRICS = ["recall", "ndcg", "precision", "hit", "mrr"]


# ---- rank_topk -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, k, expected", [
    ([1, 3, 3, 2, 3], 1, [1]),             # three-way tie for first: lowest id
    ([1, 3, 3, 2, 3], 2, [1, 2]),          # tie straddles the K boundary
    ([1, 3, 3, 2, 3], 3, [1, 2, 4]),       # the whole tie fits exactly
    ([1, 3, 3, 2, 3], 4, [1, 2, 4, 3]),
    ([5, 2, 5, 1], 3, [0, 2, 1]),          # tie inside K, then a unique score
    ([0, 1, 1, 1, 2], 3, [4, 1, 2]),       # unique best, then a tie at the boundary
    ([2, 2, 2, 2], 2, [0, 1]),             # all tied
    ([-1, -3, -1, -2], 3, [0, 2, 3]),      # negative scores
    ([-INF, 0.5, -INF, 0.5, 0.1], 2, [1, 3]),
    ([-INF, 0.5, -INF, 0.5, 0.1], 4, [1, 3, 4, 0]),  # masked items only after every unmasked one, by id
    ([0.3, -INF, 0.7], 5, [2, 0, 1]),      # K larger than the catalogue is clamped
])
def test_rank_topk_hand_examples(scores, k, expected):
    assert rank_topk(torch.tensor([scores], dtype=torch.float32), k).tolist() == [expected]


def test_rank_topk_mixed_rows():
    # rows with and without a tie at the K-th place in the same call
    scores = torch.tensor([[1.0, 3, 3, 2, 3],
                           [0.1, 0.9, 0.5, 0.7, 0.3],
                           [4.0, 4, 1, 4, 0],
                           [-INF, -INF, 1, -INF, -INF]])
    assert rank_topk(scores, 2).tolist() == [[1, 2], [1, 3], [0, 1], [2, 0]]
    assert rank_topk(scores, 3).tolist() == [[1, 2, 4], [1, 3, 2], [0, 1, 3], [2, 0, 1]]


def test_rank_topk_random_ties_against_lexsort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(200, 30)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    for k in (1, 5, 13, 30):
        got = rank_topk(torch.from_numpy(scores), k).numpy()
        ids = np.arange(scores.shape[1])
        want = np.stack([np.lexsort((ids, -row))[:k] for row in scores])
        assert np.array_equal(got, want), k


# ---- ranking_metrics --------------------------------------------------------------------------------------------
def test_ranking_metrics_hand_values():
    hits = torch.tensor([[1, 0, 1, 0, 0],   # user A: 3 relevant, hits at ranks 1 and 3
                         [0, 0, 0, 1, 0],   # user B: 1 relevant, hit at rank 4
                         [0, 0, 0, 0, 0]],  # user C: 2 relevant, no hit
                        dtype=torch.bool)
    num_relevant = torch.tensor([3, 1, 2])
    got = {k: v.tolist() for k, v in ranking_metrics(hits, num_relevant, [1, 3, 5], ALL_METRICS).items()}
    idcg3 = 1 / log2(2) + 1 / log2(3) + 1 / log2(4)
    expected = {
        "recall@1": [1 / 3, 0, 0], "recall@3": [2 / 3, 0, 0], "recall@5": [2 / 3, 1, 0],
        "precision@1": [1, 0, 0], "precision@3": [2 / 3, 0, 0], "precision@5": [2 / 5, 1 / 5, 0],
        "hit@1": [1, 0, 0], "hit@3": [1, 0, 0], "hit@5": [1, 1, 0],
        "mrr@1": [1, 0, 0], "mrr@3": [1, 0, 0], "mrr@5": [1, 1 / 4, 0],
        "ndcg@1": [1, 0, 0],
        "ndcg@3": [(1 / log2(2) + 1 / log2(4)) / idcg3, 0, 0],
        "ndcg@5": [(1 / log2(2) + 1 / log2(4)) / idcg3, (1 / log2(5)) / (1 / log2(2)), 0],
    }
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-12), key


def test_ranking_metrics_ideal_dcg_capped_at_k():
    # 4 relevant items, K=2: IDCG has only 2 positions, so a perfect top-2 has ndcg 1 and recall 1/2
    hits = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    got = ranking_metrics(hits, torch.tensor([4, 2]), [2, 3], ["ndcg", "recall", "mrr"])
    assert got["ndcg@2"].tolist() == pytest.approx([1.0, (1 / log2(3)) / (1 + 1 / log2(3))])
    assert got["ndcg@3"].tolist() == pytest.approx([(1 + 1 / log2(3)) / (1 + 1 / log2(3) + 1 / log2(4)),
                                                    (1 / log2(3) + 1 / log2(4)) / (1 + 1 / log2(3))])
    assert got["recall@2"].tolist() == pytest.approx([2 / 4, 1 / 2])
    assert got["mrr@3"].tolist() == pytest.approx([1.0, 1 / 2])


# ---- Evaluator on a hand-made dataset --------------------------------------------------------------------------
def _inter(pairs):
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return Interactions(pairs[:, 0], pairs[:, 1])


def _dataset(num_users, num_items, train, valid, test):
    return Dataset("tiny", num_users, num_items, _inter(train), _inter(valid) if valid is not None else None,
                   {"test": _inter(test)}, np.arange(num_users), np.arange(num_items))


def tiny_dataset():
    # user 0: train {0}, valid {1}, test {2}; user 1: train {3}, test {4};
    # user 2: test events but no train events; user 3: train events but no test events
    return _dataset(4, 6, train=[(0, 0), (1, 3), (3, 1), (3, 5)], valid=[(0, 1), (3, 2)],
                    test=[(0, 2), (1, 4), (2, 0)])


# scores = user_emb @ I: one row of scores per user
TINY_SCORES = torch.tensor([[9.0, 8, 7, 1, 2, 3],    # u0: train 0 > valid 1 > test 2 > rest
                            [1.0, 2, 3, 9, 5, 6],    # u1: train 3 > 5 > test 4
                            [9.0, 1, 1, 1, 1, 1],
                            [1.0, 2, 3, 4, 5, 6]])


def test_evaluator_masks_seen_items_and_skips_users():
    ds = tiny_dataset()
    ev = Evaluator(ds, "test", [1, 2], ALL_METRICS, max_score_elements=1000)
    assert ev.users.tolist() == [0, 1]  # user 2 has no train events, user 3 no test events
    result = ev.evaluate(dot_scorer(TINY_SCORES, torch.eye(6)))
    assert result.num_users == 2
    means = result.means()
    # u0: train item 0 and valid item 1 masked, so test item 2 is ranked first; u1: train 3 masked -> [5, 4]
    assert means["hit@1"] == pytest.approx((1 + 0) / 2)
    assert means["recall@1"] == pytest.approx((1 + 0) / 2)
    assert means["hit@2"] == pytest.approx((1 + 1) / 2)
    assert means["mrr@2"] == pytest.approx((1 + 1 / 2) / 2)
    assert means["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert means["ndcg@2"] == pytest.approx((1 + 1 / log2(3)) / 2)


def test_evaluator_valid_split_does_not_mask_valid_items():
    ds = tiny_dataset()
    ev = Evaluator(ds, "valid", [1], ["recall", "hit"], max_score_elements=1000)
    assert ev.users.tolist() == [0, 3]
    means = ev.evaluate(dot_scorer(TINY_SCORES, torch.eye(6))).means()
    # u0: train 0 masked, valid 1 ranked first (hit); u3: train {1, 5} masked -> 4 first, valid 2 missed
    assert means["recall@1"] == pytest.approx(0.5)
    assert means["hit@1"] == pytest.approx(0.5)


def test_evaluator_train_top_item_never_counts():
    # the user's test item is also a train item: it is masked, so it can never be a hit
    ds = _dataset(2, 3, train=[(0, 0), (1, 1)], valid=None, test=[(0, 0), (1, 2)])
    scores = torch.tensor([[5.0, 1, 0], [0.0, 5, 1]])
    top = Evaluator(ds, "test", [1], ["hit"], 100).evaluate(dot_scorer(scores, torch.eye(3))).means()
    assert top["hit@1"] == pytest.approx(0.5)  # u0: 0 masked -> item 1, miss; u1: 1 masked -> item 2, hit


def random_dataset(num_users=50, num_items=80, seed=0):
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for u in range(num_users):
        n = int(rng.integers(0, 15))
        items = rng.permutation(num_items)[:n]
        if u % 10 == 3:  # no train events
            test += [(u, int(i)) for i in items[:3]]
            continue
        cut_v, cut_t = n // 2, n // 2 + n // 6
        train += [(u, int(i)) for i in items[:cut_v]]
        valid += [(u, int(i)) for i in items[cut_v:cut_t]]
        test += [(u, int(i)) for i in items[cut_t:]]
    return _dataset(num_users, num_items, train, valid, test)


def dense_reference(ds, split, user_emb, item_emb, ks):
    """Straightforward per-user ranking in numpy, stable order by (-score, id)."""
    truth_set = ds.eval_splits()[split]
    masked = [ds.train] + ([ds.valid] if split != "valid" else [])
    scores = (user_emb.double() @ item_emb.double().t()).numpy()
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ALL_METRICS}
    users = 0
    ids = np.arange(ds.num_items)
    for u in range(ds.num_users):
        truth = set(truth_set.item[truth_set.user == u].tolist())
        if not truth or not (ds.train.user == u).any():
            continue
        users += 1
        row = scores[u].copy()
        for m in masked:
            row[m.item[m.user == u]] = -np.inf
        order = np.lexsort((ids, -row))
        for k in ks:
            top = order[:k]
            hit = [int(i) in truth for i in top]
            n_hit = sum(hit)
            dcg = sum(1 / log2(r + 2) for r, h in enumerate(hit) if h)
            idcg = sum(1 / log2(r + 2) for r in range(min(len(truth), k)))
            first = next((r + 1 for r, h in enumerate(hit) if h), None)
            sums[f"recall@{k}"] += n_hit / len(truth)
            sums[f"precision@{k}"] += n_hit / k
            sums[f"hit@{k}"] += float(n_hit > 0)
            sums[f"ndcg@{k}"] += dcg / idcg
            sums[f"mrr@{k}"] += 1 / first if first else 0.0
    return {k: v / users for k, v in sums.items()}, users


@pytest.mark.parametrize("integer_scores", [False, True])
def test_evaluator_matches_dense_reference(integer_scores):
    ds = random_dataset()
    gen = torch.Generator().manual_seed(1)
    if integer_scores:  # many exact ties, exercising the tie-breaking by item id
        user_emb = torch.randint(-2, 3, (ds.num_users, 3), generator=gen).float()
        item_emb = torch.randint(-2, 3, (ds.num_items, 3), generator=gen).float()
    else:
        user_emb = torch.randn(ds.num_users, 8, generator=gen)
        item_emb = torch.randn(ds.num_items, 8, generator=gen)
    ks = [1, 5, 20, 80, 100]  # 100 > num_items: clamped ranking, precision still over K
    for split in ("test", "valid"):
        expected, users = dense_reference(ds, split, user_emb, item_emb, ks)
        result = Evaluator(ds, split, ks, ALL_METRICS, max_score_elements=7 * ds.num_items).evaluate(dot_scorer(user_emb, item_emb))
        assert result.num_users == users
        got = result.means()
        assert set(got) == set(expected)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-6), (split, key)
    assert 0 < expected["recall@20"] < 1  # a non-degenerate check


def test_evaluator_chunking_does_not_change_results():
    ds = random_dataset(seed=2)
    gen = torch.Generator().manual_seed(3)
    user_emb = torch.randn(ds.num_users, 4, generator=gen)
    item_emb = torch.randn(ds.num_items, 4, generator=gen)
    tiny = Evaluator(ds, "test", [3, 10], ALL_METRICS, max_score_elements=1)
    huge = Evaluator(ds, "test", [3, 10], ALL_METRICS, max_score_elements=10 ** 9)
    a, b = tiny.evaluate(dot_scorer(user_emb, item_emb)), huge.evaluate(dot_scorer(user_emb, item_emb))
    assert tiny.largest_chunk_elements == ds.num_items  # one user per chunk
    assert huge.largest_chunk_elements == len(huge.users) * ds.num_items  # everyone at once
    assert a.num_users == b.num_users > 0
    for key in a.sums:
        assert a.sums[key] == pytest.approx(b.sums[key], abs=1e-9), key
    for budget in (ds.num_items, 3 * ds.num_items + 1, 10 * ds.num_items - 1):
        ev = Evaluator(ds, "test", [3, 10], ALL_METRICS, max_score_elements=budget)
        c = ev.evaluate(dot_scorer(user_emb, item_emb))
        assert 0 < ev.largest_chunk_elements <= budget
        for key in a.sums:
            assert c.sums[key] == pytest.approx(a.sums[key], abs=1e-9), key
