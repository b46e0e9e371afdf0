"""train.sampler: users, the official LightGCN / IDSF sampler: users uniform, then one of their positives."""
from __future__ import annotations

import pytest
import torch

from graphrec.config import build_config
from graphrec.errors import GraphrecError
from graphrec.trainer import Trainer
from train_helpers import RESUME_CONFIG, history, merged, results, stopped_and_resumed
from graphrec.data.sampling import user_uniform_pairs


def test_user_uniform_pairs_draw_users_uniformly_and_only_their_positives():
    # user 0 has 1 event, user 1 has 99, user 2 none: by events user 1 would get 99% of the pairs
    users = torch.tensor([0] + [1] * 99)
    items = torch.tensor([7] + list(range(100, 199)))
    draws_u, draws_i = [], []
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        u, i = user_uniform_pairs(users, items, generator)
        draws_u.append(u)
        draws_i.append(i)
    u, i = torch.cat(draws_u), torch.cat(draws_i)
    assert len(u) == 5000 and set(u.tolist()) == {0, 1}
    assert abs(int((u == 0).sum()) - 2500) < 200  # binomial sd 35
    assert torch.all(i[u == 0] == 7) and torch.all((i[u == 1] >= 100) & (i[u == 1] < 199))
    assert len(set(i[u == 1].tolist())) == 99  # every positive of user 1 can be drawn


def _config(tmp_path, **train):
    return build_config(merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "runs"),
                                               "train": {**RESUME_CONFIG["train"], "sampler": "users", **train}}))


def test_user_sampler_trains_and_resumes_exactly(tmp_path):
    cfg = _config(tmp_path, epochs=4, patience=0)
    trainer = Trainer(cfg)
    metrics, records = results(trainer.fit()), history(trainer.run_dir)
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    events = build_config(merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "e"),
                                                 "train": {**RESUME_CONFIG["train"], "epochs": 4, "patience": 0}}))
    assert history(_fit_dir(events))[0]["train/loss"] != records[0]["train/loss"]
    assert stopped_and_resumed(_config(tmp_path / "b", epochs=4, patience=0), 27 + 5) == (metrics, records)


def _fit_dir(cfg):
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer.run_dir


def test_user_sampler_refused_for_pointwise_models():
    raw = {"data": {"format": "synthetic_fields"}, "model": {"name": "fm"}, "train": {"sampler": "users"}}
    with pytest.raises(GraphrecError, match="train.sampler: users draws"):
        build_config(raw)
