"""A sweep folder's runs ranked by a metric, the best run's config as a ready YAML, and metric-vs-parameter plots."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Optional

import yaml

from ..atomic import atomic_write_text
from ..config import apply_overrides, build_config, read_yaml
from ..errors import GraphrecError
from ..runs import lock_held
from .agent import open_sweep_folder, run_name_prefix
from .runlog import log_records, metric_history, newest_run_folder, read_runs
from .spec import Dimension, parse_dimensions, set_args

SELECTABLE = ("finished", "stopped")  # a failed or unfinished run's last value is never the sweep's best


def _sweep_file(sweep_dir: Path) -> dict:
    """The sweep folder's sweep.yaml (a one-line error when the folder is not a sweep)."""
    open_sweep_folder(sweep_dir, option="report")
    return read_yaml(Path(sweep_dir) / "sweep.yaml")


def _goal(raw: dict, metric: str) -> str:
    """The sweep's goal for its own metric; other graphrec metrics (recall, ndcg, ...) are maximized."""
    own = raw.get("metric") or {}
    return own.get("goal", "maximize") if own.get("name") == metric else "maximize"


def _run_value(run_dir: Optional[Path], metric: str, goal: str) -> tuple[Optional[float], dict]:
    """A run's value of `metric` (metrics.json; for a run stopped early or still training, its best logged value)
    and its metrics."""
    if run_dir is None:
        return None, {}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        return metrics.get(metric), metrics
    curve = metric_history(run_dir, metric)
    return ((max if goal == "maximize" else min)(curve) if curve else None), {}


def _last_epoch(run_dir: Optional[Path]) -> Optional[int]:
    """The last epoch a run folder's log.jsonl records (None before the first)."""
    epochs = [r.get("epoch") for r in log_records(run_dir)] if run_dir is not None else []
    return max((e for e in epochs if isinstance(e, int)), default=None)


def run_states(sweep_dir: str | Path) -> dict[str, tuple[str, Optional[Path]]]:
    """Run id -> (status, run folder). A run runs.jsonl leaves `running` is `interrupted` when neither its sweep's
    agent nor a training process holds a lock any more (the agent was killed: --resume continues it); where the
    locks cannot be read it stays `running`."""
    sweep_dir = Path(sweep_dir)
    name = run_name_prefix(sweep_dir)
    agent_live = lock_held(sweep_dir)
    states = {}
    for run_id, record in read_runs(sweep_dir / "runs.jsonl").items():
        status = record.get("status")
        if record.get("run_dir"):
            folder: Optional[Path] = sweep_dir / record["run_dir"]
        else:
            folder = newest_run_folder(sweep_dir, name, run_id) if status == "running" else None
        if status == "running":
            held = [agent_live] + ([lock_held(folder)] if folder is not None else [])
            status = "interrupted" if False in held and True not in held else status
        states[run_id] = (status, folder)
    return states


def sweep_rows(sweep_dir: str | Path, metric: str) -> list[dict[str, Any]]:
    """The sweep's runs ranked by `metric`, best first: finished and early-stopped runs, then running, interrupted
    and failed ones (by their best logged value so far), then runs without a value, in run order.

    Each row: rank, id, status, value (of `metric`), params (config key -> value), run_dir (absolute or None),
    metrics (the run's metrics.json, empty for a run without one), epoch (the last logged, for a run training now).
    """
    sweep_dir = Path(sweep_dir)
    raw = _sweep_file(sweep_dir)
    goal = _goal(raw, metric)
    records = read_runs(sweep_dir / "runs.jsonl")
    rows = []
    for run_id, (status, folder) in run_states(sweep_dir).items():
        value, metrics = _run_value(folder, metric, goal)
        rows.append({"id": run_id, "status": status, "value": value, "params": records[run_id].get("params", {}),
                     "run_dir": str(folder) if folder is not None and not folder.name.startswith(".") else None,
                     "metrics": metrics, "epoch": _last_epoch(folder) if status == "running" else None})
    sign = -1.0 if goal == "maximize" else 1.0
    rows.sort(key=lambda r: (r["value"] is None, r["status"] not in SELECTABLE,
                             sign * r["value"] if r["value"] is not None else 0.0))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def sweep_goal(sweep_dir: str | Path, metric: str) -> str:
    """'maximize' or 'minimize': the sweep's goal when `metric` is its own, else graphrec's (maximized) metrics."""
    return _goal(_sweep_file(Path(sweep_dir)), metric)


