"""Sweeps side by side, trial by trial: for sweeps whose shared dimensions draw the same settings at the same trial
index (a model's sweep built on LightGCN's), each trial's value in each sweep and who is ahead on the same draw."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from ..errors import GraphrecError
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


def _cell(trial: Optional[dict]) -> str:
    if trial is None:
        return "-"
    value = "-" if trial["value"] is None else f"{trial['value']:.4f}"
    return value if trial["status"] in SELECTABLE else f"{value} ({trial['status']})"


def compare_by_trial(folders: list[str], metric: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per trial id with `metric` in each sweep (a column per sweep file; the first is the
    reference) and whether the shared draw agrees; a last row counts, per other sweep, the trials it is ahead of
    the first in, among those every sweep finished on the same shared draw."""
    groups = list(sweeps_by_file(folders, "--by-trial").items())
    names = [Path(sweep_file).stem for sweep_file, _ in groups]
    if len(groups) < 2:
        raise GraphrecError(f"report --by-trial compares sweeps trial by trial; the folders given are all of sweep "
                            f"'{names[0]}': add a folder of another sweep (e.g. its baseline's)")
    trials = {name: {row["id"]: row for folder in group for row in sweep_rows(folder, metric)}
              for name, (_, group) in zip(names, groups)}
    keys = [set(row["params"]) for name in names for row in trials[name].values()]
    shared = sorted(set.intersection(*keys)) if keys else []
    rows, comparable = [], []
    for run_id in sorted({run_id for name in names for run_id in trials[name]}):
        cells = [trials[name].get(run_id) for name in names]
        differing = _differing(cells, shared)
        rows.append([run_id, *map(_cell, cells), "yes" if not differing else f"no ({', '.join(differing)})"])
        if not differing and all(c is not None and c["status"] in SELECTABLE and c["value"] is not None
                                 for c in cells):
            comparable.append([c["value"] for c in cells])
    better = (lambda a, b: a < b) if sweep_goal(groups[0][1][0], metric) == "minimize" else (lambda a, b: a > b)
    ahead = [f"{sum(better(values[column], values[0]) for values in comparable)} of {len(comparable)}"
             for column in range(1, len(names))]
    rows.append([f"ahead of {names[0]}", "-", *ahead, "trials finished on one shared draw"])
    return ["trial", *names, "same shared draw"], rows
