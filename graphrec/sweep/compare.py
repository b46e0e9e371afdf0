"""Sweeps side by side, trial by trial: for sweeps whose shared dimensions draw the same settings at the same trial
index (a model's sweep built on LightGCN's), each trial's value in each sweep and who is ahead on the same draw."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from ..errors import GraphrecError
from .runlog import metric_curve
from .summary import SELECTABLE, sweep_goal, sweep_rows, sweeps_by_file


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, (int, float)):
        return math.isclose(left, right, rel_tol=1e-9)
    return left == right


def _differing(trials: list[Optional[dict]], shared: list[str]) -> list[str]:
    """The shared keys on which the sweeps that ran this trial drew different values."""
    present = [t for t in trials if t is not None]
    return [key for key in shared if any(not _same(t["params"].get(key), present[0]["params"].get(key))
                                         for t in present[1:])]


def _draw_check(trials: list[Optional[dict]], shared: list[str]) -> str:
    """'yes' where the sweeps that ran this trial drew the same shared settings, else 'no (keys that differ)'."""
    differing = _differing(trials, shared)
    return "yes" if not differing else f"no ({', '.join(differing)})"


def _cell(trial: Optional[dict]) -> str:
    if trial is None:
        return "-"
    value = "-" if trial["value"] is None else f"{trial['value']:.4f}"
    return value if trial["status"] in SELECTABLE else f"{value} ({trial['status']})"


def _trials_by_sweep(folders: list[str], metric: str) -> tuple[list[str], dict[str, dict[str, dict]], list[str],
                                                                  float]:
    """Sweep names (one per sweep file, the first is the reference), name -> trial id -> its sweep row, the keys
    every sweep draws (the shared dimensions), and +1 where the reference maximizes `metric`, -1 where it minimizes."""
    groups = list(sweeps_by_file(folders, "--by-trial").items())
    names = [Path(sweep_file).stem for sweep_file, _ in groups]
    if len(groups) < 2:
        raise GraphrecError(f"report --by-trial compares sweeps trial by trial; the folders given are all of sweep "
                            f"'{names[0]}': add a folder of another sweep (e.g. its baseline's)")
    trials = {name: {row["id"]: row for folder in group for row in sweep_rows(folder, metric)}
              for name, (_, group) in zip(names, groups)}
    keys = [set(row["params"]) for name in names for row in trials[name].values()]
    sign = -1.0 if sweep_goal(groups[0][1][0], metric) == "minimize" else 1.0
    return names, trials, sorted(set.intersection(*keys)) if keys else [], sign


def compare_by_trial(folders: list[str], metric: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per trial id with `metric` in each sweep (a column per sweep file; the first is the
    reference) and whether the shared draw agrees; a last row counts, per other sweep, the trials it is ahead of
    the first in, among those every sweep finished on the same shared draw."""
    names, trials, shared, sign = _trials_by_sweep(folders, metric)
    rows, comparable = [], []
    for run_id in sorted({run_id for name in names for run_id in trials[name]}):
        cells = [trials[name].get(run_id) for name in names]
        check = _draw_check(cells, shared)
        rows.append([run_id, *map(_cell, cells), check])
        if check == "yes" and all(c is not None and c["status"] in SELECTABLE and c["value"] is not None
                                 for c in cells):
            comparable.append([c["value"] for c in cells])
    ahead = [f"{sum(sign * values[column] > sign * values[0] for values in comparable)} of {len(comparable)}"
             for column in range(1, len(names))]
    rows.append([f"ahead of {names[0]}", "-", *ahead, "trials finished on one shared draw"])
    return ["trial", *names, "same shared draw"], rows


def curves_of_trial(folders: list[str], metric: str, trial: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): `metric` at each evaluated epoch of trial `trial` in each sweep (a column per sweep file),
    then each sweep's peak with its epoch, the last value's change from the peak, and whether the shared draw
    agrees: how one shared draw trains under each model."""
    names, trials, shared, sign = _trials_by_sweep(folders, metric)
    cells = [trials[name].get(trial) for name in names]
    if all(cell is None for cell in cells):
        known = sorted({run_id for name in names for run_id in trials[name]})
        raise GraphrecError(f"report --trial: no sweep given has trial '{trial}' (they have "
                            f"{', '.join(known) or 'none'}); pass one of those ids")
    curves = [{epoch: value for epoch, value in metric_curve(Path(cell["run_dir"]), metric) if epoch is not None}
              if cell and cell["run_dir"] else {} for cell in cells]
    epochs = sorted({epoch for curve in curves for epoch in curve})
    rows = [[str(epoch), *(f"{curve[epoch]:.4f}" if epoch in curve else "-" for curve in curves)]
            for epoch in epochs]
    peaks = [min(curve, key=lambda e: (-sign * curve[e], e)) if curve else None for curve in curves]
    rows.append(["peak (epoch)", *("-" if peak is None else f"{curve[peak]:.4f} ({peak})"
                                   for peak, curve in zip(peaks, curves))])
    rows.append(["last against peak", *("-" if peak is None or curve[peak] == 0 else
                                        f"{curve[max(curve)] / curve[peak] - 1:+.1%} (epoch {max(curve)})"
                                        for peak, curve in zip(peaks, curves))])
    rows.append(["same shared draw", _draw_check(cells, shared), *["-"] * (len(names) - 1)])
    return ["epoch", *names], rows
