"""runs.jsonl: a sweep's append-only record, one JSON line per run event; the last line of a run id wins."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from ..runs import PARTIAL_SUFFIX


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one line atomically: O_APPEND, a single write of the whole line, fsync."""
    append_record_bytes(path, (json.dumps(record, sort_keys=True) + "\n").encode())


def end_cut_line(path: Path) -> None:
    """Close a last line cut short by a kill with a newline, so that the next record starts on its own line."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            cut = handle.read(1) != b"\n"
        if cut:
            append_record_bytes(path, b"\n")


def append_record_bytes(path: Path, line: bytes) -> None:
    """Append bytes with one O_APPEND write and fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Run id -> its latest record, in order of first appearance; a line cut short by a crash is skipped."""
    runs: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return runs
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            runs[record["id"]] = {**runs.get(record["id"], {}), **record}
    return runs


def log_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run folder's log.jsonl, in order; a line being written right now is skipped."""
    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        return []
    records = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def logged_seconds(run_dir: Path) -> float:
    """Training plus evaluation seconds a run folder's log.jsonl has counted so far (0.0 for none): what a resumed
    run spent before its resume."""
    train = evaluation = 0.0
    for record in log_records(run_dir):
        train, evaluation = record.get("train_seconds", train), record.get("eval_seconds", evaluation)
    return float(train) + float(evaluation)


def metric_curve(run_dir: Path, metric: str) -> list[tuple[Optional[int], float]]:
    """(epoch, value) of `metric` in a run folder's log.jsonl, one per validation evaluation, in order."""
    return [(r.get("epoch"), float(r[metric])) for r in log_records(run_dir)
            if not r.get("final") and isinstance(r.get(metric), (int, float))]


def metric_history(run_dir: Path, metric: str) -> list[float]:
    """The values of `metric` in a run folder's log.jsonl, one per validation evaluation, in order."""
    return [value for _, value in metric_curve(run_dir, metric)]


def run_folders(sweep_dir: Path, name: str, run_id: str) -> list[Path]:
    """The published run folders of sweep run `run_id` (runs/<name>-<run_id>-<time>), oldest first."""
    return sorted((Path(sweep_dir) / "runs").glob(f"{name}-{run_id}-*"))


def newest_run_folder(sweep_dir: Path, name: str, run_id: str) -> Optional[Path]:
    """The folder a sweep run writes to now: its newest published one, else the hidden one of a run still before
    its first checkpoint; None when there is neither."""
    published = run_folders(sweep_dir, name, run_id)
    if published:
        return published[-1]
    hidden = sorted((Path(sweep_dir) / "runs").glob(f".{name}-{run_id}-*{PARTIAL_SUFFIX}"))
    return hidden[-1] if hidden else None
