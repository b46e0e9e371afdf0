"""Sweeps: spec validation, the three engines, the offline agent (parallel, resume, failures, hyperband),
summaries, and the online path against a mock wandb."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from graphrec.config import config_from_file
from graphrec.errors import GraphrecError
from graphrec.report import sweep_report
from graphrec.runs import RunLock, lock_held
from graphrec.sweep import agent, cli as sweep_cli
from graphrec.sweep.engine import Engine, Observation
from graphrec.sweep.hyperband import runs_to_stop
from graphrec.sweep.runlog import append_record, read_runs
from graphrec.sweep.seeds import parse_seeds, run_seeds
from graphrec.sweep.spec import Hyperband, SweepSpec, format_value, load_sweep, parse_dimensions
from graphrec.sweep.summary import (plot_sweep, progress_note, sweep_progress, sweep_rows, time_left_note,
                                    write_best_config)

FAKE_TRAIN = Path(__file__).parent / "fake_train.py"
BASE = {
    "name": "tiny", "seed": 1, "device": "cpu",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 60, "num_items": 50, "num_communities": 3, "mean_degree": 8, "seed": 3}},
    "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.2},
    "model": {"name": "lightgcn", "embedding_dim": 8, "num_layers": 1},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "eval_every": 1, "patience": 0, "progress": False},
    "eval": {"topk": [10], "metrics": ["recall", "ndcg"]},
    "tracking": {"mode": "disabled"},
}
METRIC = "valid/recall@10"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)


def write_sweep(folder: Path, parameters: dict, method: str = "grid", **extra) -> Path:
    """base.yaml and sweep.yaml in `folder`; returns the sweep file."""
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    sweep = {"method": method, "metric": {"name": METRIC, "goal": "maximize"}, "base": "base.yaml",
             "parameters": parameters, **extra}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


REAL_RUN_COMMAND = agent.run_command


@pytest.fixture
def fake_train(monkeypatch):
    """Runs go to tests/fake_train.py (same command line and run-folder files as graphrec train, no torch)."""
    monkeypatch.setattr(agent, "run_command", lambda base, params, extra: [sys.executable, str(FAKE_TRAIN)]
                        + REAL_RUN_COMMAND(base, params, extra)[3:])


def statuses(folder: Path) -> dict[str, str]:
    return {run_id: r["status"] for run_id, r in read_runs(folder / "runs.jsonl").items()}


# ---- spec and engines ----------------------------------------------------------------------------------------
def test_distributions_follow_wandb_meaning(tmp_path):
    dims = {d.key: d for d in parse_dimensions(tmp_path / "s.yaml", {
        "a": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "b": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 4},
        "c": {"min": 2, "max": 5},
        "d": {"min": 0.0, "max": 2.0},
        "e": {"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10.0},
        "f": {"values": ["x", "y", "z"]},
        "g": {"distribution": "log_uniform", "min": 0, "max": 2}})}
    assert dims["a"].value_at(0.5) == pytest.approx(1e-3)  # geometric middle
    assert [dims["b"].value_at(u) for u in (0.0, 0.15, 0.25, 1.0)] == [0, 0, 4, 8]  # round(10 * u / 4) * 4
    assert dims["b"].grid_values() == [0, 4, 8]
    assert (dims["c"].distribution, dims["c"].value_at(0.0), dims["c"].value_at(0.99)) == ("int_uniform", 2, 5)
    assert (dims["d"].distribution, dims["d"].value_at(0.25)) == ("uniform", 0.5)
    assert dims["e"].value_at(0.5) == pytest.approx(1.0)
    assert [dims["f"].value_at(u) for u in (0.1, 0.5, 0.9)] == ["x", "y", "z"]
    assert dims["g"].value_at(1.0) == pytest.approx(math.e ** 2)
    assert format_value(1e-05) == "1.0e-05" and yaml.safe_load(format_value(1e-05)) == 1e-05
    assert format_value([10, 20]) == "[10, 20]" and format_value("cosine") == "cosine"


def test_grid_enumerates_every_combination_in_order(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]},
                                             "train.batch_size": {"values": [32, 64]},
                                             "train.reg": {"value": 0.0}}))
    engine = Engine(spec)
    got = [engine.propose(i, []).params for i in range(6)]
    assert got == [{"train.reg": 0.0, "train.lr": lr, "train.batch_size": b}
                   for lr in (0.001, 0.01, 0.1) for b in (32, 64)]
    assert engine.size() == 6 and engine.propose(6, []) is None


def test_random_with_a_seed_is_reproducible(tmp_path):
    params = {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
              "train.batch_size": {"values": [32, 64, 128]}, "model.embedding_dim": {"min": 4, "max": 16}}
    first = Engine(load_sweep(write_sweep(tmp_path, params, "random", seed=7)))
    again = Engine(load_sweep(tmp_path / "sweep.yaml"))
    other = Engine(load_sweep(write_sweep(tmp_path, params, "random", seed=8)))
    proposals = [first.propose(i, []).params for i in range(10)]
    assert proposals == [again.propose(i, []).params for i in range(10)]
    assert proposals != [other.propose(i, []).params for i in range(10)]
    # proposal i depends only on (seed, i): a resumed sweep proposes what the uninterrupted one would have
    assert again.propose(5, [Observation({}, 1.0, "finished")]).params == proposals[5]
    assert all(1e-4 <= p["train.lr"] <= 1e-1 and 4 <= p["model.embedding_dim"] <= 16 for p in proposals)
    assert len({p["train.lr"] for p in proposals}) == 10


def _best_found(spec: SweepSpec, trials: int) -> float:
    """Best of `trials` proposals on f(lr, x) = -(log10 lr + 2.5)^2 - 4 (x - 0.3)^2 (maximum 0)."""
    engine, history, best = Engine(spec), [], -np.inf
    for i in range(trials):
        proposal = engine.propose(i, history)
        value = -(math.log10(proposal.params["train.lr"]) + 2.5) ** 2 - 4 * (proposal.params["train.reg"] - 0.3) ** 2
        history.append(Observation(proposal.draw, value, "finished"))
        best = max(best, value)
    return best


def test_bayes_improves_on_random_on_a_synthetic_objective(tmp_path):
    pytest.importorskip("optuna")
    params = {"train.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
              "train.reg": {"distribution": "uniform", "min": 0.0, "max": 1.0}}
    gaps = {}
    for method in ("random", "bayes"):
        found = [_best_found(load_sweep(write_sweep(tmp_path, params, method, seed=seed)), 30) for seed in range(4)]
        gaps[method] = float(np.mean(found))
    assert gaps["bayes"] > gaps["random"], gaps


# ---- the offline agent ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_offline_grid_sweep_of_4_runs_two_at_once_and_its_best_config(tmp_path):
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.05]},
                                        "model.embedding_dim": {"values": [4, 16]}})
    folder = agent.run_offline(sweep_file, count=None, workers=2)
    run_dirs = sorted((folder / "runs").iterdir())
    assert len(run_dirs) == 4 and all((d / "metrics.json").is_file() for d in run_dirs)
    lines = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines[:2]] == ["running", "running"]  # two processes at once
    threads = {line["threads"] for line in lines if line["status"] == "running"}
    assert threads == {max(1, agent.usable_cores() // 2)}
    assert sorted(tuple(sorted(r["params"].items())) for r in read_runs(folder / "runs.jsonl").values()) == sorted(
        (("model.embedding_dim", d), ("train.lr", lr)) for lr in (0.001, 0.05) for d in (4, 16))
    # the best run, by each run folder's own metrics.json, is the one whose params the best config carries
    records = read_runs(folder / "runs.jsonl").values()
    by_value = [(json.loads((folder / r["run_dir"] / "metrics.json").read_text())[METRIC], r) for r in records]
    best = max(by_value, key=lambda pair: pair[0])
    rows = sweep_rows(folder, METRIC)
    assert rows[0]["value"] == best[0] and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert [r["value"] for r in rows] == sorted((v for v, _ in by_value), reverse=True)
    cfg = config_from_file(write_best_config(folder, METRIC))
    assert cfg.train.lr == rows[0]["params"]["train.lr"]
    assert cfg.model["embedding_dim"] == rows[0]["params"]["model.embedding_dim"]
    assert cfg.train.select_metric == "recall@10"


def test_killed_sweep_resumes_without_repeating_finished_runs(tmp_path, fake_train):
    sweep_file = write_sweep(tmp_path, {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4,
                                                     "max": 1.0}}, "random", seed=3)
    folder = agent.run_offline(sweep_file, count=2, workers=1, sweep_dir=tmp_path / "sw")
    first = read_runs(folder / "runs.jsonl")
    assert list(statuses(folder).values()) == ["finished", "finished"]
    agent.run_offline(None, count=4, sweep_dir=folder, resume=True)
    after = read_runs(folder / "runs.jsonl")
    assert list(statuses(folder).values()) == ["finished"] * 4
    assert len(list((folder / "runs").iterdir())) == 4
    assert all(after[k]["run_dir"] == first[k]["run_dir"] for k in first)
    started = [json.loads(line)["id"] for line in (folder / "runs.jsonl").read_text().splitlines()
               if json.loads(line)["status"] == "running"]
    assert started == ["r000", "r001", "r002", "r003"]
    # the same four proposals as an uninterrupted sweep
    engine = Engine(load_sweep(sweep_file))
    assert [after[f"r{i:03d}"]["params"] for i in range(4)] == [engine.propose(i, []).params for i in range(4)]
    assert json.loads((folder / "sweep.json").read_text())["count"] == 4


def test_an_archived_sweep_resumes_elsewhere_without_repeating_its_finished_runs(tmp_path, fake_train):
    """`graphrec archive` of a stopped sweep (no checkpoints) is continued on 'another machine': the finished runs
    stand, the remaining proposals run, and the archive's best config is the same as a whole sweep's."""
    from graphrec.archive import archive
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1, 1.0]}})
    folder = agent.run_offline(sweep_file, count=2, sweep_dir=tmp_path / "sw")
    archive([str(folder)], str(tmp_path / "kept"))
    copy = tmp_path / "kept" / "sw"
    assert statuses(copy) == {"r000": "finished", "r001": "finished"}
    agent.run_offline(None, count=4, sweep_dir=copy, resume=True)
    assert statuses(copy) == {f"r00{i}": "finished" for i in range(4)}
    assert len(list((copy / "runs").iterdir())) == 4  # r000 and r001 were not run again
    assert config_from_file(write_best_config(copy, METRIC)).train.lr == 0.01


def test_a_run_left_running_is_run_again_with_its_params(tmp_path, fake_train):
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}})
    folder = agent.run_offline(sweep_file, count=1, sweep_dir=tmp_path / "sw")
    append_record(folder / "runs.jsonl", {"id": "r001", "status": "running", "params": {"train.lr": 0.01},
                                          "draw": {"train.lr": 1}})
    (folder / "runs.jsonl").open("a").write('{"id": "r002", "sta')  # a line cut short by the kill
    agent.run_offline(None, count=3, sweep_dir=folder, resume=True)
    runs = read_runs(folder / "runs.jsonl")
    assert statuses(folder) == {"r000": "finished", "r001": "finished", "r002": "finished"}
    assert runs["r001"]["metric"] == pytest.approx(1.0)  # lr = 0.01 scores 1 in fake_train
    assert [r["params"]["train.lr"] for r in runs.values()] == [0.001, 0.01, 0.1]
    assert (folder / "runs.jsonl").read_text().count('"id": "r001", "log"') == 1  # after the cut line, whole


def test_a_run_interrupted_after_its_first_checkpoint_is_continued_from_last_pt(tmp_path):
    """A sweep killed while r001 trained (its last.pt saved mid-run, its record left `running`) resumes r001 in
    its own folder from last.pt, and it ends with the metrics of r000, the same settings run without a stop."""
    from graphrec.config import config_from_file as load
    from graphrec.trainer import Trainer, TrainingStopped
    from train_helpers import results, stop_at_step
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.01]}})
    folder = agent.run_offline(sweep_file, count=1, sweep_dir=tmp_path / "sw")
    whole = read_runs(folder / "runs.jsonl")["r000"]
    extra = [f"output_dir={folder / 'runs'}", "name=tiny-r001", "train.threads=1", "train.progress=false",
             "train.select_metric=recall@10", "train.lr=0.01"]
    trainer = Trainer(load(folder / "base.yaml", extra))
    with pytest.raises(TrainingStopped):
        trainer.fit(stop_at_step(trainer, trainer._epoch_batches() + 1))  # inside epoch 1: last.pt holds epoch 0
    append_record(folder / "runs.jsonl", {"id": "r001", "status": "running", "params": {"train.lr": 0.01},
                                          "draw": {"train.lr": 0}})
    log = trainer.run_dir / "log.jsonl"  # say the first process trained 1000 s and evaluated 200 s before the kill
    log.write_text("".join(json.dumps({**json.loads(line), "train_seconds": 1000.0, "eval_seconds": 200.0}) + "\n"
                           for line in log.read_text().splitlines()))
    agent.run_offline(None, count=2, sweep_dir=folder, resume=True)
    runs = read_runs(folder / "runs.jsonl")
    assert runs["r001"]["status"] == "finished"
    assert 1200 < runs["r001"]["seconds"] < 1200 + 60  # the run's time before the resume counts, not only after
    assert runs["r001"]["resumed_from"] == runs["r001"]["run_dir"] == str(trainer.run_dir.relative_to(folder))
    assert len(list((folder / "runs").iterdir())) == 2  # no third folder: r001 was not started again
    assert runs["r001"]["metric"] == whole["metric"]
    metrics = [results(json.loads((folder / r["run_dir"] / "metrics.json").read_text())) for r in (whole, runs["r001"])]
    assert metrics[0] == metrics[1]
    assert "resuming" in (folder / runs["r001"]["log"]).read_text()


def test_a_crashed_run_is_marked_failed_with_its_stderr_tail(tmp_path, fake_train, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_LR", "0.01")
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}}), workers=2)
    runs = read_runs(folder / "runs.jsonl")
    assert statuses(folder) == {"r000": "finished", "r001": "failed", "r002": "finished"}
    assert "RuntimeError: fake crash" in runs["r001"]["error"] and runs["r001"]["exit_code"] == 1
    assert [r["id"] for r in sweep_rows(folder, METRIC)][-1] == "r001"  # no value: ranked last, still listed


def test_threads_per_run_can_be_set_apart_from_the_workers(tmp_path, fake_train):
    """--threads 1 with one worker (a machine other jobs keep busy): each run is launched and recorded with 1
    thread instead of all of this process's cores."""
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01]}}), workers=1, threads=1)
    lines = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert {line["threads"] for line in lines if line["status"] == "running"} == {1}
    configs = [yaml.safe_load((d / "config.yaml").read_text()) for d in (folder / "runs").iterdir()]
    assert [c["train.threads"] for c in configs] == [1, 1]


