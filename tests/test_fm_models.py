"""FM-family models (fm, nfm, deepfm, afm; plain and GEM embeddings) trained through the Trainer on feature rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphrec.batches import PointBatch
from graphrec.cli import main
from graphrec.report import eval_table
from graphrec.config import build_config, config_from_file
from graphrec.data.loader import load_dataset
from graphrec.models import build_model
from graphrec.models.gem import feature_cooccurrence_graph
from graphrec.trainer import Trainer

from train_helpers import history, merged, results, stopped_and_resumed

MODELS = ["fm", "nfm", "deepfm", "afm"]
SMALL_TOWERS = {"nfm": {"hidden": [16], "dropout": 0.1}, "deepfm": {"hidden": [32, 32], "dropout": 0.1},
                "afm": {"attention_dim": 8, "dropout": 0.1}}

# 2,100 training rows of 4 fields with a planted FM: 9 batches of 256 per epoch, a fraction of a second per run
FIELDS_CONFIG = {
    "name": "fm-test", "seed": 3, "device": "cpu",
    "data": {"format": "synthetic_fields",
             "synthetic_fields": {"rows": 3000, "field_sizes": [30, 40, 6, 4], "rank": 4, "seed": 11}},
    "split": {"method": "random", "valid_ratio": 0.15, "test_ratio": 0.15},
    "model": {"name": "fm", "embedding_dim": 8, "init_std": 0.1},
    "train": {"epochs": 6, "batch_size": 256, "lr": 0.01, "reg": 0.0, "patience": 0, "threads": 1,
              "progress": False},
    "tracking": {"mode": "disabled"},
}


def config(tmp_path, name: str, **overrides):
    """A validated config of the FM test data for model `name`, writing runs under tmp_path."""
    raw = merged(FIELDS_CONFIG, {"output_dir": str(tmp_path / "runs"),
                                 "model": {"name": name, **SMALL_TOWERS.get(name, {})}})
    raw = merged(raw, overrides)
    return build_config(raw, base_dir=str(tmp_path))


def constant_predictor(cfg) -> dict[str, float]:
    """Validation metrics of the best constant: the training mean (regression) or base rate (classification)."""
    rows = load_dataset(cfg).fields.rows
    train, valid = rows["train"].label, rows["valid"].label
    if cfg.task == "regression":
        return {"rmse": float(np.sqrt(np.mean((valid - train.mean()) ** 2)))}
    rate, positive = float((train > 0).mean()), valid > 0
    return {"auc": 0.5, "logloss": float(-np.mean(np.where(positive, np.log(rate), np.log(1 - rate))))}


@pytest.mark.parametrize("batch_norm", [True, False])
def test_nfm_normalizes_the_bi_interaction_vector_with_batch_norm(batch_norm, tmp_path):
    """NFM's code batch-normalizes the Bi-Interaction vector before its dropout: in training the tower then reads
    a vector of zero mean and unit variance per dimension over the batch; without batch_norm it reads it raw."""
    trainer = Trainer(config(tmp_path, "nfm", model={"batch_norm": batch_norm, "bi_dropout": 0.0}))
    model, seen = trainer.model, []
    model.tower.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    model.train()
    model.loss(next(iter(trainer.batches())))
    mean, std = seen[0].mean(0), seen[0].std(0, unbiased=False)
    if batch_norm:
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
        torch.testing.assert_close(std, torch.ones_like(std), atol=0.05, rtol=0)  # BatchNorm eps 1e-5 vs var ~1e-3
    else:
        assert std.max() < 0.5  # raw products of init_std 0.1 rows


@pytest.mark.parametrize("embedding", ["plain", "gem"])
@pytest.mark.parametrize("model", MODELS)
def test_model_learns_planted_fm_regression_and_classification(model, embedding, tmp_path):
    """Loss falls and the validation metrics beat the best constant predictor on both tasks."""
    for task, labels in (("regression", "real"), ("classification", "binary")):
        cfg = config(tmp_path / task, model, task=task, model={"embedding": embedding},
                     data={"synthetic_fields": {"labels": labels}})
        trainer = Trainer(cfg)
        metrics = trainer.fit()
        losses = [record["train/loss"] for record in history(trainer.run_dir)]
        assert losses[-1] < 0.9 * losses[0], (task, losses)
        constant = constant_predictor(cfg)
        if task == "regression":
            assert metrics["valid/rmse"] < 0.9 * constant["rmse"], (metrics, constant)
            assert metrics["test/rmse"] < 0.9 * constant["rmse"], (metrics, constant)
        else:
            assert metrics["valid/auc"] > 0.65 and metrics["test/auc"] > 0.65, metrics  # a constant has 0.5
            assert metrics["valid/logloss"] < 0.95 * constant["logloss"], (metrics, constant)


@pytest.mark.parametrize("model", MODELS)
def test_gem_with_zero_layers_trains_exactly_like_its_base_model(model, tmp_path):
    """embedding: gem with gem.layers 0 makes g(i) = v_i: the same parameters, predictions and training run."""
    short = {"epochs": 2, "threads": 1}
    runs = []
    for name, keys in (("plain", {}), ("gem", {"embedding": "gem", "gem": {"layers": 0}})):
        trainer = Trainer(config(tmp_path / name, model, train=short, model=keys))  # seeds the global RNG (dropout)
        assert (trainer.model.gem is not None) == (name == "gem")
        trainer.model.eval()
        batch = PointBatch(trainer.point_features[:64], trainer.point_values[:64], None)
        runs.append((trainer.model.predict(batch).detach(), results(trainer.fit())))
    (plain_pred, plain_metrics), (gem_pred, gem_metrics) = runs
    assert torch.equal(plain_pred, gem_pred)
    assert plain_metrics == gem_metrics


def write_libfm(path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_gem_graph_comes_from_training_positives_only(tmp_path):
    """Features 0 and 3 co-occur in a positive train row; 0-4 only in a train negative, 0-5 only in valid and
    test positives: after the model is built from the config, feature 0's sampled neighbours are only 3."""
    data = tmp_path / "data"
    data.mkdir()
    write_libfm(data / "train.libfm", ["1 0:1 3:1", "-1 0:1 4:1", "1 1:1 4:1", "1 2:1 5:1", "-1 1:1 3:1"])
    write_libfm(data / "valid.libfm", ["1 0:1 5:1", "-1 2:1 3:1"])
    write_libfm(data / "test.libfm", ["1 0:1 5:1", "-1 1:1 5:1"])
    cfg = config(tmp_path, "fm", data={"path": str(data), "format": "libfm",
                                       "files": {"train": "train.libfm", "valid": "valid.libfm",
                                                 "test": "test.libfm"}},
                 model={"embedding": "gem", "gem": {"layers": 1, "fanouts": [50]}},
                 split={"method": "given", "valid_ratio": 0.1, "test_ratio": 0.2})  # the files are the splits
    dataset = load_dataset(cfg)
    model = build_model(cfg, dataset, torch.device("cpu"))
    sampler = model.gem.sampler
    expected = feature_cooccurrence_graph(dataset.fields.rows["train"], dataset.fields.space).toarray() > 0
    built = np.zeros_like(expected)
    for node in range(len(expected)):
        built[node, sampler.indices[sampler.indptr[node]:sampler.indptr[node + 1]].numpy()] = True
    assert (built == expected).all()
    model.on_epoch_start(0, torch.Generator().manual_seed(1))
    assert set(sampler.draw0[0].tolist()) == {3}  # ids follow the raw ones here: fields {0, 1, 2} and {3, 4, 5}
    assert set(sampler.draw0[5].tolist()) == {2}


