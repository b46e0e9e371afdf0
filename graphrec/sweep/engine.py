"""Offline proposals: grid (every combination in order), random (seeded per proposal), bayes (optuna's TPE).

A proposal is a pure function of (spec, its index, the runs so far), so a resumed sweep proposes exactly what the
uninterrupted one would have. Each proposal carries its `draw`: the engine's own coordinates (a grid index per key,
a quantile u in [0, 1] per continuous key, an index per categorical key), from which the values follow through
W&B's meaning of each distribution (Dimension.value_at).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import GraphrecError
from .spec import Dimension, SweepSpec


@dataclass(frozen=True)
class Observation:
    """A run so far, as the engine sees it: its draw, its metric (None until finished) and its status."""

    draw: dict[str, Any]
    value: Optional[float]
    status: str


@dataclass(frozen=True)
class Proposal:
    """The parameters of one run (config key -> value) and the engine coordinates they came from."""

    params: dict[str, Any]
    draw: dict[str, Any]


def _optuna():
    """optuna, imported on first use; a one-line error naming the extra when it is missing."""
    try:
        import optuna
    except ImportError:
        raise GraphrecError("method: bayes offline needs optuna; pip install 'graphrec[sweeps]' (grid and random "
                            "need nothing extra)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _proposal_seed(seed: int, index: int) -> int:
    """An independent 32-bit seed for proposal `index` of a sweep seeded with `seed`."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class Engine:
    """Proposes the parameters of run `index` of a sweep, given the runs so far."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.dims = spec.dimensions
        if spec.method == "bayes":
            _optuna()  # fail before the first run, not at the first proposal

    def size(self) -> Optional[int]:
        """How many distinct proposals there are (grid: the number of combinations; else None, unbounded)."""
        if self.spec.method != "grid":
            return None
        return int(np.prod([len(d.grid_values()) for d in self.dims]))

    def propose(self, index: int, history: list[Observation]) -> Optional[Proposal]:
        """Proposal number `index` (0-based); None when a grid has no combination left."""
        if self.spec.method == "grid":
            draw = self._grid_draw(index)
        elif self.spec.method == "random":
            rng = np.random.default_rng(_proposal_seed(self.spec.seed, index))
            draw = {d.key: self._random_coordinate(d, u) for d, u in zip(self.dims, rng.random(len(self.dims)))}
        else:
            draw = self._bayes_draw(index, history)
        if draw is None:
            return None
        return Proposal({**self.spec.constants, **self.values(draw)}, draw)

    def values(self, draw: dict[str, Any]) -> dict[str, Any]:
        """The config values of a draw."""
        out = {}
        for dim in self.dims:
            coordinate = draw[dim.key]
            if self.spec.method == "grid":
                out[dim.key] = dim.grid_values()[coordinate]
            elif dim.distribution == "categorical":
                out[dim.key] = dim.params["values"][coordinate]
            elif dim.distribution == "int_uniform":
                out[dim.key] = int(coordinate)
            else:
                out[dim.key] = dim.value_at(coordinate)
        return out

    @staticmethod
    def _random_coordinate(dim: Dimension, u: float) -> Any:
        """A uniform u in [0, 1) as the coordinate of `dim` (an index or an integer where it is discrete)."""
        if dim.distribution == "categorical":
            return min(int(u * len(dim.params["values"])), len(dim.params["values"]) - 1)
        if dim.distribution == "int_uniform":
            return dim.value_at(u)
        return float(u)

    def _grid_draw(self, index: int) -> Optional[dict[str, int]]:
        sizes = [len(d.grid_values()) for d in self.dims]
        if index >= int(np.prod(sizes)):
            return None
        return {d.key: int(i) for d, i in zip(self.dims, np.unravel_index(index, sizes))}

    def _distributions(self, optuna) -> dict[str, Any]:
        """optuna's search space: indices for categorical keys, integers for int_uniform, quantiles otherwise."""
        out = {}
        for dim in self.dims:
            if dim.distribution == "categorical":
                out[dim.key] = optuna.distributions.CategoricalDistribution(list(range(len(dim.params["values"]))))
            elif dim.distribution == "int_uniform":
                out[dim.key] = optuna.distributions.IntDistribution(dim.params["min"], dim.params["max"])
            else:
                out[dim.key] = optuna.distributions.FloatDistribution(0.0, 1.0)
        return out

    def _bayes_draw(self, index: int, history: list[Observation]) -> dict[str, Any]:
        """TPE, seeded per proposal, fitted on every run so far (running ones held out by the constant liar)."""
        optuna = _optuna()
        states = optuna.trial.TrialState
        space = self._distributions(optuna)
        sampler = optuna.samplers.TPESampler(seed=_proposal_seed(self.spec.seed, index), constant_liar=True)
        study = optuna.create_study(direction=self.spec.goal, sampler=sampler)
        for obs in history:
            if obs.value is not None:
                trial = optuna.trial.create_trial(params=obs.draw, distributions=space, value=obs.value)
            else:
                state = states.RUNNING if obs.status == "running" else states.FAIL
                trial = optuna.trial.create_trial(params=obs.draw, distributions=space, state=state)
            study.add_trial(trial)
        return dict(study.ask(space).params)