def test_a_run_that_fails_after_logging_its_best_value_is_never_the_sweeps_best(tmp_path, fake_train, monkeypatch):
    """lr 0.01 scores highest at every epoch but diverges after logging them: it ranks after the finished runs
    (its logged value still shown) and the best config is a finished run's."""
    monkeypatch.setenv("FAKE_DIVERGE_LR", "0.01")
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}}), workers=2)
    assert statuses(folder) == {"r000": "finished", "r001": "failed", "r002": "finished"}
    rows = sweep_rows(folder, METRIC)
    assert [r["id"] for r in rows][-1] == "r001" and rows[-1]["value"] > max(r["value"] for r in rows[:-1])
    assert config_from_file(write_best_config(folder, METRIC)).train.lr in (0.001, 0.1)


def test_resume_with_retry_failed_runs_a_failed_run_again_from_scratch(tmp_path, fake_train, monkeypatch):
    """lr 0.01 diverges; after the 'fix' (the variable unset) --resume --retry-failed runs it again with its params
    in a new folder, it finishes, and as the best lr it becomes the sweep's best; the finished runs are not rerun."""
    monkeypatch.setenv("FAKE_DIVERGE_LR", "0.01")
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}})
    folder = agent.run_offline(sweep_file, workers=2)
    failed_dir = read_runs(folder / "runs.jsonl")["r001"]["run_dir"]
    monkeypatch.delenv("FAKE_DIVERGE_LR")
    with pytest.raises(GraphrecError, match="--retry-failed continues a sweep folder"):
        agent.run_offline(sweep_file, retry_failed=True)
    agent.run_offline(None, workers=2, sweep_dir=folder, resume=True, retry_failed=True)
    runs = read_runs(folder / "runs.jsonl")
    assert statuses(folder) == {"r000": "finished", "r001": "finished", "r002": "finished"}
    assert runs["r001"]["failed_before"] == failed_dir != runs["r001"]["run_dir"] and runs["r001"]["error"] is None
    assert len(list((folder / "runs").iterdir())) == 4  # the failed folder stays beside the new one
    assert config_from_file(write_best_config(folder, METRIC)).train.lr == 0.01