def sweeps_by_file(folders: list[str], option: str) -> dict[str, list[str]]:
    """Sweep file (as sweep.json records it) -> its folders, in the order given: the folders of one sweep split with
    --trials are one sweep. `option` names the report option in the one-line error for a folder that is no sweep."""
    groups: dict[str, list[str]] = {}
    for folder in folders:
        state = open_sweep_folder(Path(folder), option=f"report {option}:")
        groups.setdefault(str(state.get("sweep_file")), []).append(folder)
    return groups


def best_across(best_rows: dict[str, dict[str, Any]], metric: str) -> str:
    """The folder whose best run (`best_rows`: folder -> its sweep_rows' first row) is best, over folders that split
    one sweep (`--trials`) and so share its goal for `metric`."""
    goal = sweep_goal(next(iter(best_rows)), metric)
    return (max if goal == "maximize" else min)(best_rows, key=lambda folder: best_rows[folder]["value"])


def sweep_progress(sweep_dir: str | Path) -> tuple[int, int, Optional[int]]:
    """(runs finished or stopped, runs begun, runs planned: --count or --trials, else a grid's combinations; None if
    unknown)."""
    sweep_dir = Path(sweep_dir)
    runs = read_runs(sweep_dir / "runs.jsonl")
    state = json.loads((sweep_dir / "sweep.json").read_text())
    planned = len(state["trials"]) if state.get("trials") is not None else state.get("count")
    raw = read_yaml(sweep_dir / "sweep.yaml")
    if planned is None and raw.get("method") == "grid":  # every combination, as Engine.size counts them
        planned = math.prod(len(d.grid_values()) for d in parse_dimensions(sweep_dir / "sweep.yaml", raw["parameters"]))
    return sum(r.get("status") in SELECTABLE for r in runs.values()), len(runs), planned


def progress_note(sweep_dir: str | Path) -> Optional[str]:
    """'7 of 12 runs done, 2 running, 1 failed, 2 not begun' when the sweep is not complete, else None."""
    done, begun, planned = sweep_progress(sweep_dir)
    if done == begun and (planned is None or begun >= planned):
        return None
    states = [status for status, _ in run_states(sweep_dir).values()]
    parts = [f"{states.count(s)} {s}" for s in ("running", "interrupted", "failed") if s in states]
    if planned is not None and planned > begun:
        parts.append(f"{planned - begun} not begun")
    return ", ".join([f"{done} of {planned if planned is not None else begun} runs done", *parts])


