"""Metrics as tables: one run's splits (`eval_table`, `plot_eval`) and many run folders as mean ± sd per model x
split (`graphrec report`); every table in docs/ comes from here."""
from __future__ import annotations

import argparse
import csv
import difflib
import functools
import glob
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import yaml
from pydantic import BaseModel

from .comparison import ABSENT, compare_to_baseline, setting_text
from .errors import GraphrecError
from .metric_names import CLASSIFICATION_METRICS, RANKING_METRICS, REGRESSION_METRICS
from .runs import read_run_metadata

FORMATS = ("table", "markdown", "csv", "json")
SPLIT_ORDER = ("valid", "test", "test_ood")
POINTWISE_METRICS = REGRESSION_METRICS + CLASSIFICATION_METRICS
KNOWN_METRICS = RANKING_METRICS + POINTWISE_METRICS
# config keys that say how a run was executed (or have a column of their own), not what it computes: never tell two
# settings apart
_NOT_SETTINGS = ("name", "protocol", "seed", "output_dir", "device", "tracking.", "train.progress", "train.threads")
_TRAINING_KEYS = ("train.", "dro.")  # left out of the settings of runs that trained nothing (epochs_run 0)


def _split_metric_key(key: str) -> Optional[tuple[str, str]]:
    """'test/recall@20' -> ('test', 'recall@20'); None for keys that are not a split's metric@K."""
    split, sep, metric = key.partition("/")
    name, at, k = metric.partition("@")
    if sep and metric in POINTWISE_METRICS:
        return split, metric
    return (split, metric) if sep and at and k.isdigit() and name else None


def _metric_order(keys: Iterable[str]) -> list[str]:
    """metric@K keys in eval.metrics' order of choices (others after, by first appearance), K ascending."""
    keys = list(dict.fromkeys(keys))
    names = list(KNOWN_METRICS) + [n for n in dict.fromkeys(k.split("@")[0] for k in keys) if n not in KNOWN_METRICS]
    return sorted(keys, key=lambda k: (names.index(k.split("@")[0]), int(k.split("@")[1]) if "@" in k else 0))


def _select(available: list[str], wanted: Optional[list[str]], what: str, option: str) -> list[str]:
    """`wanted` (names, or metric names without @K for every K) checked against `available`; all by default."""
    if not wanted:
        return available
    out = []
    for name in wanted:
        match = [a for a in available if a == name or ("@" not in name and a.split("@")[0] == name)]
        if not match:
            raise GraphrecError(f"{option} {name}: no such {what}; the runs have {', '.join(available)}")
        out += [m for m in match if m not in out]
    return out


def _number(value: Optional[float], digits: int = 4) -> str:
    """A metric value for a table: `digits` decimals, one for large values such as ARP."""
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:.1f}"


def _render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    """Rows of strings as an aligned text table, a markdown table or CSV."""
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        return buffer.getvalue().rstrip("\n")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                               enumerate(zip(line, widths))).rstrip() for line in [header, *rows])


def split_metrics(metrics: dict[str, Any], splits: Optional[list[str]] = None) -> dict[str, dict[str, float]]:
    """{split: {metric@K: value}} of the chosen splits (default: all) from '<split>/<metric>@<K>' keys, with a
    one-line error naming the splits there are when one is missing."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parsed = _split_metric_key(key)
        if parsed:
            table.setdefault(parsed[0], {})[parsed[1]] = float(value)
    chosen = _select(_split_order(table), splits, "split", "--splits")
    return {s: table[s] for s in chosen}


def _split_order(names: Iterable[str]) -> list[str]:
    """valid, test, test_ood first, then the other named tests in order of appearance."""
    names = list(dict.fromkeys(names))
    return [s for s in SPLIT_ORDER if s in names] + [s for s in names if s not in SPLIT_ORDER]


def count_unit(metrics: dict[str, Any]) -> str:
    """What a run's splits count: 'rows' for pointwise tasks ('<split>/rows' keys), else 'users' (ranking)."""
    return "rows" if any(key.endswith("/rows") for key in metrics) else "users"