needs_lock_table = pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="no /proc/locks (not Linux)")


@needs_lock_table
def test_lock_held_reads_the_lock_table_without_taking_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    assert lock_held(folder) is False
    with RunLock(folder):
        assert lock_held(folder) is True and lock_held(tmp_path) is False
        assert lock_held(folder) is True  # probing left the lock where it was
    assert lock_held(folder) is False and lock_held(tmp_path / "gone") is None


def test_a_second_agent_on_a_sweep_folder_is_refused_before_writing(tmp_path, fake_train):
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}}), count=2)
    files = {p: p.read_bytes() for p in folder.glob("*.json*")}
    with agent.sweep_lock(folder):  # an agent still working on it
        with pytest.raises(GraphrecError, match="is in use by another graphrec sweep"):
            agent.run_offline(None, count=3, sweep_dir=folder, resume=True)
    assert {p: p.read_bytes() for p in folder.glob("*.json*")} == files
    agent.run_offline(None, count=3, sweep_dir=folder, resume=True)  # the lock went with its holder
    assert statuses(folder) == {"r000": "finished", "r001": "finished", "r002": "finished"}


@needs_lock_table
def test_a_sweep_read_while_it_runs_shows_each_live_run_s_best_value_so_far(tmp_path, fake_train):
    """A run left `running` in runs.jsonl is shown training (its best logged value and last epoch) while the sweep's
    agent holds the folder, and `interrupted` once nothing does."""
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1]}}), count=2)
    state = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**state, "count": 3}))
    append_record(folder / "runs.jsonl", {"id": "r002", "status": "running", "params": {"train.lr": 0.1},
                                          "draw": {"train.lr": 2}})
    live = folder / "runs" / "tiny-r002-20261204-080000"
    live.mkdir()
    (live / "log.jsonl").write_text("".join(json.dumps({"epoch": e, METRIC: v}) + "\n"
                                            for e, v in ((1, 0.5), (2, 0.99), (3, 0.7))))
    with agent.sweep_lock(folder):
        rows = {r["id"]: r for r in sweep_rows(folder, METRIC)}
        assert (rows["r002"]["status"], rows["r002"]["value"], rows["r002"]["epoch"]) == ("running", 0.99, 3)
        assert progress_note(folder) == "2 of 3 runs done, 1 running"
        report = sweep_report([str(folder)], METRIC, "markdown", None)
        assert "(still running)" in report.splitlines()[0] and "| r002 | running, epoch 3 | 0.9900 |" in report
        for run_id, seconds in (("r000", 600), ("r001", 1800)):
            append_record(folder / "runs.jsonl", {"id": run_id, "seconds": seconds})
        assert time_left_note(folder) == "about 20 min left: 1 run at the finished runs' median of 20 min, 1 at a time"
    rows = {r["id"]: r for r in sweep_rows(folder, METRIC)}
    assert (rows["r002"]["status"], rows["r002"]["epoch"]) == ("interrupted", None)
    assert progress_note(folder) == "2 of 3 runs done, 1 interrupted"
    assert f"graphrec sweep --resume {folder} finishes it" in sweep_report([str(folder)], METRIC, "markdown",
                                                                           None).splitlines()[0]


