"""Each extension point proved by a tiny model (tests/tiny_models.py): it trains with a falling loss and a run
stopped mid-epoch and resumed equals the uninterrupted run."""
from __future__ import annotations

import pytest
import torch

from graphrec.config import build_config
from graphrec.errors import GraphrecError
from graphrec.models.base import dot_scorer
from graphrec.trainer import Trainer

import tiny_models
from train_helpers import RESUME_CONFIG, stopped_and_resumed, history, merged, results


def pairwise_config(tmp_path, model: dict, **train) -> object:
    """The resume test's synthetic ranking config with another model, a few epochs."""
    raw = merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "runs"), "model": model,
                                 "train": {"epochs": 4, "patience": 0, **train}})
    raw["model"] = model
    return build_config(raw)


def pointwise_config(tmp_path, task: str, **train) -> object:
    labels = "binary" if task == "classification" else "real"
    raw = {"name": "fm", "seed": 3, "device": "cpu", "output_dir": str(tmp_path / "runs"), "task": task,
           "data": {"format": "synthetic_fields", "synthetic_fields": {"rows": 3000, "field_sizes": [20, 15, 10],
                                                                      "rank": 4, "labels": labels}},
           "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.1},
           "model": {"name": "tiny_fm", "embedding_dim": 4, "init_std": 0.1},
           "train": {"epochs": 6, "batch_size": 256, "lr": 0.02, "reg": 0.0, "patience": 0, "threads": 1,
                     "progress": False, **train}}
    return build_config(raw)


def losses(run_dir) -> list[float]:
    return [record["train/loss"] for record in history(run_dir)]


def uninterrupted(cfg, dataset=None):
    trainer = Trainer(cfg, dataset=dataset)
    return results(trainer.fit()), history(trainer.run_dir), trainer


def test_per_epoch_view_model_trains_and_resumes_exactly(tmp_path):
    cfg = pairwise_config(tmp_path, {"name": "tiny_view_contrast", "embedding_dim": 16, "num_layers": 2})
    metrics, records, trainer = uninterrupted(cfg)
    assert records[-1]["train/loss"] < records[0]["train/loss"] and all("train/ssl" in r for r in records)
    views = []
    real = tiny_models.TinyViewContrast.on_epoch_start

    def spy(self, epoch, generator):
        real(self, epoch, generator)
        views.append(self.view.nnz)

    tiny_models.TinyViewContrast.on_epoch_start = spy
    try:
        assert stopped_and_resumed(cfg, 27 + 5) == (metrics, records)
    finally:
        tiny_models.TinyViewContrast.on_epoch_start = real
    assert len(set(views)) > 1, "the view must be redrawn each epoch"
    assert views[1] == views[2], "the resumed epoch must redraw the same view as the interrupted one"


@pytest.mark.parametrize("task, select, better", [("regression", "rmse", "lower"), ("classification", "auc", "higher")])
def test_pointwise_model_learns_a_planted_fm_and_resumes_exactly(tmp_path, task, select, better):
    cfg = pointwise_config(tmp_path, task)
    assert cfg.train.select_metric == select and cfg.eval.metrics[0] == select
    metrics, records, _ = uninterrupted(cfg)
    assert records[-1]["train/loss"] < 0.7 * records[0]["train/loss"]
    first, best = records[0][f"valid/{select}"], metrics[f"valid/{select}"]
    assert (best < 0.8 * first) if better == "lower" else (best > first + 0.05)
    if task == "classification":
        assert metrics["test/auc"] > 0.75 and metrics["test/rows"] == 300
    assert stopped_and_resumed(cfg, 10 + 4) == (metrics, records)


def test_two_stage_model_steps_only_its_stage_groups_with_their_own_optimizers(tmp_path):
    cfg = pairwise_config(tmp_path, {"name": "tiny_two_stage", "embedding_dim": 8, "num_layers": 1},
                          epochs=5, groups={"head": {"lr": 0.01, "optimizer": "sgd"}})
    trainer = Trainer(cfg.model_copy(deep=True))
    assert set(trainer.optimizers) == {"main", "head"}
    assert isinstance(trainer.optimizers["head"], torch.optim.SGD) and trainer.optimizers["head"].defaults["lr"] == 0.01
    ego_before = trainer.model.embedding.detach().clone()
    trainer.cfg.train.epochs = 2  # the pre-training stage alone
    trainer.fit()
    assert torch.equal(trainer.model.embedding.detach(), ego_before), "pre-training must not step the embeddings"
    records = history(trainer.run_dir)
    assert [r["stage"] for r in records] == ["pretrain", "pretrain"] and "valid/recall@20" not in records[0]
    assert records[1]["train/loss"] < records[0]["train/loss"]
    metrics, records, _ = uninterrupted(cfg)
    assert [r["stage"] for r in records] == ["pretrain"] * 2 + ["main"] * 3 and "valid/recall@20" in records[2]
    assert stopped_and_resumed(cfg, 2 + 27 + 3) == (metrics, records)


def test_a_models_own_scorer_ranks_the_evaluation(tmp_path):
    """The trainer's evaluation ranks by ItemBiasMF.scorer: equal to a dot product with the bias as an extra column,
    and different from the plain dot product."""
    cfg = pairwise_config(tmp_path, {"name": "tiny_item_bias_mf", "embedding_dim": 8}, epochs=1)
    trainer = Trainer(cfg)
    with torch.no_grad():
        trainer.model.item_bias.copy_(torch.linspace(0, 3, trainer.dataset.num_items).flip(0))
    got = trainer.evaluate(["test"])
    user_emb, item_emb = trainer.model.embeddings()
    evaluator = trainer.evaluators["test"]
    with_bias = evaluator.evaluate(dot_scorer(torch.cat([user_emb, torch.ones(len(user_emb), 1)], 1),
                                              torch.cat([item_emb, trainer.model.item_bias.detach()[:, None]], 1)))
    plain = evaluator.evaluate(dot_scorer(user_emb, item_emb))
    assert got["test/recall@20"] == pytest.approx(with_bias.means()["recall@20"], abs=1e-6)
    assert got["test/recall@20"] != pytest.approx(plain.means()["recall@20"], abs=1e-3)


def test_unknown_parameter_group_and_unsupported_task_are_one_line_errors(tmp_path):
    with pytest.raises(GraphrecError, match="train.groups.encoder: the model has no parameter group 'encoder'"):
        Trainer(pairwise_config(tmp_path, {"name": "lightgcn"}, groups={"encoder": {"lr": 0.1}}))
    with pytest.raises(GraphrecError, match="does not support task regression"):
        build_config({"task": "regression", "split": {"method": "random"}, "model": {"name": "lightgcn"}})
    with pytest.raises(GraphrecError, match="'rmse' is a regression metric, but the task is ranking"):
        build_config({"split": {"method": "random"}, "eval": {"metrics": ["rmse"]}})