@pytest.mark.parametrize("redraw", ["epoch", "batch"])
def test_gem_fm_stopped_mid_epoch_resumes_exactly(redraw, tmp_path):
    """GEM redraws its neighbours from the trainer's view generator at each epoch start (or from its own checkpointed
    generator at every batch), so a run stopped in the middle of epoch 2 and resumed from last.pt ends with the same
    metrics and per-epoch records."""
    overrides = {"model": {"embedding": "gem", "gem": {"layers": 2, "fanouts": [5, 3], "redraw": redraw}},
                 "train": {"epochs": 4}}
    whole = Trainer(config(tmp_path / "whole", "fm", **overrides))
    expected = results(whole.fit()), history(whole.run_dir)
    assert stopped_and_resumed(config(tmp_path / "parts", "fm", **overrides),
                               2 * whole._epoch_batches() + 5) == expected


def test_gem_neighbours_are_redrawn_each_epoch(tmp_path):
    """Two epochs see different neighbour draws; the draw is saved with the parameters (best.pt evaluates with it)."""
    trainer = Trainer(config(tmp_path, "fm", model={"embedding": "gem"}))
    sampler = trainer.model.gem.sampler
    trainer.model.on_epoch_start(0, trainer.view_gen)
    first = sampler.draw0.clone()
    trainer.model.on_epoch_start(1, trainer.view_gen)
    assert not torch.equal(first, sampler.draw0)
    assert "gem.sampler.draw0" in trainer.model.state_dict()