def eval_table(metrics: dict[str, Any], splits: Optional[list[str]] = None, fmt: str = "table") -> str:
    """One run's metrics: rows = splits, columns = metric@K, with the relative change from the `test` row
    (table / markdown: in parentheses; csv: <metric>_vs_test columns; json: a "vs_test" mapping)."""
    rows = split_metrics(metrics, splits)
    columns = _metric_order(k for row in rows.values() for k in row)
    base = rows.get("test")
    change = {s: {c: (row[c] - base[c]) / base[c] if base and c in row and base.get(c) else None
                  for c in columns} for s, row in rows.items() if s != "test"}
    unit = count_unit(metrics)
    counts = {s: metrics.get(f"{s}/{unit}") for s in rows}
    if fmt == "json":
        return json.dumps({"splits": {s: ({unit: counts[s]} if counts[s] is not None else {}) | row
                                      for s, row in rows.items()}, "vs_test": change}, indent=2)
    header = ["split", unit] + columns
    body = []
    for split, row in rows.items():
        cells = [split, "" if counts[split] is None else str(int(counts[split]))]
        for column in columns:
            rel = change.get(split, {}).get(column)
            if fmt == "csv":
                cells.append(_number(row.get(column), 6))
            else:
                half = metrics.get(f"{split}/{column}_ci95")  # sampled evaluation (eval.users)
                cells.append(_number(row.get(column), 6) + (f" ± {_number(half, 6)}" if half is not None else "")
                             + (f" ({100 * rel:+.1f}%)" if rel is not None else ""))
        if fmt == "csv":
            cells += ["" if change.get(split, {}).get(c) is None else f"{change[split][c]:.6f}" for c in columns]
        body.append(cells)
    if fmt == "csv":
        header += [f"{c}_vs_test" for c in columns]
    return _render(header, body, fmt)


