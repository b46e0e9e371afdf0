"""Metric logging: always a plain log.jsonl in the run folder, plus W&B (online, offline) when asked."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from .schema import TrackingConfig
from .errors import GraphrecError


class Tracker:
    """One interface over log.jsonl and an optional W&B run; W&B is imported only when enabled."""

    def __init__(self, cfg: TrackingConfig, run_dir: Optional[Path], run_name: str, config: dict,
                 enabled: bool = True, metadata: Optional[dict] = None):
        """`metadata`: the run's run.json; its tracking_id is the W&B run id, so a resumed run continues the same W&B
        run (a run folder from before tracking ids starts a new one), and all of it (commit, versions, seed,
        command) goes into the W&B config under `run`."""
        self.log_path = run_dir / "log.jsonl" if (run_dir is not None and enabled) else None
        self.wandb_run = None
        if enabled and cfg.mode != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
            try:
                import wandb
            except ImportError:
                raise GraphrecError("tracking.mode is set but wandb is not installed; pip install wandb "
                                    "or set tracking.mode: disabled") from None
            metadata = metadata or {}
            self.wandb_run = wandb.init(project=cfg.project, entity=cfg.entity, name=run_name,
                                        config={**config, "run": metadata}, id=metadata.get("tracking_id"),
                                        resume="allow", mode=os.environ.get("WANDB_MODE", cfg.mode),
                                        dir=str(run_dir) if run_dir else None, reinit=True)

    def moved(self, run_dir: Path) -> None:
        """The run folder was renamed (published at its first checkpoint): log.jsonl is written there from now on."""
        if self.log_path is not None:
            self.log_path = Path(run_dir) / self.log_path.name

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (an epoch's losses or an evaluation's metrics)."""
        if self.log_path is not None:
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.wandb_run is not None:
            step = record.get("epoch")
            self.wandb_run.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        """Final metrics into the W&B run summary."""
        if self.wandb_run is not None:
            self.wandb_run.summary.update(metrics)

    def close(self) -> None:
        """Finish the W&B run, if any."""
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None