def test_the_best_config_of_an_unfinished_sweep_says_it_is_provisional(tmp_path, fake_train, monkeypatch):
    """A sweep read before it ends (runs failed, unfinished or not begun) still gets a best config, but its header
    and the report's line say how much of the budget it was chosen from; a whole sweep's say neither."""
    monkeypatch.setenv("FAKE_FAIL_LR", "0.01")
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01, 0.1, 1.0]}}), count=3)
    assert progress_note(folder) == "2 of 3 runs done, 1 failed"
    state = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**state, "count": None}))  # a grid without --count: all 4
    assert sweep_progress(folder) == (2, 3, 4)
    header = write_best_config(folder, METRIC).read_text().splitlines()[1]
    assert header.startswith("# Budget: provisional, 2 of 4 runs done, 1 failed, 1 not begun,")
    assert "provisional: 2 of 4 runs done" in sweep_report([str(folder)], METRIC, "markdown", None).splitlines()[0]
    monkeypatch.delenv("FAKE_FAIL_LR")
    agent.run_offline(None, sweep_dir=folder, resume=True, retry_failed=True)
    assert progress_note(folder) is None
    assert write_best_config(folder, METRIC).read_text().splitlines()[1].startswith("# Budget: 4 runs,")


def test_report_best_writes_its_ranked_table_to_out_instead_of_printing_it(tmp_path, fake_train, capsys):
    from graphrec.cli import main
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01]}}), count=2)
    capsys.readouterr()
    out = tmp_path / "ranked.csv"
    assert main(["report", str(folder), "--best", METRIC, "--format", "csv", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    lines = out.read_text().splitlines()
    assert lines[0].startswith(f"sweep {folder}: best config written to") and lines[1].startswith("rank,run,status,")
    assert [line.split(",")[0] for line in lines[2:]] == ["1", "2"]


def test_a_sweep_whose_only_valued_run_failed_has_no_best_config(tmp_path, fake_train, monkeypatch):
    monkeypatch.setenv("FAKE_DIVERGE_LR", "0.01")
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.01]}}))
    with pytest.raises(GraphrecError, match="has no finished run with a value of 'valid/recall@10'"):
        write_best_config(folder, METRIC)
    assert not list(folder.glob("best-*.yaml"))


