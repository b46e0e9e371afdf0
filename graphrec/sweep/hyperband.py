"""Hyperband early termination on logged validation curves, with W&B's rule (sweeps' hyperband_stopping)."""
from __future__ import annotations

from .spec import Hyperband


def runs_to_stop(hyperband: Hyperband, curves: dict[str, list[float]], running: set[str],
                 maximize: bool) -> list[str]:
    """Ids of running runs to stop.

    `curves` holds every run's metric history (one value per validation evaluation). Bracket b (1-based count of
    evaluations) gets a threshold: of the values at evaluation b of every run that reached it, sorted best
    first, the one at position floor(n / eta), i.e. the edge of the best 1/eta. A running run that has reached a
    bracket is stopped when its value at its latest bracket (strict, W&B's default) or its best value so far
    (strict: false) is worse than that bracket's threshold.
    """
    sign = 1.0 if maximize else -1.0
    oriented = {run: [sign * v for v in curve] for run, curve in curves.items() if curve}
    if not oriented:
        return []
    brackets = hyperband.brackets(max(len(c) for c in oriented.values()))
    thresholds = {}
    for bracket in brackets:
        reached = sorted((c[bracket - 1] for c in oriented.values() if len(c) >= bracket), reverse=True)
        thresholds[bracket] = reached[int(len(reached) / hyperband.eta)]
    stop = []
    for run in sorted(running & set(oriented)):
        curve = oriented[run]
        passed = [b for b in brackets if b <= len(curve)]
        if not passed:
            continue
        latest = passed[-1]
        value = curve[latest - 1] if hyperband.strict else max(curve)
        if value < thresholds[latest]:
            stop.append(run)
    return stop
