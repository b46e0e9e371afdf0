"""Every YAML under experiments/ loads and validates (experiments through the config, sweeps through the sweep
spec and, for each parameter, the config of their base) without training, so none rots."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graphrec.config import config_from_file
from graphrec.sweep.engine import Engine
from graphrec.sweep.spec import load_sweep, set_args

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
FILES = sorted(EXPERIMENTS.rglob("*.yaml"))


def is_sweep(path: Path) -> bool:
    """A sweep file: W&B's method/parameters keys (experiments never have them)."""
    raw = yaml.safe_load(path.read_text())
    return isinstance(raw, dict) and "method" in raw and "parameters" in raw


def test_there_are_experiments_and_sweeps():
    assert (EXPERIMENTS / "quickstart.yaml") in FILES
    assert sum(is_sweep(p) for p in FILES) >= 2
    assert all(is_sweep(p) for p in FILES if p.parent.name == "sweeps")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXPERIMENTS)) for p in FILES])
def test_yaml_validates(path):
    if is_sweep(path):
        spec = load_sweep(path)
        assert spec.base.is_relative_to(EXPERIMENTS) and not is_sweep(spec.base)
        proposal = Engine(spec).propose(0, [])  # the first proposal is a valid config too
        config_from_file(spec.base, set_args(proposal.params))
    else:
        config_from_file(path)
