"""Coverage, ARP and head/mid/tail recall and NDCG against a ranking written out by hand."""
import math

import numpy as np
import pytest
import torch

from graphrec.config import build_config
from graphrec.data.dataset import Dataset, Interactions
from graphrec.data.shift import popularity_groups
from graphrec.models.base import dot_scorer
from graphrec.evaluation import Evaluator

METRICS = ["recall", "coverage", "arp", "recall_head", "recall_mid", "recall_tail", "ndcg_mid", "ndcg_tail"]


def tiny() -> tuple[Dataset, torch.Tensor, torch.Tensor]:
    """10 items; train counts 3,3,2,2,1,0,0,0,0,0 -> head {0,1}, mid {2,3,4}, tail {5..9} (20% / 50%).

    Users 0 and 1 are evaluated; users 2 and 3 only make the popularity. Scores (item_emb = identity):
      user 0 (seen 0): ranking 5, 3, 2, 7, ...   test {2, 5, 9}   hits at ranks 1 and 3
      user 1 (seen 1): ranking 4, 5, 8, 0, ...   test {3, 4}      hit at rank 1
    """
    train = Interactions([0, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3], [0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 3])
    test = Interactions([0, 0, 0, 1, 1], [2, 5, 9, 3, 4])
    ds = Dataset("tiny", 4, 10, train, None, {"test": test}, np.arange(4), np.arange(10))
    scores = torch.tensor([[9, .1, .8, .9, .2, 1., .3, .7, .4, .05],
                           [.5, 9, .1, .2, .9, .8, .3, .05, .6, .4],
                           [0.0] * 10, [0.0] * 10])
    return ds, scores, torch.eye(10)


def test_popularity_groups_by_train_count_ties_to_lower_id():
    counts = np.array([3, 3, 2, 2, 1, 0, 0, 0, 0, 0])
    assert popularity_groups(counts, 0.2, 0.5).tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    # ties at the head boundary: items 1 and 2 both have 5 events; the lower id is head
    assert popularity_groups(np.array([1, 5, 5, 0, 9]), 0.4, 0.4).tolist() == [2, 0, 1, 2, 0]


@pytest.mark.parametrize("max_score_elements", [1000, 10])  # one chunk, or one user per chunk
def test_shift_metrics_match_hand_computed(max_score_elements):
    ds, user_emb, item_emb = tiny()
    ev = Evaluator(ds, "test", [2, 3], METRICS, max_score_elements)
    result = ev.evaluate(dot_scorer(user_emb, item_emb))
    got = result.means()
    lg3 = 1 / math.log2(3)
    expected = {
        "recall@2": (1 / 3 + 1 / 2) / 2, "recall@3": (2 / 3 + 1 / 2) / 2,
        "coverage@2": 3 / 10,  # {5, 3} | {4, 5}
        "coverage@3": 5 / 10,  # {5, 3, 2} | {4, 5, 8}
        "arp@2": ((0 + 2) / 2 + (1 + 0) / 2) / 2, "arp@3": ((0 + 2 + 2) / 3 + (1 + 0 + 0) / 3) / 2,
        "recall_head@2": 0.0, "recall_head@3": 0.0,  # nobody has a relevant head item: no user counted
        "recall_mid@2": (0 + 1 / 2) / 2, "recall_mid@3": (1 + 1 / 2) / 2,  # user 0: {2}, user 1: {3, 4}
        "ndcg_mid@2": (0 + 1 / (1 + lg3)) / 2, "ndcg_mid@3": (1 / 2 + 1 / (1 + lg3)) / 2,
        "recall_tail@2": 1 / 2, "recall_tail@3": 1 / 2,  # user 0 only ({5, 9}); user 1 has no tail item
        "ndcg_tail@2": 1 / (1 + lg3), "ndcg_tail@3": 1 / (1 + lg3),
    }
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert result.group_users == {"head": 0, "mid": 2, "tail": 1}


def test_results_of_user_shards_add_up_to_the_whole():
    """What DDP does: each rank evaluates a share of the users; the packed sums give the single-process means."""
    ds, user_emb, item_emb = tiny()
    ev = Evaluator(ds, "test", [2, 3], METRICS, 1000)
    whole = ev.evaluate(dot_scorer(user_emb, item_emb)).means()
    parts = [ev.evaluate(dot_scorer(user_emb, item_emb), ev.users[i::2]) for i in range(2)]
    summed = parts[0].from_packed(parts[0].packed() + parts[1].packed()).means()
    assert summed == pytest.approx(whole)
    # the union matters: each shard alone covers fewer items than both together
    assert parts[0].means()["coverage@3"] == 3 / 10 and summed["coverage@3"] == 5 / 10


def test_group_boundaries_are_eval_keys():
    ds, user_emb, item_emb = tiny()
    # head 30% = {0, 1, 2}: user 0's relevant item 2 moves to head, hit at rank 3
    ev = Evaluator(ds, "test", [3], ["recall_head"], 1000, head_share=0.3, tail_share=0.5)
    assert ev.evaluate(dot_scorer(user_emb, item_emb)).means() == {"recall_head@3": 1.0}
    cfg = build_config({"split": {"method": "random"}, "eval": {"metrics": ["recall_tail"], "tail_share": 0.4,
                                                                "topk": [20]},
                        "train": {"select_metric": "recall_tail@20"}})
    assert (cfg.eval.head_share, cfg.eval.tail_share) == (0.2, 0.4)
