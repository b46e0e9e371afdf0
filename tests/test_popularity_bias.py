"""`graphrec analyze popularity`: per-user rank correlation of scores with training popularity, and anisotropy."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from graphrec.popularity_bias import anisotropy, average_ranks, rank_correlation, run as analyze_popularity
from graphrec.config import build_config
from graphrec.trainer import Trainer

from train_helpers import RESUME_CONFIG, merged

SMALL = merged(RESUME_CONFIG, {"data": {"synthetic": {"num_users": 200, "num_items": 150, "mean_degree": 10}},
                               "train": {"epochs": 1, "patience": 0, "eval_every": 1, "batch_size": 128}})


def test_tied_values_share_their_mean_rank():
    values = torch.tensor([[3.0, 1.0, 1.0, 2.0], [5.0, 5.0, 5.0, 0.0]], dtype=torch.float64)
    assert average_ranks(values).tolist() == [[3.0, 0.5, 0.5, 2.0], [2.0, 2.0, 2.0, 0.0]]


def test_rank_correlation_hand_values():
    degree = torch.tensor([4.0, 1.0, 1.0, 9.0], dtype=torch.float64)
    scores = torch.stack([degree * 2 + 1, -degree, torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64),
                          torch.ones(4, dtype=torch.float64)])
    got = rank_correlation(scores, average_ranks(degree.unsqueeze(0))[0])
    # row 3 by hand: degree ranks (2, 0.5, 0.5, 3) and score ranks (0, 1, 2, 3), both centred on 1.5
    a, b = torch.tensor([-1.5, -0.5, 0.5, 1.5]), torch.tensor([0.5, -1.0, -1.0, 1.5])
    assert got[:3].tolist() == pytest.approx([1.0, -1.0, float((a * b).sum() / (a.norm() * b.norm()))])
    assert math.isnan(got[3])  # a constant row has no ranking


def test_anisotropy_is_one_for_parallel_embeddings_and_zero_for_opposite_pairs():
    assert anisotropy(torch.tensor([[1.0, 0.0], [3.0, 0.0]])) == pytest.approx(1.0)
    assert anisotropy(torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]) + 1e-9) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("model, low, high", [("pop", 0.999, 1.0), ("lightgcn", -0.5, 0.9)])
def test_analyze_popularity_reads_one_for_most_popular(model, low, high, tmp_path, capsys):
    """MostPop scores items by their training degree, so every user's correlation is 1; a trained LightGCN is below."""
    raw = merged(SMALL, {"output_dir": str(tmp_path / "runs")})
    raw["model"] = {"name": model}
    cfg = build_config(raw)
    trainer = Trainer(cfg)
    trainer.fit()
    out = tmp_path / "popularity.json"
    assert analyze_popularity(argparse.Namespace(run=str(trainer.run_dir), out=str(out), checkpoint="best.pt")) == 0
    report = json.loads(out.read_text())
    assert low <= report["spearman_quantiles"]["0.1"] <= report["spearman_quantiles"]["0.9"] <= high
    assert (report["item_anisotropy"] is None) == (model == "pop")
    assert "Spearman(item scores, training popularity)" in capsys.readouterr().out