@pytest.mark.parametrize("eval_neighbors", ["draw", "all"])
def test_gem_evaluation_during_training_equals_the_best_checkpoints(eval_neighbors, tmp_path):
    """Each epoch's validation is the model's own at that epoch: the best epoch's logged value equals the final
    evaluation of best.pt, and with eval_neighbors all it is a fresh g(.) every epoch (fused Adam's in-place
    steps do not bump tensor versions, so a cache must not outlive the epoch)."""
    trainer = Trainer(config(tmp_path, "nfm", model={"embedding": "gem", "gem": {"eval_neighbors": eval_neighbors}},
                             train={"epochs": 4, "optimizer": "adam"}))
    final = trainer.fit()
    records = history(trainer.run_dir)
    best = min(records, key=lambda r: r["valid/rmse"])
    assert final["valid/rmse"] == pytest.approx(best["valid/rmse"], rel=1e-6)
    assert len({r["valid/rmse"] for r in records}) == len(records)



EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


FM_SWEEPS = sorted((EXPERIMENTS / "sweeps").glob("*frappe.yaml")) + [EXPERIMENTS / "sweeps" / "fm-ml-tag.yaml"]


@pytest.mark.parametrize("sweep", FM_SWEEPS, ids=lambda p: p.stem)
def test_fm_experiments_and_every_swept_value_are_valid_configs(sweep):
    """Each FM-family sweep's base YAML validates with every listed value (and range end) of every parameter."""
    spec = yaml.safe_load(sweep.read_text())
    base = sweep.parent / spec["base"]
    assert spec["metric"]["name"] == "valid/rmse" and spec["run_cap"] == 12
    for key, dist in spec["parameters"].items():
        values = dist.get("values") or ([dist["value"]] if "value" in dist else [dist["min"], dist["max"]])
        for value in values:
            cfg = config_from_file(base, [f"{key}={json.dumps(value)}"])
            assert cfg.model["name"] in sweep.stem
    cross = config_from_file(EXPERIMENTS / "fm-frappe-nfm-files.yaml", ["model.embedding=gem", "task=classification"])
    assert cross.data.files["train"] == "frappe.validation.libfm" and cross.train.select_metric == "auc"


