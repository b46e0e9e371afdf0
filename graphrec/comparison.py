"""A report row against the baseline model's row of the same dataset, protocol and split (`graphrec report
--baseline`): the relative change of the mean, beyond one sd or by a paired t-test over shared seeds."""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import yaml

from .errors import GraphrecError

ABSENT = object()  # the schema has no such key for a run's model
PAIRED_ALPHA = 0.05  # two-sided level of the paired t-test behind --paired's ▲ / ▼


def setting_text(value, fmt: str) -> str:
    """A setting's value for a table cell: floats to 4 significant digits, except in csv (exact)."""
    return f"{value:.4g}" if isinstance(value, float) and fmt != "csv" else str(value)


def compare_to_baseline(rows: list[dict], baseline: str, paired: bool = False) -> None:
    """Give every row of another model `vs_baseline`: per metric, (relative change of the mean from the baseline's
    row of the same dataset, protocol and split, and +1 / -1 when the means differ by more than the larger of the
    two sds, else 0). `paired`: over the seeds both rows have, the mean per-seed difference relative to the
    baseline's mean on those seeds, +1 / -1 when a paired t-test finds it at p < 0.05, and `paired_test` per metric
    (seeds, wins, mean difference, t, p). Refuses a baseline that is absent or has several setting groups."""
    model, _, selector = baseline.partition(":")
    wanted = _baseline_settings(baseline, selector)
    models = list(dict.fromkeys(row["model"] for row in rows))
    if model not in models:
        raise GraphrecError(f"--baseline {baseline}: no run of that model among the runs (models: "
                            f"{', '.join(models)}); name one of them")
    bases: dict[tuple, dict] = {}
    for row in rows:
        if row["model"] == model and all(_matches(row["all_settings"].get(k, ABSENT), v) for k, v in wanted.items()):
            key = (row["dataset"], row["protocol"], row["split"])
            if key in bases:
                raise GraphrecError(f"--baseline {baseline}: its runs form several setting groups on {key[0]} "
                                    f"({key[1]}, {key[2]}); pass the runs of one setting of it, or name one "
                                    f"as {model}:KEY=VALUE (a key of the settings column)")
            bases[key] = row
    if not bases:
        raise GraphrecError(f"--baseline {baseline}: no {model} run has {selector}; name a value of the settings "
                            "column")
    for row in rows:
        base = bases.get((row["dataset"], row["protocol"], row["split"]))
        if base is None or row is base:
            continue
        row["vs_baseline"] = {}
        for column, (mean, sd, _) in row["values"].items():
            if column not in base["values"] or not base["values"][column][0]:
                continue
            if paired:
                test = paired_test(row, base, column)
                beyond = 0 if test["p"] >= PAIRED_ALPHA else (1 if test["mean_diff"] > 0 else -1)
                row.setdefault("paired_test", {})[column] = test
                row["vs_baseline"][column] = (test["relative"], beyond)
                continue
            base_mean, base_sd = base["values"][column][:2]
            spread = max(sd or 0.0, base_sd or 0.0)
            beyond = 0 if abs(mean - base_mean) <= spread else (1 if mean > base_mean else -1)
            row["vs_baseline"][column] = ((mean - base_mean) / base_mean, beyond)


def _baseline_settings(baseline: str, selector: str) -> dict[str, str]:
    """'lightgcn:train.batch_size=2048,train.lr=0.001' -> {'train.batch_size': '2048', ...}: the settings that pick
    one setting group of the baseline model; a comma inside [...] or {...} belongs to its value
    ('lightgcn:model.layer_weights=[0, 0.5, 0.5]')."""
    wanted = {}
    for part in filter(None, (p.strip() for p in re.split(r",(?![^\[{]*[\]}])", selector))):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise GraphrecError(f"--baseline {baseline}: '{part}' is not KEY=VALUE; write MODEL or "
                                "MODEL:KEY=VALUE[,KEY=VALUE]")
        wanted[key.strip()] = value.strip()
    return wanted


def _matches(actual: Any, text: str) -> bool:
    """Whether a setting's value is the one a --baseline selector names: as the settings column prints it (floats to
    4 significant digits), exactly, as a number (1e-4) or as YAML reads the text (true; [0, 0.5, 0.5] for a list
    [0.0, 0.5, 0.5])."""
    if actual is ABSENT:
        return False
    if text in (str(actual), setting_text(actual, "markdown")):
        return True
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            return float(text) == actual  # 1e-2 (which YAML 1.1 reads as a string)
        except ValueError:
            return False
    try:
        wanted = yaml.safe_load(text)  # true, null, [0, 0.5, 0.5]
    except yaml.YAMLError:
        return False
    if isinstance(wanted, list) and isinstance(actual, str):  # report keeps a list as its JSON text
        try:
            return wanted == json.loads(actual)
        except ValueError:  # a string setting, not a list
            return False
    return wanted == actual


def _per_seed(row: dict, column: str) -> dict:
    """{seed: value} of a report row's metric, refusing a seed run twice with the same settings (ambiguous pairs)."""
    values: dict = {}
    for seed, value in row["by_seed"][column]:
        if seed in values:
            raise GraphrecError(f"--paired: {row['model']} on {row['dataset']} ({row['split']}) has two runs of seed "
                                f"{seed} with the same settings; pass one run per seed")
        values[seed] = value
    return values


def paired_test(row: dict, base: dict, column: str) -> dict:
    """A row's metric against the baseline row's, paired by seed: {seeds, wins (row ahead), mean_diff, relative
    (mean_diff over the baseline's mean on the shared seeds), t, p (two-sided paired t-test)}; refuses fewer than
    two shared seeds."""
    from scipy import stats  # ~1 s to import: only for --paired
    mine, theirs = _per_seed(row, column), _per_seed(base, column)
    shared = [seed for seed in theirs if seed in mine]
    if len(shared) < 2:
        raise GraphrecError(f"--paired: {row['model']} shares {len(shared)} seed(s) with {base['model']} on "
                            f"{row['split']} {column} ({row['model']}: {sorted(mine)}; {base['model']}: "
                            f"{sorted(theirs)}); run both with the same seeds (at least 2) or leave out --paired")
    ours = np.array([mine[s] for s in shared], dtype=np.float64)
    reference = np.array([theirs[s] for s in shared], dtype=np.float64)
    diff = ours - reference
    if np.allclose(diff, diff[0], rtol=1e-9, atol=1e-12):  # the same difference in every seed (up to float
        # rounding; MostPop against a fixed split): no spread for a t-test, the sign is certain
        t, p = (0.0, 1.0) if diff[0] == 0 else (float(np.sign(diff[0]) * np.inf), 0.0)
    else:
        result = stats.ttest_rel(ours, reference)
        t, p = float(result.statistic), float(result.pvalue)
    base_mean = float(reference.mean())
    return {"seeds": len(shared), "wins": int((diff > 0).sum()), "mean_diff": float(diff.mean()),
            "relative": float(diff.mean()) / base_mean if base_mean else float("nan"), "t": t, "p": p}
