"""Every YAML under experiments/ loads and validates (experiments through the config, sweeps through the sweep
spec and, for each parameter, the config of their base) without training, so none rots."""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def _sweep_setup(path: Path) -> tuple[dict, object]:
    """(raw parameters in file order, the base config with the sweep's fixed values applied)."""
    params = yaml.safe_load(path.read_text())["parameters"]
    fixed = {key: spec["value"] for key, spec in params.items() if "value" in spec}
    return params, config_from_file(load_sweep(path).base, set_args(fixed))


def _dataset(cfg) -> tuple:
    """The data a sweep reads: its data block (item features aside: a model's input, not the dataset) and split."""
    return cfg.data.model_dump(exclude={"item_features", "item_features_missing"}), cfg.split.model_dump()


def _budget(cfg) -> tuple:
    """What protocols.md's equal tuning budget holds fixed across the models of one dataset."""
    return cfg.train.epochs, cfg.train.eval_every, cfg.train.patience, cfg.train.select_metric, cfg.eval.topk


# LightGCN variants (lightgcn-dro-*, lightgcn-layers-*) are peers of their dataset's LightGCN sweep, not references.
REFERENCES = sorted(p for p in (EXPERIMENTS / "sweeps").glob("lightgcn-*.yaml")
                    if not p.name.startswith(("lightgcn-dro", "lightgcn-layers")))


@pytest.mark.parametrize("reference", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_sweeps_on_one_dataset_share_the_budget(reference):
    """Every sweep named <model>-<dataset> beside lightgcn-<dataset> reads the same data and split (item features
    aside) with the same epoch budget, early stopping and selection; one that searches all of LightGCN's dimensions
    lists them first with the same ranges, so trial i draws the same shared settings (protocols.md, equal budget)."""
    ref_params, ref_cfg = _sweep_setup(reference)
    ref_dims = list(ref_params.items())
    dataset = reference.stem.removeprefix("lightgcn").removesuffix("-dns")  # Gowalla's is lightgcn-gowalla-dns
    peers = [p for p in sorted((EXPERIMENTS / "sweeps").glob(f"*{dataset}.yaml")) if p != reference]
    for path in peers:
        params, cfg = _sweep_setup(path)
        assert _dataset(cfg) == _dataset(ref_cfg), f"{path.name} reads other data than {reference.name}"
        assert _budget(cfg) == _budget(ref_cfg), f"{path.name} differs from {reference.name} in its budget"
        searched = [(key, spec) for key, spec in params.items() if "value" not in spec]  # a fixed value searches nothing
        if ref_params.keys() <= dict(searched).keys():
            assert searched[:len(ref_dims)] == ref_dims, \
                f"{path.name}: list {reference.name}'s dimensions first, same ranges"
    assert peers or reference.stem in {"lightgcn-quickstart", "lightgcn-baby"}
