"""eval.users: a seeded sample of evaluation users with 95% intervals that cover the full evaluation."""
import json
import math

import numpy as np
import pytest
import torch

from graphrec.config import build_config
from graphrec.data.loader import apply_protocol, load_dataset
from graphrec.evaluation import Evaluator, ci95_half_width, evaluate_splits
from graphrec.models.base import dot_scorer
from graphrec.tasks import build_evaluators
from graphrec.trainer import Trainer

from train_helpers import RESUME_CONFIG, merged

METRICS = ["recall", "ndcg", "hit", "mrr", "arp", "coverage", "recall_head"]
RAW = {"name": "sampled", "seed": 0, "device": "cpu",
       "data": {"format": "synthetic", "synthetic": {"num_users": 3000, "num_items": 400, "num_communities": 8,
                                                     "mean_degree": 12, "seed": 11}},
       "split": {"method": "random", "valid_ratio": 0.0, "test_ratio": 0.3},
       "model": {"name": "mf", "embedding_dim": 8},
       "eval": {"topk": [20], "metrics": METRICS}, "tracking": {"mode": "disabled"}}


@pytest.fixture(scope="module")
def setting():
    """(config, dataset, scorer): a synthetic dataset and a fixed scorer that ranks by popularity plus noise."""
    cfg = build_config(RAW)
    dataset = apply_protocol(cfg, load_dataset(cfg))
    gen = torch.Generator().manual_seed(0)
    popularity = torch.from_numpy(np.bincount(dataset.train.item, minlength=dataset.num_items)).double()
    user_emb = torch.cat([torch.ones(dataset.num_users, 1, dtype=torch.float64),
                          torch.randn(dataset.num_users, 4, generator=gen, dtype=torch.float64)], 1)
    item_emb = torch.cat([popularity.log1p().unsqueeze(1),
                          torch.randn(dataset.num_items, 4, generator=gen, dtype=torch.float64)], 1)
    return cfg, dataset, dot_scorer(user_emb, item_emb)


def _evaluate(dataset, scorer, users=None, seed=0):
    evaluator = Evaluator(dataset, "test", [20], METRICS, 10 ** 7, sample_users=users, seed=seed)
    return evaluator, evaluator.evaluate(scorer).means()


def test_half_width_by_hand():
    # values 1, 2, 3, 4: sum 10, squares 30, sample variance 5/3; half the population sampled
    assert ci95_half_width(10.0, 30.0, 4, 0.5) == pytest.approx(1.959964 * math.sqrt(5 / 3 / 4 * 0.5))
    assert ci95_half_width(10.0, 30.0, 4, 1.0) == 0.0  # the whole population: no sampling error
    assert math.isnan(ci95_half_width(1.0, 1.0, 1, 0.1))


def test_intervals_cover_the_full_evaluation(setting):
    _, dataset, scorer = setting
    evaluator, full = _evaluate(dataset, scorer)
    assert evaluator.population > 1500 and "test/recall@20_ci95" not in full
    checked = ["recall@20", "ndcg@20", "hit@20", "mrr@20", "arp@20", "recall_head@20"]
    misses = {key: 0 for key in checked}
    samples = []
    for seed in range(20):
        sampled_evaluator, sampled = _evaluate(dataset, scorer, users=150, seed=seed)
        assert len(sampled_evaluator.users) == 150
        samples.append(tuple(sampled_evaluator.users.tolist()))
        assert "coverage@20_ci95" not in sampled and 0 < sampled["coverage@20"] <= full["coverage@20"]
        for key in checked:
            assert 0 < sampled[f"{key}_ci95"] < abs(full[key])  # a real, informative interval
            misses[key] += abs(sampled[key] - full[key]) > sampled[f"{key}_ci95"]
    assert len(set(samples)) == 20  # different seeds draw different users
    assert max(misses.values()) <= 2, misses
    # the seeded sample is reproducible
    again = _evaluate(dataset, scorer, users=150, seed=3)[1]
    assert again == _evaluate(dataset, scorer, users=150, seed=3)[1]


def test_intervals_shrink_with_the_sample(setting):
    _, dataset, scorer = setting
    small = _evaluate(dataset, scorer, users=100)[1]["recall@20_ci95"]
    large = _evaluate(dataset, scorer, users=1200)[1]["recall@20_ci95"]
    assert large < small * math.sqrt(100 / 1200) * 1.3  # about 1 / sqrt(n), narrower still by the finite population


def test_a_sample_of_every_user_is_the_full_evaluation(setting):
    _, dataset, scorer = setting
    evaluator, full = _evaluate(dataset, scorer)
    everyone = _evaluate(dataset, scorer, users=evaluator.population)[1]
    assert {k: everyone[k] for k in full} == full  # exactly, not approximately
    assert all(everyone[f"{k}_ci95"] == 0.0 for k in full if not k.startswith("coverage"))


def test_shards_add_up_to_the_sampled_result(setting):
    _, dataset, scorer = setting
    evaluator = Evaluator(dataset, "test", [20], METRICS, 10 ** 7, sample_users=400, seed=1)
    whole = evaluator.evaluate(scorer)
    halves = [evaluator.evaluate(scorer, part) for part in (evaluator.users[::2], evaluator.users[1::2])]
    summed = whole.from_packed(halves[0].packed() + halves[1].packed())
    for key, value in whole.means().items():
        assert summed.means()[key] == pytest.approx(value, rel=1e-12), key


def test_build_evaluators_and_evaluate_splits_report_intervals(setting):
    cfg, dataset, _ = setting
    cfg = build_config(merged(RAW, {"eval": {"users": 200}}))
    evaluators = build_evaluators(dataset, cfg, torch.device("cpu"))
    model = type("Fixed", (torch.nn.Module,), {"scorer": lambda self: setting[2]})()
    out = evaluate_splits(model, evaluators, ["test"])
    assert out["test/users"] == 200 and out["test/users_evaluable"] == evaluators["test"].population
    assert out["test/recall@20_ci95"] > 0
    other_seed = build_config(merged(RAW, {"seed": 1, "eval": {"users": 200}}))
    assert not torch.equal(build_evaluators(dataset, other_seed, torch.device("cpu"))["test"].users,
                           evaluators["test"].users)  # the sample follows the run's seed


def test_training_run_writes_intervals(tmp_path):
    cfg = build_config(merged(RESUME_CONFIG, {"output_dir": str(tmp_path), "train": {"epochs": 2},
                                              "eval": {"users": 60}}))
    metrics = Trainer(cfg).fit()
    written = json.loads(next(tmp_path.glob("*/metrics.json")).read_text())
    for split in ("valid", "test"):
        assert written[f"{split}/users"] == 60 and written[f"{split}/users_evaluable"] > 60
        assert written[f"{split}/recall@20_ci95"] == metrics[f"{split}/recall@20_ci95"] > 0


def test_eval_table_shows_the_interval():
    from graphrec.report import eval_table
    text = eval_table({"test/recall@20": 0.2, "test/recall@20_ci95": 0.01, "test/users": 150}, None, "markdown")
    assert "| test | 150 | 0.200000 ± 0.010000 |" in text