def pyplot():
    """matplotlib.pyplot on the Agg backend; a one-line error naming the extra when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GraphrecError("--plot needs matplotlib, which is not installed: pip install 'graphrec[plot]'") from None
    return plt


def plot_eval(metrics: dict[str, Any], path: str | os.PathLike, splits: Optional[list[str]] = None) -> None:
    """A PNG of grouped bars: one group per metric@K (ARP, on another scale, left out), one bar per split (needs
    matplotlib: graphrec[plot])."""
    plt = pyplot()
    rows = split_metrics(metrics, splits)
    columns = [c for c in _metric_order(k for row in rows.values() for k in row) if not c.startswith("arp@")]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(columns) + 2), 4))
    for i, (split, row) in enumerate(rows.items()):
        ax.bar(np.arange(len(columns)) + (i - (len(rows) - 1) / 2) * width, [row.get(c, 0.0) for c in columns],
               width, label=split)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- graphrec report --------------------------------------------------------------------------------------------------

def find_runs(paths: list[str]) -> dict[Path, str]:
    """Run folders (holding config.yaml) named by the paths, each with its source: the folder given that holds it, or
    for a run folder given itself (or through a glob pattern) its parent. Glob patterns expanded, a folder that holds
    run folders (at any depth) expanded to them; one-line errors for paths that match nothing."""
    found: dict[Path, str] = {}
    for text in paths:
        matches = sorted(glob.glob(os.path.expanduser(text))) if glob.has_magic(text) else [text]
        if not matches or not all(Path(m).exists() for m in matches):
            raise GraphrecError(f"report: '{text}' not found; pass run folders (runs/<name>-<time>/) or a folder "
                                "that holds them")
        for match in map(Path, matches):
            if (match / "config.yaml").is_file():
                found.setdefault(match, str(match.parent))
                continue
            inside = []
            for root, dirs, files in os.walk(match):
                if "config.yaml" in files and root != str(match):
                    inside.append(Path(root))
                    dirs.clear()
                dirs.sort()
            if not inside:
                raise GraphrecError(f"report: '{match}' is not a run folder (no config.yaml) and holds none")
            for folder in inside:
                found.setdefault(folder, str(match))
    return found


# mappings whose keys are the user's (modality names): one setting each, so that a modality left out shows
_LEAF_MAPPINGS = ("data.item_features",)


def _leaf(path: str, value: Any) -> Any:
    """A settings value as report compares and prints it: lists as JSON text, a _LEAF_MAPPINGS mapping as its
    keys and file names."""
    if path in _LEAF_MAPPINGS and isinstance(value, dict):  # modality:file name, e.g. genre:genre.npy,text:text.npy
        return ",".join(f"{k}:{Path(str(v)).name}" for k, v in sorted(value.items())) or "none"
    return json.dumps(value) if isinstance(value, list) else value


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}, each value through `_leaf`."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in _LEAF_MAPPINGS:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = _leaf(path, value)
    return out


def read_run(folder: Path) -> Optional[dict]:
    """A run folder's model, dataset, protocol, seed, settings and metrics; None (with a warning) when it has
    no metrics.json (unfinished or failed)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        print(f"graphrec: warning: report: {folder} has no metrics.json (unfinished or failed run); skipped",
              file=sys.stderr)
        return None
    try:
        config = yaml.load((folder / "config.yaml").read_text(), Loader=loader) or {}
        metrics = json.loads(metrics_path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise GraphrecError(f"report: {folder}: cannot read config.yaml / metrics.json ({str(err).splitlines()[0]})"
                            "; fix or remove that run folder") from None
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise GraphrecError(f"report: {folder}: config.yaml and metrics.json must be mappings; is it a run folder?")
    flat = _flatten(config)
    data_path = flat.get("data.path")
    dataset = Path(str(data_path)).name if data_path else "synthetic"
    method = flat.get("split.method", "given")
    seed = flat.get("seed")
    if seed is None:
        seed = read_run_metadata(folder).get("seed")
    model = str(flat.get("model.name", "?")) + ("+dro" if flat.get("dro.enabled") and flat.get("model.name") != "drgo"
                                                else "")
    model = f"gem-{model}" if flat.get("model.embedding") == "gem" else model  # GEM-FM, GEM-DeepFM, ...
    trained = metrics.get("epochs_run") != 0  # a model that trains nothing (pop): its training keys are no settings
    protocol = str(metrics.get("protocol", "validation"))
    if protocol == "refit":
        _as_selected(flat)
    return {"folder": folder, "model": model, "trained": trained,
            "dataset": dataset if method in (None, "given") else f"{dataset}/{method}",
            "protocol": protocol, "seed": seed,
            "settings": {k: v for k, v in flat.items() if not k.startswith(_NOT_SETTINGS) and k != "data.path"
                         and (trained or not k.startswith(_TRAINING_KEYS))},
            "metrics": metrics}


def _as_selected(flat: dict[str, Any]) -> None:
    """A refit run's settings as its validation run had them: its train.epochs is the epoch count that run selected
    for this seed (a result, like the seed; metrics.json keeps it as epochs_run) and its train.lr_schedule_epochs
    the budget that run was given, so refit seeds of one setting group together, beside their validation rows."""
    budget = flat.pop("train.lr_schedule_epochs", None)
    if budget is not None:
        flat["train.epochs"] = budget


@functools.lru_cache(maxsize=None)
def _schema_default(key: str, model_name: Optional[str]) -> Any:
    """The current schema's default of a flat settings key for a run of `model_name` (what a config written before
    the key existed ran with), or ABSENT when the schema has no such key for that model."""
    from .schema import Config
    section, *parts = key.split(".")
    if section == "model":
        from .models import MODELS  # imports torch: only for model keys
        holder = MODELS[model_name].config_class if model_name in MODELS else None
    else:
        holder = Config.model_fields[section].annotation if section in Config.model_fields else None
    for depth, part in enumerate(parts):
        fields = getattr(holder, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return ABSENT
        if depth < len(parts) - 1:
            holder = fields[part].annotation
            continue
        default = fields[part].get_default(call_default_factory=True)
        if isinstance(default, (dict, BaseModel)) and key not in _LEAF_MAPPINGS:
            return ABSENT  # a whole section: its leaves are the keys
        return _leaf(key, default)
    return ABSENT


def _fill_defaults(runs: list[dict]) -> None:
    """Give each run the schema default of every settings key another run has and its config lacks (older configs
    predate newer keys), so that equal settings group together and a key set only by newer runs shows."""
    keys = dict.fromkeys(k for run in runs for k in run["settings"])
    for run in runs:
        settings = run["settings"]
        for key in keys:
            if key not in settings and (run["trained"] or not key.startswith(_TRAINING_KEYS)):
                default = _schema_default(key, settings.get("model.name"))
                if default is not ABSENT:
                    settings[key] = default


def _group(runs: list[dict]) -> list[dict]:
    """Runs with the same model, dataset, protocol and settings (all but the seed) as one group each; a group that
    holds a seed twice, from runs of different sources (`find_runs`: a model re-run after a fix beside its old runs),
    is one group per source, told apart by a `source` setting."""
    _fill_defaults(runs)
    groups: dict[tuple, dict] = {}
    for run in runs:
        key = (run["model"], run["dataset"], run["protocol"], json.dumps(run["settings"], sort_keys=True, default=str))
        group = groups.setdefault(key, {**{k: run[k] for k in ("model", "dataset", "protocol", "settings")},
                                        "runs": []})
        group["runs"].append(run)
    return [part for group in groups.values() for part in _by_source(group)]


def _by_source(group: dict) -> list[dict]:
    """`group` split by its runs' sources when a seed repeats across sources, else as it is."""
    seeds = [run["seed"] for run in group["runs"]]
    sources = list(dict.fromkeys(run.get("source") for run in group["runs"]))
    if len(set(seeds)) == len(seeds) or len(sources) == 1:
        return [group]
    return [{**group, "settings": {**group["settings"], "source": source},
             "runs": [run for run in group["runs"] if run.get("source") == source]} for source in sources]


def _varying(groups: list[dict]) -> list[str]:
    """The settings keys that tell groups apart: some group set the key away from its model's default, and it has
    different values in the groups that have it or only some models have it (their own keys, another model's schema
    lacks them), so that each model's tuned keys are named even when no other row shares them. A key every group
    leaves at its own model's default (DRGO's 2 layers beside CausalDiffRec's 3) is said by the model column."""
    def text(value: Any) -> str:
        return json.dumps(value, default=str)

    def shown(key: str) -> bool:
        having = [g["settings"] for g in groups if key in g["settings"]]
        if len({text(s[key]) for s in having}) == 1 and len(having) == len(groups):
            return False
        per_model: dict[Any, set[str]] = {}
        for settings in having:
            per_model.setdefault(settings.get("model.name"), set()).add(text(settings[key]))
        if any(len(values) > 1 for values in per_model.values()):
            return True  # rows of one model differ: at least one is off that model's default
        return any(text(s[key]) != text(_schema_default(key, s.get("model.name"))) for s in having)

    keys = dict.fromkeys(k for g in groups for k in g["settings"])
    return [k for k in keys if k not in ("model.name", "split.method") and shown(k)]


def report_rows(runs: list[dict], splits: Optional[list[str]] = None,
                metrics: Optional[list[str]] = None) -> tuple[list[str], list[dict]]:
    """The metric@K columns and one row per group x split: model, dataset, protocol, split, seeds, settings (the
    keys that tell the groups apart), and {metric@K: (mean, sd, n)} over the group's seeds (sd with n - 1)."""
    per_run = [split_metrics(run["metrics"]) for run in runs]
    all_splits = _split_order(s for table in per_run for s in table)
    chosen_splits = _select(all_splits, splits, "split", "--splits")
    all_metrics = _metric_order(m for table in per_run for s in chosen_splits for m in table.get(s, {}))
    columns = _select(all_metrics, metrics, "metric", "--metrics")
    groups = _group(runs)
    varying = _varying(groups)
    rows = []
    for group in groups:
        tables = [split_metrics(run["metrics"]) for run in group["runs"]]
        settings = {k: group["settings"][k] for k in varying if k in group["settings"]}
        for split in chosen_splits:
            if not any(split in t for t in tables):
                continue
            values, by_seed = {}, {}
            for column in columns:
                pairs = [(run["seed"], t[split][column]) for run, t in zip(group["runs"], tables)
                         if column in t.get(split, {})]
                found = np.array([value for _, value in pairs], dtype=np.float64)
                if len(found):
                    values[column] = (float(found.mean()), float(found.std(ddof=1)) if len(found) > 1 else None,
                                      len(found))
                    by_seed[column] = pairs
            rows.append({"model": group["model"], "dataset": group["dataset"], "protocol": group["protocol"],
                         "split": split, "seeds": sorted(r["seed"] for r in group["runs"]),
                         "settings": settings, "values": values, "by_seed": by_seed,
                         "all_settings": group["settings"]})
    return columns, rows


def _change(row: dict, column: str) -> str:
    """' (-11.1% ▼)': the change from the baseline, with ▲ / ▼ beyond one sd, or ' (+3.0%, 9/10 seeds, p=0.026 ▲)'
    paired (▲ / ▼ at p < comparison.PAIRED_ALPHA); '' without a baseline."""
    if column not in row.get("vs_baseline", {}):
        return ""
    relative, beyond = row["vs_baseline"][column]
    test = row.get("paired_test", {}).get(column)
    paired = f", {test['wins']}/{test['seeds']} seeds, {_p_value(test['p'])}" if test else ""
    return f" ({relative:+.1%}{paired}{' ▲' if beyond > 0 else ' ▼' if beyond < 0 else ''})"


def _p_value(p: float) -> str:
    """'p=0.026', 'p<0.001'."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _seeds(seeds: list) -> str:
    """'3 (1,2,3)', or the count and range when there are many."""
    shown = ",".join(map(str, seeds)) if len(seeds) <= 10 else f"{seeds[0]}..{seeds[-1]}"
    return f"{len(seeds)} ({shown})"


def _json_change(row: dict, column: str) -> dict:
    """A row's change from the baseline on one metric, for --format json."""
    relative, beyond = row["vs_baseline"][column]
    test = row.get("paired_test", {}).get(column)
    if test is None:
        return {"relative": relative, "beyond_sd": beyond}
    return {"relative": relative, "significant": beyond, **{k: v for k, v in test.items() if k != "relative"}}


def format_report(columns: list[str], rows: list[dict], fmt: str = "markdown") -> str:
    """Report rows as table / markdown / csv (mean and sd columns) / json."""
    if fmt == "json":
        return json.dumps([{**{k: row[k] for k in ("model", "dataset", "protocol", "split", "seeds", "settings")},
                            "metrics": {c: {"mean": m, "sd": sd, "n": n} for c, (m, sd, n) in row["values"].items()},
                            **({"vs_baseline": {c: _json_change(row, c) for c in row["vs_baseline"]}}
                               if "vs_baseline" in row else {})}
                           for row in rows], indent=2, default=str)
    header = ["model", "dataset", "protocol", "split", "seeds", "settings"]
    compared = any("vs_baseline" in row for row in rows)
    paired = any("paired_test" in row for row in rows)
    body = []
    for row in rows:
        cells = [row["model"], row["dataset"], row["protocol"], row["split"],
                 ",".join(str(s) for s in row["seeds"]) if fmt == "csv" else _seeds(row["seeds"]),
                 "; ".join(f"{k}={setting_text(v, fmt)}" for k, v in row["settings"].items()) or "-"]
        for column in columns:
            mean, sd, _ = row["values"].get(column, (None, None, 0))
            if fmt == "csv":
                change = row.get("vs_baseline", {}).get(column)
                test = row.get("paired_test", {}).get(column)
                cells += [_number(mean), _number(sd)] + ([_number(change[0]) if change else ""] if compared else [])
                cells += ([f"{test['wins']}/{test['seeds']}", f"{test['p']:.4g}"] if test else ["", ""]) \
                    if paired else []
            else:
                cells.append(_number(mean) + (f" ± {_number(sd)}" if sd is not None else "") + _change(row, column))
        body.append(cells)
    if fmt == "csv":
        parts = ("_mean", "_sd") + (("_vs_baseline",) if compared else ()) + (("_wins", "_p") if paired else ())
        header += [f"{c}{part}" for c in columns for part in parts]
    else:
        header += columns
    return _render(header, body, fmt)


def add_parser(subparsers) -> None:
    """The `graphrec report` subcommand."""
    parser = subparsers.add_parser("report", help="mean ± sd tables over run folders (seeds) per model x split")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders, glob patterns, or folders that hold runs")
    parser.add_argument("--splits", help="comma-separated splits, e.g. test,test_ood (default: all)")
    parser.add_argument("--metrics", help="comma-separated metric@K or metric names, e.g. recall@20,ndcg "
                        "(default: all)")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table, markdown (default), csv, json")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="tabulate runs of different datasets or protocols together")
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE (atomically) instead of printing it")
    parser.add_argument("--baseline", metavar="MODEL", help="beside each other row's mean: its change from MODEL's "
                        "mean on the same split, marked ▲ / ▼ when they differ by more than the larger sd; "
                        "MODEL:KEY=VALUE[,KEY=VALUE] picks one of the model's setting groups (the others are "
                        "compared with it too)")
    parser.add_argument("--settings", metavar="KEYS", help="the settings column shows only these keys, comma-"
                        "separated, as each row's runs have them (e.g. model.ssl_loss,model.mixgcf), or none; "
                        "the rows still group by every setting, and keys that tell two rows apart are added")
    parser.add_argument("--paired", action="store_true", help="with --baseline: compare by seed (the seeds both "
                        "models ran): the mean per-seed change, the seeds it is ahead in, and a paired t-test's p, "
                        "marked ▲ / ▼ at p < 0.05")
    parser.add_argument("--best", metavar="METRIC", help="sweep folders: rank their runs by METRIC (e.g. "
                        "valid/ndcg@20) and write the best config as <sweep>/best-<metric>.yaml")
    parser.add_argument("--by-trial", metavar="METRIC", help="folders of two or more sweeps whose shared dimensions "
                        "draw the same settings at the same trial (e.g. a model's sweep and LightGCN's): METRIC per "
                        "trial and sweep, whether the shared draw agrees, and a last row with the trials each sweep "
                        "is ahead of the first one in")
    parser.add_argument("--trial", metavar="ID", help="with --by-trial: trial ID's METRIC at each evaluated epoch in "
                        "each sweep (its learning curve under each model on the same shared draw), each peak and "
                        "the last value's change from it")
    parser.add_argument("--plot", metavar="PNG", help="with --best: METRIC against each swept parameter "
                        "(graphrec[plot])")
    parser.set_defaults(func=run)


def _names(text: Optional[str]) -> Optional[list[str]]:
    """'a, b' -> ['a', 'b']; None for no option."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _status(row: dict) -> str:
    """A sweep run's status for the table: 'running, epoch 26' while it trains, else its status."""
    return f"running, epoch {row['epoch']}" if row.get("epoch") is not None else str(row["status"])


def sweep_report(folders: list[str], metric: str, fmt: str, plot: Optional[str]) -> str:
    """Each sweep folder's runs ranked by `metric` (a table per sweep), the best config written beside them; the
    folders of one sweep split with --trials all get the best config over the whole sweep."""
    from .sweep.summary import plot_sweep, progress_note, selectable_best, sweep_rows, time_left_note, write_best_config
    tables = {}
    for folder in folders:
        if not (Path(folder) / "runs.jsonl").is_file():
            raise GraphrecError(f"report --best: '{folder}' is not a sweep folder (no runs.jsonl); pass "
                                "sweeps/<name>-<time>/ as printed by graphrec sweep")
        tables[folder] = sweep_rows(folder, metric)
    source, budgets, notes = _best_sources(tables, metric)
    texts = []
    for folder, rows in tables.items():
        names = list(dict.fromkeys(k for row in rows for k in row["params"]))
        body = [[str(r["rank"]), r["id"], _status(r), _number(r["value"])] +
                [str(r["params"].get(n, "")) for n in names] for r in rows]
        best = write_best_config(folder, metric, source=source[folder],  # refuses a folder without a best run
                                 best=selectable_best(tables[source[folder]]), budget=budgets[folder])
        if plot:
            plot_sweep(folder, metric, plot)
        partial = progress_note(folder)
        live = any(r["status"] == "running" for r in rows)
        note = "" if partial is None else (f"; provisional: {partial} (" + (
            "still running" if live else f"graphrec sweep --resume {folder} finishes it") + ")")
        eta = time_left_note(folder) if live else None
        note += f"; {eta}" if eta else ""
        whose = "" if source[folder] == folder else f" (the split sweep's best, from {source[folder]})"
        texts.append(f"sweep {folder}: best config written to {best}{whose}{note}\n"
                     + _render(["rank", "run", "status", metric] + names, body, fmt))
    return "\n\n".join(texts + notes)


def _best_sources(tables: dict[str, list[dict]], metric: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Folder -> the folder whose best run its best config is (itself, or for a sweep split over several folders
    with --trials the one holding the best run over all of them; `tables`: folder -> its ranked sweep_rows), folder
    -> the budget its sweep's best was chosen within (over all that sweep's folders given), and a line per split
    sweep naming that run and the config to train it from."""
    from .sweep.summary import best_across, best_config_name, budget_note, selectable_best, sweeps_by_file
    source, budgets, notes = {folder: folder for folder in tables}, {}, []
    for sweep_file, group in sweeps_by_file(list(tables), "--best").items():
        budget = budget_note(group)  # read once per sweep, not once per folder
        budgets.update({f: budget for f in group})
        finished = {f: best for f in group if (best := selectable_best(tables[f])) is not None}
        if len(group) > 1 and finished:
            winner = best_across(finished, metric)
            source.update({f: winner for f in group})
            row = finished[winner]
            notes.append(f"sweep {Path(sweep_file).name} over {len(group)} folders: best {row['id']} "
                         f"({metric} {_number(row['value'])}) in {winner}; train it from "
                         f"{Path(winner) / best_config_name(metric)} (the same config is in each folder)"
                         + (f"; {budget}" if budget.startswith("provisional") else ""))
    return source, budgets, notes


def run(args: argparse.Namespace) -> int:
    """Read the runs, refuse mixed datasets/protocols unless asked, print or write the table."""
    if args.paired and not args.baseline:
        raise GraphrecError("report --paired goes with --baseline MODEL (the model each other one is paired with "
                            "by seed); add --baseline")
    if args.plot and not args.best:
        raise GraphrecError("report --plot goes with --best METRIC (a sweep's metric against its parameters); "
                            "for one run's splits use graphrec eval RUN --plot")
    check_out(args.out)
    if args.settings and (args.best or args.by_trial):
        raise GraphrecError("report --settings narrows the settings column of the runs' table; --best and "
                            "--by-trial print sweep tables without one: drop --settings")
    if args.best and args.baseline:
        raise GraphrecError("report --best ranks one sweep's trials; --baseline compares models over seeds: run "
                            "them as two commands (--baseline on the seeds' run folders)")
    if args.trial and not args.by_trial:
        raise GraphrecError("report --trial goes with --by-trial METRIC (the metric whose curve it prints, e.g. "
                            "--by-trial valid/recall@20 --trial r009); add --by-trial")
    if args.by_trial:
        if args.best or args.baseline or args.plot:
            raise GraphrecError("report --by-trial compares sweeps on their own; drop --best, --baseline and --plot "
                                "(run them as separate commands)")
        from .sweep.compare import compare_by_trial, curves_of_trial
        table = (curves_of_trial(args.runs, args.by_trial, args.trial) if args.trial
                 else compare_by_trial(args.runs, args.by_trial))
        emit(_render(*table, args.format), args.out)
        return 0
    if args.best:
        if args.plot:
            pyplot()
        emit(sweep_report(args.runs, args.best, args.format, args.plot), args.out)
        return 0
    runs = [{**found, "source": source} for folder, source in find_runs(args.runs).items()
            if (found := read_run(folder)) is not None]
    if not runs:
        raise GraphrecError("report: none of the runs has metrics.json; pass finished run folders")
    if not args.allow_mixed:
        for what in ("dataset", "protocol"):
            seen = list(dict.fromkeys(r[what] for r in runs))
            if len(seen) > 1:
                raise GraphrecError(f"report: the runs are of different {what}s ({', '.join(seen)}); pass "
                                    "--allow-mixed to tabulate them together, or fewer runs")
    columns, rows = report_rows(runs, _names(args.splits), _names(args.metrics))
    if args.baseline:
        compare_to_baseline(rows, args.baseline, paired=args.paired)
    if args.settings:
        show_settings(rows, _names(args.settings))
    emit(format_report(columns, rows, args.format), args.out)
    return 0


def show_settings(rows: list[dict], keys: list[str]) -> None:
    """Narrow each row's settings column to `keys` (['none']: no key) from all of its group's settings, adding the
    column's own keys, in its order, while two setting groups of one model would read alike."""
    keys = [] if keys == ["none"] else list(keys)
    known = list(dict.fromkeys(k for row in rows for k in row["all_settings"]))
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise GraphrecError(f"report --settings: no run has the key '{key}'"
                                + (f"; did you mean '{close[0]}'?" if close else "")
                                + " Name keys as the settings column prints them (e.g. model.ssl_loss), or none")
    spare = list(dict.fromkeys(k for row in rows for k in row["settings"] if k not in keys))

    def shown(row: dict) -> dict:
        return {k: row["all_settings"][k] for k in keys if k in row["all_settings"]}

    def alike() -> list[dict]:
        """The first rows of one model, dataset, protocol and split that the chosen keys do not tell apart."""
        seen: dict[str, list[dict]] = {}
        for row in rows:
            label = json.dumps([row[k] for k in ("model", "dataset", "protocol", "split")] + [shown(row)],
                               sort_keys=True, default=str)
            seen.setdefault(label, []).append(row)
        return next((same for same in seen.values() if len(same) > 1), [])

    while same := alike():
        keys.append(next(k for k in spare if k not in keys and len(
            {json.dumps(r["all_settings"].get(k), default=str) for r in same}) > 1))
    for row in rows:
        row["settings"] = shown(row)


def check_out(out: Optional[str]) -> None:
    """Refuse an --out that cannot be written before anything is read or written."""
    if out and (Path(out).is_dir() or not Path(out).parent.is_dir()):
        raise GraphrecError(f"--out '{out}': {'is a folder' if Path(out).is_dir() else 'its folder does not exist'}; "
                            "name a file in an existing folder")


def emit(text: str, out: Optional[str]) -> None:
    """Print the report, or write it to the file `out` (checked by check_out) atomically."""
    if not out:
        print(text)
        return
    from .atomic import atomic_write_text
    atomic_write_text(Path(out), text + "\n")
