"""`graphrec train CONFIG --seeds 1-5 [--workers N]`: one run of CONFIG per seed, as an offline grid sweep over `seed`
(parallel workers, a ledger, failed runs marked, `graphrec sweep --resume` after a kill)."""
from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Optional

import yaml

from ..config import config_from_file
from ..errors import GraphrecError
from ..tasks import lower_is_better
from .agent import claim_folder, create_sweep_folder, run_offline
from .numbers import parse_number_list
from .spec import SWEEP_OWNED_KEYS, load_sweep, override_key


def parse_seeds(text: str) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' and '1-3,7' as written; one-line error for anything else or a repeat."""
    return parse_number_list(text, "--seeds", "seed")


def run_seeds(config: str, seeds_text: str, workers: int = 1, threads: Optional[int] = None,
              overrides: Optional[list[str]] = None) -> Path:
    """Train `config` once per seed (--set applied to each) into <output_dir>/<name>-seeds-<time>/runs/; returns that
    sweep folder. `workers` runs at once with `threads` threads each (default: the cores split between them)."""
    seeds = parse_seeds(seeds_text)
    overrides = list(overrides or [])
    if any(override_key(text) == "seed" for text in overrides):
        raise GraphrecError("--seeds sets seed itself; drop --set seed=... (or train one seed without --seeds)")
    cfg = config_from_file(config, overrides)  # every key checked, one line each, before any folder is made
    # name and output_dir place the seeds folder; every other --set goes to each run
    shared = [text for text in overrides if override_key(text) not in SWEEP_OWNED_KEYS]
    metric = f"valid/{cfg.train.select_metric}"
    raw = {"name": f"{cfg.name}-seeds", "base": str(Path(config).resolve()), "method": "grid",
           "metric": {"name": metric, "goal": "minimize" if lower_is_better(metric) else "maximize"},
           "parameters": {"seed": {"values": seeds}}}
    with tempfile.TemporaryDirectory(prefix="graphrec-seeds-") as tmp:
        sweep_file = Path(tmp) / f"{raw['name']}.yaml"
        sweep_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        spec = replace(load_sweep(sweep_file, shared), path=Path(config).resolve())  # sweep.json names the config
        folder = create_sweep_folder(spec, None, shared, claim_folder(Path(cfg.output_dir), spec.name))
    print(f"seeds {', '.join(map(str, seeds))} of {config}: {folder} (after a kill: graphrec sweep --resume "
          f"{folder})", file=sys.stderr)
    return run_offline(None, None, workers, sweep_dir=folder, resume=True, threads=threads)
