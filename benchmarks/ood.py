"""`ood`: the OOD-evaluation targets: a popularity split of N events (< 1 min and < 8 GB at 30M) and
`graphrec report` over 100 run folders (< 5 s, Python start-up included)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .common import REPO, Table, environment, fmt_count, fmt_s, parse_count, publish, run_worker


def popularity_split(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: N power-law events -> graphrec's popularity split; seconds of the split and the process's peak RSS."""
    from graphrec.data.dataset import Interactions
    from graphrec.data.splits import split_events

    from .common import peak_rss_mib
    rng = np.random.default_rng(0)
    events, users, items = spec["events"], max(2, spec["events"] // 20), max(2, spec["events"] // 15)
    drawn = int(events * 1.8)  # duplicates are dropped: draw more, then keep `events` distinct pairs
    user = rng.integers(0, users, drawn)
    item = np.minimum(rng.zipf(1.3, drawn) - 1, items - 1)  # power-law popularity, like the synthetic generator's
    keys = np.unique(user * items + item)
    keys = np.sort(rng.choice(keys, size=min(events, len(keys)), replace=False))
    del user, item
    data = Interactions(keys // items, keys % items)
    start = time.perf_counter()
    parts = split_events(data, "popularity", 0, valid_ratio=0.1, test_ratio=0.1, test_ood_ratio=0.1, alpha=1.0,
                         valid_from="iid")
    seconds = time.perf_counter() - start
    return {"events": len(data), "split_s": seconds, "peak_rss_mib": peak_rss_mib(),
            "parts": {name: len(part) for name, part in parts.items()}}


def fake_runs(folder: Path, count: int) -> None:
    """`count` finished run folders (config.yaml, metrics.json, run.json): 5 models x count/5 seeds."""
    rng = np.random.default_rng(0)
    for index in range(count):
        model, seed = ("lightgcn", "mf", "sgl", "drgo", "causaldiffrec")[index % 5], index // 5
        run = folder / f"{model}-{seed}"
        run.mkdir(parents=True)
        config = {"name": model, "seed": seed, "protocol": "validation", "data": {"path": "/data/ood-food"},
                  "model": {"name": model, "embedding_dim": 64}, "train": {"lr": 0.001}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        metrics = {f"{split}/{metric}@{k}": float(rng.random()) for split in ("valid", "test", "test_ood")
                   for metric in ("recall", "ndcg", "coverage", "recall_tail") for k in (10, 20)}
        (run / "metrics.json").write_text(json.dumps({**metrics, "protocol": "validation", "best_epoch": 3}))
        (run / "run.json").write_text(json.dumps({"seed": seed}))


def time_report(count: int) -> dict[str, Any]:
    """Wall seconds of `python -m graphrec.cli report` over `count` run folders, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="graphrec-bench-report-") as tmp:
        fake_runs(Path(tmp), count)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "graphrec.cli", "report", tmp, "--splits", "test,test_ood"],
                              cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    rows = sum(1 for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line) - 1
    return {"runs": count, "report_s": seconds, "exit": proc.returncode, "table_rows": rows}


def run(args: argparse.Namespace) -> int:
    events = parse_count("300k") if args.quick else parse_count(args.events)
    print(f"popularity split of {fmt_count(events)} events, fresh process ...", flush=True)
    split = run_worker("ood_split", {"events": events}, args.threads)
    runs = 20 if args.quick else args.runs
    print(f"graphrec report over {runs} run folders ...", flush=True)
    report = time_report(runs)
    table = Table("OOD evaluation: popularity split and graphrec report",
                  ["what", "size", "time", "peak RSS", "target"])
    if "error" in split:
        table.add("popularity split", fmt_count(events), "not measured", "", split["error"])
    else:
        table.add("popularity split (train/valid/test/test_ood)", fmt_count(split["events"]) + " events",
                  fmt_s(split["split_s"]), f"{split['peak_rss_mib'] / 1024:.2f} GiB",
                  "< 1 min and < 8 GB at 30M")
    table.add("graphrec report (Python start-up included)", f"{report['runs']} run folders",
              fmt_s(report["report_s"]), "", "< 5 s at 100")
    table.notes.append("Split events: uniform users, Zipf(1.3) items, duplicates removed; peak RSS includes generating "
                       "them. Report runs: 5 models x seeds, 3 splits x 8 metrics each, exit "
                       f"{report['exit']}, {report['table_rows']} table rows.")
    publish("ood", [table], environment(args.threads), {"split": split, "report": report},
            write=not (args.quick or args.no_write))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", default="30M", help="events of the popularity split (default 30M)")
    parser.add_argument("--runs", type=int, default=100, help="run folders for graphrec report (default 100)")