def test_ml_tag_experiment_runs_on_tiny_files_in_nfm_layout(tmp_path, monkeypatch, capsys):
    """experiments/fm-ml-tag.yaml, as written, trains on hand-made files named and laid out like NFM's ml-tag
    (`label user:1 movie:1 tag:1`, one global index space) in $GRAPHREC_DATA/ml-tag: the registry preset names the
    files and the three fields are inferred from the positions."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "ml-tag"
    folder.mkdir(parents=True)
    for split, rows in (("train", 60), ("validation", 12), ("test", 12)):
        user, movie, tag = rng.integers(0, 5, rows), rng.integers(5, 13, rows), rng.integers(13, 21, rows)
        label = np.where((user + tag) % 2 == 0, 1, -1)
        write_libfm(folder / f"ml-tag.{split}.libfm",
                    [f"{y} {u}:1 {m}:1 {t}:1" for y, u, m, t in zip(label, user, movie, tag)])
    monkeypatch.setenv("GRAPHREC_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    cfg = config_from_file(EXPERIMENTS / "fm-ml-tag.yaml")
    space = load_dataset(cfg).fields.space
    assert space.num_fields == 3 and space.num_features == 21
    assert main(["train", str(EXPERIMENTS / "fm-ml-tag.yaml"), "--set", "train.epochs=2", "--set",
                 "train.batch_size=16", "--set", "device=cpu", "--set", "output_dir=runs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["split", "rows", "rmse", "mae"]
    assert table[1].split()[:2] == ["valid", "12"] and table[2].split()[:2] == ["test", "12"]
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["test/rows"] == 12
    # the run's config.yaml writes every data key (files: {} at its default): eval still takes the preset's files
    assert main(["eval", str(run)]) == 0
    assert capsys.readouterr().out.splitlines() == table[:3]


def test_cli_data_info_and_metric_table_for_feature_rows(tmp_path, capsys):
    """`graphrec data info --format libfm` summarizes fields and rows; pointwise metrics print one row each."""
    write_libfm(tmp_path / "train.libfm", ["1 0:1 3:1", "-1 1:1 4:1", "-1 2:1 4:1"])
    write_libfm(tmp_path / "test.libfm", ["1 0:1 4:1"])
    assert main(["data", "info", str(tmp_path), "--format", "libfm", "--files", "train=train.libfm,test=test.libfm"]) == 0
    out = capsys.readouterr().out.split()
    assert out[out.index("fields") + 1] == "2" and out[out.index("features") + 1] == "5"
    assert out[out.index("train_rows") + 1] == "3" and out[out.index("test_rows") + 1] == "1"
    table = eval_table({"valid/rmse": 0.25, "valid/rows": 40, "test/rmse": 0.2, "test/rows": 10,
                        "best_epoch": 3}).splitlines()
    assert table[0].split() == ["split", "rows", "rmse"]
    assert table[1].split() == ["valid", "40", "0.250000", "(+25.0%)"] and table[2].split() == ["test", "10", "0.200000"]


@pytest.mark.parametrize("task, labels, metrics", [("regression", "real", ["rmse", "mae"]),
                                                   ("classification", "binary", ["auc", "logloss"])])
def test_cli_eval_of_a_pointwise_run_prints_its_task_metrics_per_row_count(task, labels, metrics, tmp_path, capsys):
    """`graphrec eval RUN` re-reads best.pt and prints the task's metrics, equal to the training run's test metrics
    (read at the selected epoch), under a `rows` count column."""
    cfg = config(tmp_path, "fm", task=task, data={"synthetic_fields": {"labels": labels}}, train={"epochs": 2})
    trainer = Trainer(cfg)
    trained = trainer.fit()
    capsys.readouterr()
    assert main(["eval", str(trainer.run_dir), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["splits"]
    assert list(shown) == ["valid", "test"]
    assert list(shown["test"]) == ["rows", *metrics] and shown["test"]["rows"] == trained["test/rows"] == 450
    for metric in metrics:
        assert shown["test"][metric] == pytest.approx(trained[f"test/{metric}"], rel=1e-6)
    assert main(["eval", str(trainer.run_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["split", "rows", *metrics]
