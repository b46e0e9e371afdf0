"""Shared pieces of the training-loop tests: small synthetic configs, subprocess runs, metric comparison."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from graphrec.trainer import StopRequest, Trainer, TrainingStopped

# ~6,700 training events, 27 batches of 256 per epoch; early stopping ends it after 15 epochs (~1 s on one core).
# Long enough to be killed mid-run from a test, short enough to run several times.
RESUME_CONFIG = {
    "name": "resume",
    "seed": 5,
    "device": "cpu",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 800, "num_items": 500, "num_communities": 6, "mean_degree": 15, "seed": 3}},
    "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.2},
    "model": {"name": "lightgcn", "embedding_dim": 32, "num_layers": 2},
    "train": {"epochs": 30, "batch_size": 256, "lr": 0.004, "eval_every": 1, "patience": 3, "threads": 1,
              "progress": False},
    "eval": {"topk": [10, 20], "metrics": ["recall", "ndcg"]},
    "tracking": {"mode": "disabled"},
}

# Run-dependent entries of metrics.json / log.jsonl records that are not results.
VOLATILE = {"train_seconds", "eval_seconds"}


def merged(base: dict, overrides: Optional[dict] = None) -> dict:
    """A deep copy of `base` with the nested `overrides` applied."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_config(folder: Path, output_dir: Path, overrides: Optional[dict] = None,
                 base: dict = RESUME_CONFIG) -> Path:
    """Write cfg.yaml into `folder` with output_dir set; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(merged(base, {"output_dir": str(output_dir), **(overrides or {})})))
    return path


def results(metrics: dict) -> dict:
    """The metric values of a metrics dict, without timings."""
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def history(run_dir: Path) -> list[dict]:
    """The epoch records of log.jsonl, without timings."""
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    return [results(r) for r in map(json.loads, lines) if "final" not in r]


def child_env() -> dict:
    """Environment for a graphrec subprocess: unbuffered, the repository importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    return env


def start_train(args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m graphrec train ARGS` in the background, stdout/stderr captured."""
    return subprocess.Popen([sys.executable, "-m", "graphrec", "train", *args], cwd=cwd, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(output_dir: Path, epochs: int, proc: subprocess.Popen, timeout: float = 300.0) -> Path:
    """Poll output_dir/<run>/log.jsonl until it holds `epochs` records; returns the run folder (the timeout is
    generous for a loaded machine: the poll returns as soon as the epochs are there).

    The trainer writes last.pt before it logs an epoch, so by then last.pt holds at least that many epochs.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in Path(output_dir).glob("*/log.jsonl"):
            if len(log.read_text().splitlines()) >= epochs:
                return log.parent
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended (rc {proc.returncode}) before {epochs} epochs were logged:\n{err}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no {epochs} epochs logged within {timeout} s")


def stop_at_step(trainer: Trainer, step: int) -> StopRequest:
    """A StopRequest that fires inside training step number `step` (1-based, counted over all stages) of `trainer`."""
    stop, real_step, steps = StopRequest(announce=False), trainer.step, []

    def counting_step(*args, **kwargs):
        steps.append(1)
        if len(steps) == step:
            stop.request(signal.SIGINT)
        return real_step(*args, **kwargs)

    trainer.step = counting_step
    return stop


def stop_and_resume(cfg, step, dataset=None) -> tuple[dict, Path, tuple[int, int], int]:
    """Train `cfg` in-process, stop inside training step `step` (an int, or a function of the Trainer giving it),
    resume from last.pt in a new Trainer to the end; returns (the resumed run's results, the run folder,
    (epoch, batch_in_epoch) of the mid-epoch last.pt, the stop's exit code)."""
    from graphrec.checkpoint import load_checkpoint
    trainer = Trainer(cfg, dataset=dataset)
    stop = stop_at_step(trainer, step(trainer) if callable(step) else step)
    try:
        trainer.fit(stop)
    except TrainingStopped as stopped:
        code = stopped.code
    else:
        raise AssertionError(f"the run ended before training step {step}; choose an earlier stop")
    state = load_checkpoint(trainer.run_dir / "last.pt")["state"]
    resumed = Trainer(cfg, run_dir=trainer.run_dir, resume=True, dataset=dataset)
    return results(resumed.fit()), trainer.run_dir, (state["epoch"], state["batch_in_epoch"]), code


def stopped_and_resumed(cfg, step: int, dataset=None) -> tuple[dict, list[dict]]:
    """stop_and_resume's final metrics and epoch records (without timings)."""
    metrics, run_dir, _, _ = stop_and_resume(cfg, step, dataset)
    return metrics, history(run_dir)


def stop_mid_epoch_and_resume(cfg, epoch: int, batch: int) -> tuple[dict, Path, tuple[int, int], int]:
    """stop_and_resume with the stop in batch `batch` (from 1) of epoch `epoch` (from 0) of a one-stage model."""
    return stop_and_resume(cfg, lambda trainer: epoch * trainer._epoch_batches() + batch)