def test_seeds_parse_as_ranges_and_lists():
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("1,3, 7") == [1, 3, 7]
    assert parse_seeds("0-2,9") == [0, 1, 2, 9]
    for text, message in [("5-1", "runs backwards"), ("1,2,2", "seed 2 is listed twice"), ("a-b", "give seeds as"),
                          ("", "give seeds as"), ("-1", "give seeds as"), ("1-", "give seeds as")]:
        with pytest.raises(GraphrecError, match=message):
            parse_seeds(text)


def test_train_seeds_runs_the_config_once_per_seed_as_a_resumable_sweep(tmp_path, fake_train):
    """`graphrec train CONFIG --seeds 1-3 --workers 2 --set output_dir=out --set train.lr=0.1`: a seeds folder under
    out/ (named after the config) whose runs are the config with each seed and the --set, two at once, listed in a
    ledger that graphrec sweep --resume reads; the config's own selection metric is kept."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    folder = run_seeds("base.yaml", "1-3", workers=2, overrides=["output_dir=out", "train.lr=0.1"])
    assert folder.parent == Path("out") and folder.name.startswith("tiny-seeds-")
    runs = read_runs(folder / "runs.jsonl")
    assert statuses(folder) == {"r000": "finished", "r001": "finished", "r002": "finished"}
    assert [r["params"] for r in runs.values()] == [{"seed": 1}, {"seed": 2}, {"seed": 3}]
    configs = [yaml.safe_load((folder / r["run_dir"] / "config.yaml").read_text()) for r in runs.values()]
    assert {c["train.lr"] for c in configs} == {0.1} and [c["seed"] for c in configs] == [1, 2, 3]
    assert {c["train.select_metric"] for c in configs} == {"recall@10"}
    # base.yaml is the config before --set; its header says what every run added, so nobody retrains it alone
    assert "every run also applies --set train.lr=0.1" in (folder / "base.yaml").read_text().splitlines()[1]
    assert sweep_progress(folder) == (3, 3, 3)
    agent.run_offline(None, sweep_dir=folder, resume=True)  # nothing left: no run is started again
    assert len(list((folder / "runs").iterdir())) == 3


def test_plot_of_metric_against_each_parameter(tmp_path, fake_train):
    pytest.importorskip("matplotlib")
    folder = agent.run_offline(write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01]},
                                                      "train.epochs": {"values": [2, 3]}}), workers=2)
    plot = plot_sweep(folder, METRIC, tmp_path / "plot.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hyperband_rule_matches_wandb():
    # loss (minimize), brackets 2.5 -> 2 and 1.25 -> 1 from max_iter 5, eta 2, s 2; at evaluation 2 the values
    # [9, 10, 8, 7, 6] sorted best first are cut at position floor(5 / 2) = 2: 8. b (10) stops, c (8) does not.
    hyperband = Hyperband(eta=2, max_iter=5, s=2)
    assert hyperband.brackets(10) == [1, 2]
    curves = {"a": [10, 9], "b": [10, 10], "c": [10, 8, 8], "d": [10, 7, 7], "e": [10, 6, 6]}
    assert runs_to_stop(hyperband, curves, {"b", "c", "d"}, maximize=False) == ["b"]
    # maximize, min_iter 2, eta 3: at evaluation 2, [0.9, 0.5, 0.4, 0.2] is cut at position floor(4 / 3) = 1: 0.5.
    # strict: y (0.4) and z (0.2 at evaluation 2) stop; otherwise the best so far counts and z (0.9) goes on.
    hyperband = Hyperband(eta=3, min_iter=2)
    curves = {"w": [0.1, 0.9], "x": [0.3, 0.5], "y": [0.45, 0.4], "z": [0.2, 0.2, 0.9], "q": [0.9]}
    assert runs_to_stop(hyperband, curves, {"x", "y", "z", "q"}, maximize=True) == ["y", "z"]
    assert runs_to_stop(Hyperband(eta=3, min_iter=2, strict=False), curves, {"y", "z"}, maximize=True) == ["y"]


def test_hyperband_stops_a_bad_run_by_sigterm(tmp_path, fake_train, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "0.3")
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.01, 1.0]}, "train.epochs": {"value": 10}},
                             early_terminate={"type": "hyperband", "min_iter": 2, "eta": 3})
    folder = agent.run_offline(sweep_file, workers=2)
    runs = read_runs(folder / "runs.jsonl")
    assert statuses(folder) == {"r000": "finished", "r001": "stopped"}
    assert 2 <= runs["r001"]["evaluations"] < 10 and runs["r001"]["metric"] is not None


def test_sweep_cli_parses_and_runs(tmp_path, fake_train, capsys):
    parser = argparse.ArgumentParser()
    sweep_cli.add_parser(parser.add_subparsers())
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01]}})
    args = parser.parse_args(["sweep", str(sweep_file), "--offline", "--workers", "2", "--set", "train.epochs=3"])
    assert args.func(args) == 0
    folder = Path(capsys.readouterr().out.split("sweep folder: ")[1].strip())
    assert statuses(folder) == {"r000": "finished", "r001": "finished"}
    assert json.loads((folder / "sweep.json").read_text())["overrides"] == ["train.epochs=3"]
    log = [json.loads(line) for line in next(iter((folder / "runs").iterdir())).joinpath("log.jsonl").open()]
    assert len(log) == 3  # --set reached the run


# ---- online (mock wandb) --------------------------------------------------------------------------------------
def test_online_sweep_hands_wandb_the_file_and_runs_each_proposal(tmp_path, fake_train, monkeypatch):
    seen = {}

    def sweep(config, project=None, entity=None):
        seen["config"] = config
        return "sweep123"

    def agent_(sweep_id, function=None, project=None, entity=None, count=None):
        for run, lr in enumerate([0.001, 0.01][:count]):
            params = tmp_path / f"params-{run}.yaml"
            params.write_text(yaml.safe_dump({"wandb_version": 1, "train.lr": {"value": lr}}))
            monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(params))
            function()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(sweep=sweep, agent=agent_))
    commands = []
    real = agent.run_command
    monkeypatch.setattr(agent, "run_command", lambda *a: commands.append(real(*a)) or real(*a))
    from graphrec.sweep import online
    monkeypatch.setattr(online, "run_command", agent.run_command)
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.001, 0.01]}}, seed=4)
    assert online.run_online(sweep_file, count=2) == "sweep123"
    assert "base" not in seen["config"] and "seed" not in seen["config"]
    assert seen["config"]["parameters"] == {"train.lr": {"values": [0.001, 0.01]}}
    assert len(commands) == 2 and "tracking.mode=online" in commands[0] and "train.lr=0.01" in commands[1]


# ---- bad inputs ------------------------------------------------------------------------------------------------
def test_bayes_offline_without_optuna_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    sweep_file = write_sweep(tmp_path, {"train.lr": {"min": 0.001, "max": 0.1}}, "bayes")
    with pytest.raises(GraphrecError, match=r"pip install 'graphrec\[sweeps\]'"):
        agent.run_offline(sweep_file, count=2)
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("parameters, extra, message", [
    ({"train.lr": {"values": [0.1]}}, {"method": "gird"}, "unknown method 'gird', did you mean 'grid'?"),
    ({"train.lerning_rate": {"values": [0.1]}}, {}, "did you mean 'train.lr'?"),
    ({"train.batch_size": {"values": [32, "big"]}}, {}, "parameter 'train.batch_size' value 'big'"),
    ({"train.epochs": {"min": 1.5, "max": 3.0}}, {"method": "random"}, "parameter 'train.epochs' value 1.5"),
    ({"train.lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 0.001}}, {"method": "random"},
     "min 0.1 > max 0.001"),
    ({"train.lr": {"distribution": "uniform", "min": 0.1, "max": 0.2}}, {}, "grid search needs values"),
    ({"train.lr": {"distribution": "log_unifrom", "min": 0.1, "max": 0.2}}, {"method": "random"},
     "did you mean 'log_uniform'?"),
    ({"train.lr": {"values": [0.1]}}, {"metric": {"name": "test/recall@10", "goal": "maximize"}},
     "sweeps select on the validation split"),
    ({"train.lr": {"values": [0.1]}}, {"metric": {"name": "valid/recall@50", "goal": "maximize"}},
     "add 50 to eval.topk"),
])
def test_bad_sweep_files_are_one_line_before_any_run(tmp_path, parameters, extra, message):
    sweep_file = write_sweep(tmp_path, parameters)
    sweep_file.write_text(yaml.safe_dump({**yaml.safe_load(sweep_file.read_text()), **extra}))
    with pytest.raises(GraphrecError) as err:
        agent.run_offline(sweep_file, count=2)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "sweeps").exists()


def test_set_of_a_swept_key_and_resume_of_a_plain_folder_are_refused(tmp_path):
    sweep_file = write_sweep(tmp_path, {"train.lr": {"values": [0.1]}})
    with pytest.raises(GraphrecError, match="is a parameter of the sweep"):
        agent.run_offline(sweep_file, overrides=["train.lr=0.5"])
    with pytest.raises(GraphrecError, match="is not a sweep folder"):
        agent.run_offline(None, sweep_dir=tmp_path, resume=True)


def test_dry_run_prints_the_train_command_of_each_run_the_sweep_then_starts(tmp_path, fake_train, capsys):
    params = {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
              "train.batch_size": {"values": [32, 64, 128]}}
    sweep_file = write_sweep(tmp_path, params, "random", seed=5)
    parser = argparse.ArgumentParser()
    sweep_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["sweep", str(sweep_file), "--count", "3", "--set", "train.epochs=3", "--dry-run"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not (tmp_path / "sweeps").exists()  # nothing written
    folder = agent.run_offline(sweep_file, count=3, overrides=["train.epochs=3"])
    records = read_runs(folder / "runs.jsonl")
    assert [line.split()[0] for line in lines] == sorted(records) == ["r000", "r001", "r002"]
    for line in lines:
        words = shlex.split(line.split(maxsplit=1)[1])
        assert words[:3] == ["graphrec", "train", "base.yaml"]
        sets = dict(text.split("=", 1) for text in words[4::2])
        assert sets.pop("train.select_metric") == "recall@10" and sets.pop("train.epochs") == "3"
        assert {key: yaml.safe_load(text) for key, text in sets.items()} == records[line.split()[0]]["params"]


def test_trials_run_only_the_named_proposals_with_their_parameters_in_the_whole_sweep(tmp_path, fake_train):
    """--trials 1,3-4 (a lost sweep's missing trials, or a sweep split over machines) makes a folder of r001, r003 and
    r004 with exactly their parameters in the whole sweep, as its dry-run lines say; it plans 3 runs, and --resume
    finds nothing left."""
    sweep_file = write_sweep(tmp_path, {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                                        "train.batch_size": {"values": [32, 64, 128]}}, "random", seed=3)
    whole = dict(agent.plan_offline(sweep_file, 5))
    assert agent.plan_offline(sweep_file, trials="1,3-4") == [(k, whole[k]) for k in ("r001", "r003", "r004")]
    folder = agent.run_offline(sweep_file, workers=2, sweep_dir=tmp_path / "sw", trials="1,3-4")
    engine = Engine(load_sweep(sweep_file))
    assert statuses(folder) == {"r001": "finished", "r003": "finished", "r004": "finished"}
    assert {run_id: r["params"] for run_id, r in read_runs(folder / "runs.jsonl").items()} == {
        f"r{i:03d}": engine.propose(i, []).params for i in (1, 3, 4)}
    assert sweep_progress(folder) == (3, 3, 3) and progress_note(folder) is None
    agent.run_offline(None, sweep_dir=folder, resume=True)
    assert len(list((folder / "runs").iterdir())) == 3
    with pytest.raises(GraphrecError, match="runs the trials it was started with"):
        agent.run_offline(None, count=5, sweep_dir=folder, resume=True)


def test_a_resumed_folder_changes_its_trials_but_keeps_the_runs_it_has_begun(tmp_path, fake_train):
    """--resume DIR --trials hands a folder's unstarted trials to another folder: the folder runs exactly the new
    list (with each trial's parameters in the whole sweep) and records it in sweep.json; dropping a begun run is
    refused in one line, before anything is written."""
    sweep_file = write_sweep(tmp_path, {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
                             "random", seed=3)
    engine = Engine(load_sweep(sweep_file))
    folder = agent.run_offline(sweep_file, count=2, sweep_dir=tmp_path / "sw")
    agent.run_offline(None, sweep_dir=folder, resume=True, trials="0-1,4")
    assert statuses(folder) == {"r000": "finished", "r001": "finished", "r004": "finished"}
    assert read_runs(folder / "runs.jsonl")["r004"]["params"] == engine.propose(4, []).params
    state = json.loads((folder / "sweep.json").read_text())
    assert (state["trials"], state["count"]) == ([0, 1, 4], None)
    before = (folder / "sweep.json").read_text()
    with pytest.raises(GraphrecError, match="has already begun r001, r004"):
        agent.run_offline(None, sweep_dir=folder, resume=True, trials="0")
    assert (folder / "sweep.json").read_text() == before and len(list((folder / "runs").iterdir())) == 3


def test_report_best_names_the_best_run_of_a_sweep_split_over_folders(tmp_path, fake_train):
    """report --best over the folders of one sweep split with --trials ends with the best run over all of them and
    the config to train it from, and writes that config in every folder (not each folder's own best); a folder
    reported alone gets its own best."""
    sweep_file = write_sweep(tmp_path, {"train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
                             "random", seed=3)
    folders = [str(agent.run_offline(sweep_file, sweep_dir=tmp_path / name, trials=trials))
               for name, trials in (("a", "0-1"), ("b", "2-3"))]
    values = {(folder, run_id): r["metric"] for folder in folders
              for run_id, r in read_runs(Path(folder) / "runs.jsonl").items()}
    folder, run_id = max(values, key=values.get)
    assert len(set(values.values())) == 4  # a real choice between the folders
    last = sweep_report(folders, METRIC, "markdown", None).splitlines()[-1]
    assert last.startswith(f"sweep sweep.yaml over 2 folders: best {run_id} (")
    assert last.endswith(f"in {folder}; train it from {Path(folder) / 'best-valid-recall@10.yaml'} "
                         "(the same config is in each folder)")
    configs = {f: (Path(f) / "best-valid-recall@10.yaml").read_text() for f in folders}
    other = next(f for f in folders if f != folder)
    body = {f: text.split("\n", 2)[2] for f, text in configs.items()}  # past the two header lines
    assert body[other] == body[folder] and f"run {run_id} " in configs[other]
    assert f"split into, from {folder})" in configs[other] and "split into" not in configs[folder]
    assert all(text.splitlines()[1].startswith("# Budget: 4 runs over 2 folders,") for text in configs.values())
    assert "over 1 folders" not in sweep_report([other], METRIC, "markdown", None)
    assert f"run {run_id} " not in (Path(other) / "best-valid-recall@10.yaml").read_text()  # its own best alone
    state = json.loads((Path(folders[1]) / "sweep.json").read_text())  # b given one more trial, not begun
    (Path(folders[1]) / "sweep.json").write_text(json.dumps({**state, "trials": [2, 3, 5]}))
    last = sweep_report(folders, METRIC, "markdown", None).splitlines()[-1]
    assert last.endswith("(the same config is in each folder); provisional, b: 2 of 3 runs done, 1 not begun")
    header = (Path(folders[0]) / "best-valid-recall@10.yaml").read_text().splitlines()[1]
    assert header.startswith("# Budget: provisional, b: 2 of 3 runs done, 1 not begun,")


def test_dry_run_of_a_bayes_sweep_is_refused_in_one_line(tmp_path):
    sweep_file = write_sweep(tmp_path, {"train.lr": {"min": 1e-4, "max": 1e-1}}, "bayes")
    with pytest.raises(GraphrecError, match="bayes sweep's proposals depend on the results"):
        agent.plan_offline(sweep_file, 3)


def test_report_by_trial_sets_sweeps_side_by_side_on_their_shared_draws(tmp_path, fake_train, capsys):
    """Two sweeps sharing train.batch_size (trial i draws the same batch in both, except r002): each trial's value
    per sweep, r002 flagged as a different draw and left out of the count of trials the second sweep is ahead in."""
    from graphrec.cli import main
    folders = []
    for name, parameters in (("ref", {"train.batch_size": {"values": [32, 64, 128]}, "train.lr": {"values": [0.1]}}),
                             ("model", {"train.batch_size": {"values": [32, 64, 256]},
                                        "train.epochs": {"values": [2]}})):
        (tmp_path / name).mkdir()
        sweep_file = write_sweep(tmp_path / name, parameters).rename(tmp_path / name / f"{name}.yaml")
        folders.append(str(agent.run_offline(sweep_file, sweep_dir=tmp_path / f"{name}-sweep")))
    assert main(["report", *folders, "--by-trial", METRIC, "--format", "csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.strip().splitlines()]
    assert rows[0] == ["trial", "ref", "model", "same shared draw"]
    # fake_train's score: 1 / (1 + (log10(lr) + 2)^2): 0.5 at lr 0.1 (ref), 1.0 at the base's lr 0.01 (model)
    assert rows[1:4] == [["r000", "0.5000", "1.0000", "yes"], ["r001", "0.5000", "1.0000", "yes"],
                         ["r002", "0.5000", "1.0000", "no (train.batch_size)"]]
    assert rows[4] == ["ahead of ref", "-", "2 of 2", "trials finished on one shared draw"]


def test_report_trial_prints_one_draws_curve_in_each_sweep_with_its_peak(tmp_path, fake_train, capsys):
    """--trial r001: each sweep's valid metric per evaluated epoch of that trial, the peak (earliest on a tie), the
    last value's change from it and the draw check; a trial id no sweep has is refused naming those they have."""
    from graphrec.cli import main
    folders = []
    for name, epochs in (("ref", 2), ("model", 4)):
        (tmp_path / name).mkdir()
        sweep_file = write_sweep(tmp_path / name, {"train.batch_size": {"values": [32, 64]},
                                                   "train.epochs": {"values": [epochs]}})
        folders.append(str(agent.run_offline(sweep_file.rename(tmp_path / name / f"{name}.yaml"),
                                             sweep_dir=tmp_path / f"{name}-sweep")))
    run_dir = Path(folders[1]) / read_runs(Path(folders[1]) / "runs.jsonl")["r001"]["run_dir"]
    (run_dir / "log.jsonl").write_text("".join(json.dumps({"epoch": e, METRIC: v}) + "\n"
                                               for e, v in enumerate([0.3, 0.5, 0.5, 0.4])))
    assert main(["report", *folders, "--by-trial", METRIC, "--trial", "r001", "--format", "csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.strip().splitlines()]
    # ref: fake_train's (e + 1) / epochs at the base's lr 0.01 (score 1)
    assert rows == [["epoch", "ref", "model"], ["0", "0.5000", "0.3000"], ["1", "1.0000", "0.5000"],
                    ["2", "-", "0.5000"], ["3", "-", "0.4000"], ["peak (epoch)", "1.0000 (1)", "0.5000 (1)"],
                    ["last against peak", "+0.0% (epoch 1)", "-20.0% (epoch 3)"],
                    ["same shared draw", "no (train.epochs)", "-"]]  # the epochs, swept in both, differ
    assert main(["report", *folders, "--by-trial", METRIC, "--trial", "r9"]) == 2
    assert "no sweep given has trial 'r9' (they have r000, r001)" in capsys.readouterr().err
