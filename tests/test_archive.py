"""`graphrec archive`: run folders copied without checkpoints, reported alike, merged on a second archive, and
refused in one line before anything is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from graphrec.archive import archive
from graphrec.cli import main
from graphrec.errors import GraphrecError

CONFIG = {
    "name": "tiny", "seed": 1, "device": "cpu", "output_dir": "runs/a",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 40, "num_items": 30, "num_communities": 2, "mean_degree": 6, "seed": 2}},
    "split": {"method": "random", "valid_ratio": 0.2, "test_ratio": 0.2},
    "model": {"name": "mf", "embedding_dim": 8, "init_std": 0.1},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "progress": False},
    "eval": {"topk": [10]}, "tracking": {"mode": "disabled"},
}


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))


def train(seed: int) -> Path:
    """One tiny MF run into runs/a; its folder."""
    before = set(Path("runs/a").glob("*")) if Path("runs/a").exists() else set()
    assert main(["train", "tiny.yaml", "--set", f"seed={seed}", "--set", f"name=tiny-s{seed}"]) == 0
    (run,) = set(Path("runs/a").glob("*")) - before
    return run


def report(path: str, capsys) -> str:
    capsys.readouterr()
    assert main(["report", path, "--format", "csv"]) == 0
    return capsys.readouterr().out


def test_an_archive_leaves_out_checkpoints_and_reports_as_the_runs_do(capsys):
    runs = [train(1), train(2)]
    assert all((run / "best.pt").is_file() for run in runs)
    (runs[0] / ".metrics.json.x1y2.tmp").write_text("{")  # an atomic write in flight
    totals = archive(["runs/a"], "kept")
    assert totals.runs == 2 and totals.left_out_bytes > 0 and totals.kept_bytes > 0
    copied = sorted(Path("kept/a").iterdir())
    assert [c.name for c in copied] == sorted(r.name for r in runs)
    assert not list(Path("kept").rglob("*.pt"))
    for run, copy in zip(sorted(runs), copied):
        assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in run.iterdir()
                                                                 if p.suffix not in (".pt", ".tmp"))
        assert (copy / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    assert report("kept/a", capsys) == report("runs/a", capsys)
    assert ',"1,2",' in report("kept/a", capsys)  # both seeds in one row


def test_archiving_again_merges_keeps_earlier_runs_and_replaces_a_run_whole():
    first = train(1)
    archive(["runs/a"], "kept")
    (first / "best.pt").unlink()
    for path in first.iterdir():  # this machine loses the run folder (a new checkout) ...
        path.unlink()
    first.rmdir()
    second = train(2)  # ... and trains another seed
    (second / "warnings.json").unlink(missing_ok=True)
    archive(["runs/a"], "kept")
    assert sorted(p.name for p in Path("kept/a").iterdir()) == sorted([first.name, second.name])
    (second / "log.jsonl").unlink()  # a run folder is replaced whole: a file gone from it goes from the copy
    archive(["runs/a"], "kept")
    assert not (Path("kept/a") / second.name / "log.jsonl").exists()
    assert (Path("kept/a") / first.name / "metrics.json").is_file()
    assert not [p for p in Path("kept/a").iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_run_still_training_is_skipped_and_a_failed_run_is_kept():
    finished, unfinished, failed = train(1), train(2), train(3)
    (unfinished / "metrics.json").unlink()  # as a run in progress (or killed) looks
    (failed / "metrics.json").unlink()
    (failed / "FAILED.json").write_text(json.dumps({"reason": "loss is nan"}))
    totals = archive(["runs/a"], "kept")
    assert (totals.runs, totals.unfinished) == (2, 1)
    assert sorted(p.name for p in Path("kept/a").iterdir()) == sorted([finished.name, failed.name])


def test_a_sweep_trial_still_running_leaves_its_log_out():
    sweep = Path("sweeps/s")
    (sweep / "logs").mkdir(parents=True)
    records = [{"id": "r000", "status": "running", "log": "logs/r000.log"},
               {"id": "r001", "status": "running", "log": "logs/r001.log"},
               {"id": "r000", "status": "finished", "metric": 0.2}]
    (sweep / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for trial in ("r000", "r001"):
        (sweep / "logs" / f"{trial}.log").write_text(f"{trial} epoch 0\n")
    archive(["sweeps/s"], "kept")
    assert sorted(p.name for p in Path("kept/s/logs").iterdir()) == ["r000.log"]
    assert Path("kept/s/runs.jsonl").read_bytes() == (sweep / "runs.jsonl").read_bytes()


def test_a_copy_that_fails_midway_leaves_the_earlier_copy_whole(monkeypatch):
    run = train(1)
    archive(["runs/a"], "kept")
    before = {p.name: p.read_bytes() for p in (Path("kept/a") / run.name).iterdir()}
    (run / "metrics.json").write_text("{}")
    calls, real_copy = [], shutil.copy2

    def failing_copy(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst)

    monkeypatch.setattr("graphrec.archive.shutil.copy2", failing_copy)
    with pytest.raises(OSError):
        archive(["runs/a"], "kept")
    assert {p.name: p.read_bytes() for p in (Path("kept/a") / run.name).iterdir()} == before
    assert [p.name for p in Path("kept/a").iterdir()] == [run.name]  # no staging folder left


@pytest.mark.parametrize("sources, out, message", [
    (["missing"], "kept", "'missing' is not a folder"),
    (["empty"], "kept", "holds no run folder"),
    (["runs"], "runs/kept", "lies inside 'runs'"),
    (["runs/a", "other/a"], "kept", "would both become"),
])
def test_bad_archive_calls_are_one_line_and_write_nothing(sources, out, message):
    train(1)
    Path("empty").mkdir()
    Path("other/a").mkdir(parents=True)
    (Path("other/a") / "metrics.json").write_text(json.dumps({}))
    Path("other/a/r").mkdir()
    (Path("other/a/r") / "config.yaml").write_text("name: x\n")
    with pytest.raises(GraphrecError, match=message):
        archive(sources, out)
    assert not Path(out).exists()


def test_a_folder_already_in_the_archive_is_refused():
    train(1)
    archive(["runs/a"], "kept")
    with pytest.raises(GraphrecError, match="already inside the archive"):
        archive(["kept/a"], "kept")
