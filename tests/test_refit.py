"""The refit protocol: the selected run's settings trained on train + valid for its selected epoch count."""
from __future__ import annotations

import json


from graphrec.cli import main
from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.trainer import Trainer

from train_helpers import RESUME_CONFIG, merged, results, write_config


def test_refit_equals_a_plain_run_on_train_plus_valid_for_the_selected_epochs(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 6, "patience": 2}})
    assert main(["train", str(config)]) == 0
    (selected,) = (tmp_path / "runs").iterdir()
    best_epoch = json.loads((selected / "metrics.json").read_text())["best_epoch"]
    assert main(["train", "--refit", str(selected)]) == 0
    (refit,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("resume-refit")]
    refit_metrics = json.loads((refit / "metrics.json").read_text())
    assert refit_metrics["protocol"] == "refit" and refit_metrics["epochs_run"] == best_epoch + 1
    assert "valid/recall@20" not in refit_metrics

    # the same training by hand: a dataset whose train is train + valid, no validation, best_epoch + 1 epochs
    raw = merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "plain"), "train": {"epochs": best_epoch + 1}})
    cfg = build_config(raw)
    dataset = load_dataset(cfg).with_valid_in_train()
    plain = Trainer(cfg, dataset=dataset)
    assert plain.model.graph.nnz == 2 * (len(load_dataset(cfg).train) + len(load_dataset(cfg).valid))
    expected = results(plain.fit())
    assert {k: v for k, v in results(refit_metrics).items() if k != "protocol"} == \
        {k: v for k, v in expected.items() if k != "protocol"}
    assert expected["protocol"] == "paper"


def test_refit_of_a_run_without_validation_is_one_line(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "runs", {"train": {"epochs": 1}, "split": {"method": "random",
                                                                                        "valid_ratio": 0.0}})
    assert main(["train", str(config)]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    assert main(["train", "--refit", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refit needs a validation-protocol run" in err[0]


def test_refit_keeps_the_selection_runs_cosine_rates(tmp_path):
    """A cosine schedule over 6 epochs selected at epoch 2: the refit trains 3 epochs at the selection run's first
    3 rates (the schedule cut at the selected epoch), not a cosine squeezed into 3 epochs."""
    import torch
    from graphrec.cli import refit_config
    from graphrec.optim import build_scheduler

    run = tmp_path / "run"
    run.mkdir()
    write_config(run, tmp_path / "runs", {"train": {"epochs": 6, "lr": 0.01, "lr_schedule": "cosine"}}).rename(
        run / "config.yaml")
    (run / "metrics.json").write_text(json.dumps({"protocol": "validation", "best_epoch": 2}))
    cfg = refit_config(run, [])
    assert cfg.train.epochs == 3 and cfg.train.lr_schedule_epochs == 6

    def rates(train) -> list[float]:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=train.lr)
        scheduler, out = build_scheduler(train, optimizer), []
        for _ in range(train.epochs):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    selection = rates(build_config(merged(RESUME_CONFIG, {"train": {"epochs": 6, "lr": 0.01,
                                                                     "lr_schedule": "cosine"}})).train)
    assert rates(cfg.train) == selection[:3]  # 0.01, 0.0093, 0.0075
    assert selection[2] > 0.007  # a 3-epoch cosine would be at 0.0025 by epoch 2
