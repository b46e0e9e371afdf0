"""protocol: leaky, the official code's evaluation of several papers: split edges in the propagation graph, nothing
masked, checkpoint selected on test_ood. It exists to show an inflated number beside an honest one."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from graphrec.config import build_config
from graphrec.errors import GraphrecError
from graphrec.evaluation import Evaluator
from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.trainer import Trainer
from train_helpers import RESUME_CONFIG, merged

OOD = {"split": {"method": "popularity", "valid_ratio": 0.1, "test_ratio": 0.1, "test_ood_ratio": 0.1}}


def _config(tmp_path, overrides=None):
    return build_config(merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "runs"), **OOD, **(overrides or {})}))


def test_leaky_scorer_propagates_over_train_and_split_edges_and_restores_the_graph(tmp_path):
    trainer = Trainer(_config(tmp_path))
    model, data = trainer.model.eval(), trainer.dataset
    honest_graph = model.graph
    leaky = Evaluator(data, "test_ood", [20], ["recall"], 10 ** 7, leaky=True)
    users = torch.arange(50)
    with torch.no_grad():
        leaky_scores = leaky.prepare(model)(users)
        assert model.graph is honest_graph
        honest_scores = model.scorer()(users)
        both = np.unique(np.concatenate([data.train.keys(data.num_items), data.eval_splits()["test_ood"].keys(data.num_items)]))
        model.graph = NormalizedAdjacency.from_numpy(both // data.num_items, both % data.num_items, data.num_users,
                                                     data.num_items)
        expected = model.scorer()(users)
    assert torch.allclose(leaky_scores, expected)
    assert not torch.allclose(leaky_scores, honest_scores)
    assert len(leaky.seen_col) == 0  # training items are ranked too
    assert len(Evaluator(data, "test_ood", [20], ["recall"], 10 ** 7).seen_col) == len(np.unique(np.concatenate([data.train.keys(data.num_items), data.valid.keys(data.num_items)])))


def test_leaky_protocol_selects_the_checkpoint_on_test_ood(tmp_path):
    cfg = _config(tmp_path, {"protocol": "leaky", "train": {**RESUME_CONFIG["train"], "epochs": 6, "patience": 0}})
    trainer = Trainer(cfg)
    metrics = trainer.fit()
    assert metrics["protocol"] == "leaky"
    log = [json.loads(line) for line in (trainer.run_dir / "log.jsonl").read_text().splitlines()]
    scores = [r["test_ood/recall@20"] for r in log if "test_ood/recall@20" in r and "final" not in r]
    assert len(scores) == 6 and not any("valid/recall@20" in r for r in log if "epoch" in r)
    assert metrics["best_epoch"] == int(np.argmax(scores))
    assert metrics["test_ood/recall@20"] == pytest.approx(max(scores))


def test_leaky_protocol_refuses_pointwise_tasks():
    raw = {"data": {"format": "synthetic_fields"}, "model": {"name": "fm"}, "protocol": "leaky"}
    with pytest.raises(GraphrecError, match="protocol: leaky imitates ranking code"):
        build_config(raw)
