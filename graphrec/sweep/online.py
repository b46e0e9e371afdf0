"""The online sweep: W&B's server proposes (wandb.sweep), wandb.agent runs each proposal as a graphrec run."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

import yaml

from ..config import config_from_file
from ..errors import GraphrecError
from .agent import child_env, create_sweep_folder, run_command, run_name_prefix, usable_cores
from .spec import SweepSpec, load_sweep


def _wandb():
    """wandb, imported on first use."""
    try:
        import wandb
    except ImportError:
        raise GraphrecError("graphrec sweep without --offline needs wandb; pip install wandb, or add --offline") \
            from None
    return wandb


def sweep_params(param_file: str | Path) -> dict:
    """The proposal W&B's agent wrote for this run ({key: {value: v}}) as {key: v}."""
    raw = yaml.safe_load(Path(param_file).read_text()) or {}
    return {key: spec["value"] if isinstance(spec, dict) and "value" in spec else spec for key, spec in raw.items()
            if key != "wandb_version"}


def run_online(sweep_file: str | Path, count: Optional[int], overrides: Optional[list[str]] = None) -> str:
    """Register the sweep with W&B and run `count` of its proposals here, each a graphrec run folder under a sweep
    folder that also logs to the W&B run the agent opened (it reads WANDB_RUN_ID / WANDB_SWEEP_ID from the
    environment). Returns the W&B sweep id."""
    overrides = list(overrides or [])
    spec: SweepSpec = load_sweep(sweep_file, overrides)
    wandb = _wandb()
    tracking = config_from_file(spec.base, overrides + [f"train.select_metric={spec.select_metric()}"]).tracking
    folder = create_sweep_folder(spec, count, overrides)
    sweep_id = wandb.sweep(spec.wandb_config(), project=tracking.project, entity=tracking.entity)
    extra = [f"output_dir={folder / 'runs'}", f"train.threads={usable_cores()}", "train.progress=false",
             f"train.select_metric={spec.select_metric()}", "tracking.mode=online", *overrides]

    base_name = run_name_prefix(folder)

    def one_run() -> None:
        params = sweep_params(os.environ["WANDB_SWEEP_PARAM_PATH"])
        name = f"name={base_name}-{os.environ.get('WANDB_RUN_ID', 'run')}"
        command = run_command(folder / "base.yaml", params, extra + [name])
        result = subprocess.run(command, env=child_env(usable_cores()))
        if result.returncode != 0:
            raise GraphrecError(f"run {os.environ.get('WANDB_RUN_ID')} exited with {result.returncode}")

    wandb.agent(sweep_id, function=one_run, project=tracking.project, entity=tracking.entity, count=count)
    return sweep_id