def time_left_note(sweep_dir: str | Path) -> Optional[str]:
    """'about 2.7 h left: 9 runs at the finished runs' median of 18 min, 1 at a time' while runs train and some
    have finished; None otherwise (nothing to time by, or nothing running)."""
    done, _, planned = sweep_progress(sweep_dir)
    states = [s for s, _ in run_states(sweep_dir).values()]
    running = states.count("running")
    seconds = [r["seconds"] for r in read_runs(Path(sweep_dir) / "runs.jsonl").values()
               if r.get("status") in SELECTABLE and r.get("seconds")]
    if not running or not seconds or planned is None:
        return None
    median, left = statistics.median(seconds), planned - done - states.count("failed")  # failed: not retried
    return (f"about {_duration(left * median / running)} left: {left} run{'s' * (left != 1)} at the finished runs' "
            f"median of {_duration(median)}, {running} at a time")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def selectable_best(rows: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The first of sweep_rows' ranked rows if it is a finished (or stopped) run with a value, else None."""
    if rows and rows[0]["value"] is not None and rows[0]["status"] in SELECTABLE:
        return rows[0]
    return None


def _best(sweep_dir: Path, metric: str) -> dict[str, Any]:
    best = selectable_best(sweep_rows(sweep_dir, metric))
    if best is None:
        raise GraphrecError(f"sweep '{sweep_dir}' has no finished run with a value of '{metric}' yet; finish some "
                            f"runs (graphrec sweep --resume {sweep_dir}) or choose a metric its runs log")
    return best


def best_config_name(metric: str) -> str:
    """The best config's file name for `metric`: best-valid-recall@20.yaml."""
    return f"best-{metric.replace('/', '-')}.yaml"


def budget_note(folders: list[str | Path]) -> str:
    """The budget a best config was chosen within: '12 runs over 3 folders' for the folders of one sweep, or
    'provisional, <folder>: 2 of 3 runs done, 1 running; ...' naming each folder not complete ('provisional, 2 of 3
    runs done, ...' for one folder)."""
    notes = {Path(f): note for f in folders if (note := progress_note(f)) is not None}
    if notes:
        return "provisional, " + "; ".join(note if len(folders) == 1 else f"{folder.name}: {note}"
                                           for folder, note in notes.items())
    runs = sum(len(read_runs(Path(folder) / "runs.jsonl")) for folder in folders)
    return f"{runs} runs" + (f" over {len(folders)} folders" if len(folders) > 1 else "")


def write_best_config(sweep_dir: str | Path, metric: str, source: Optional[str | Path] = None,
                      best: Optional[dict[str, Any]] = None, budget: Optional[str] = None) -> Path:
    """Write <sweep_dir>/best-<metric>.yaml: the sweep's base experiment with its --set and the best run's params
    applied (its checkpoint selected on `metric`), ready for graphrec train; returns its path. `source`: the folder
    whose best run to write, for a sweep split over folders with --trials (default: sweep_dir); `best`: that
    folder's best row when the caller has ranked it already (default: ranked here); `budget`: the header's budget,
    budget_note over all the folders the sweep is split into (default: budget_note of source alone)."""
    sweep_dir = Path(sweep_dir)
    source = sweep_dir if source is None else Path(source)
    best = best if best is not None else _best(source, metric)
    state = json.loads((source / "sweep.json").read_text())
    raw = read_yaml(source / "sweep.yaml")
    base = read_yaml(source / "base.yaml")
    select = [f"train.select_metric={metric.split('/', 1)[1]}"] if metric.startswith("valid/") else []
    config = apply_overrides(base, list(state.get("overrides") or []) + set_args(best["params"]) + select)
    build_config(config, source=str(source / "base.yaml"), base_dir=str(source))  # always loadable
    budget = budget if budget is not None else budget_note([source])
    split = "" if source == sweep_dir else f" (the best over the folders this sweep is split into, from {source})"
    header = (f"# Best run of sweep {source.name} by {metric} = {best['value']:.6g}: run {best['id']} "
              f"({best['run_dir']}){split}.\n# Budget: {budget}, method {raw.get('method')}, seed "
              f"{raw.get('seed', 0)}; base {state.get('base')}.\n")
    path = sweep_dir / best_config_name(metric)
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def _axis_values(dim: Dimension, values: list[Any]) -> tuple[list[float], Optional[list[str]]]:
    """x positions for a parameter's values, and tick labels when they are categories."""
    if dim.is_categorical or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        labels = [str(v) for v in dim.params.get("values", [])] or sorted({str(v) for v in values})
        return [float(labels.index(str(v))) if str(v) in labels else float("nan") for v in values], labels
    return [float(v) for v in values], None


def plot_sweep(sweep_dir: str | Path, metric: str, path: str | Path) -> Path:
    """A PNG at `path` of `metric` against each swept parameter (one panel each; the best run marked)."""
    from ..report import pyplot  # report imports this module
    plt = pyplot()
    sweep_dir, path = Path(sweep_dir), Path(path)
    rows = [r for r in sweep_rows(sweep_dir, metric) if r["value"] is not None]
    if not rows:
        _best(sweep_dir, metric)  # raises the one-line error
    raw = read_yaml(sweep_dir / "sweep.yaml")
    dims = [d for d in parse_dimensions(sweep_dir / "sweep.yaml", raw["parameters"]) if d.distribution != "constant"]
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.2), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        xs, labels = _axis_values(dim, [r["params"].get(dim.key) for r in rows])
        ys = [r["value"] for r in rows]
        colors = ["tab:blue" if r["status"] == "finished" else "tab:gray" for r in rows]
        ax.scatter(xs, ys, c=colors, s=22)
        ax.scatter(xs[:1], ys[:1], facecolors="none", edgecolors="tab:red", s=90, label=f"best ({rows[0]['id']})")
        if dim.is_log:
            ax.set_xscale("log")
        if labels:
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(dim.key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{sweep_dir.name}: {len(rows)} runs (gray: stopped early)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
