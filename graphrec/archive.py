"""`graphrec archive SRC... --out DIR`: run and sweep folders copied without their checkpoints, merged into DIR.

The copies keep what `graphrec report` reads (config.yaml, metrics.json, run.json, log.jsonl, shift.json) and what
`graphrec sweep --resume` reads (sweep.json, sweep.yaml, base.yaml, runs.jsonl), so results can be kept in git,
shared, tabulated again and continued on another machine. Finished and failed run folders are copied; one still
training (no metrics.json yet) is skipped, and so is the log of a sweep trial that runs.jsonl still records as running
(a partial log is no result). Each run folder lands whole or not at all; archiving again replaces a run folder already
there and keeps the ones its source no longer holds.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import TEMP_SUFFIX, atomic_write_bytes
from .errors import GraphrecError
from .runs import PARTIAL_SUFFIX, is_failed
from .sweep.runlog import read_runs

LEFT_OUT_SUFFIXES = (".pt",)  # checkpoints: graphrec eval needs them, a table does not
RUN_MARKER = "config.yaml"
SWEEP_MARKER = "runs.jsonl"


@dataclass
class ArchiveTotals:
    """What one archive call copied: run folders, unfinished ones skipped, bytes kept and checkpoint bytes left out."""
    runs: int = 0
    unfinished: int = 0
    kept_bytes: int = 0
    left_out_bytes: int = 0


def _left_out(path: Path) -> bool:
    """A checkpoint, a hidden unpublished `.<run>.partial` folder or a hidden atomic write's temp file (never a
    finished result)."""
    hidden_temp = path.name.startswith(".") and path.name.endswith((PARTIAL_SUFFIX, TEMP_SUFFIX))
    return path.name.endswith(LEFT_OUT_SUFFIXES) or hidden_temp


def _holds_results(folder: Path) -> bool:
    """Whether folder is, or holds at any depth, a run folder or a sweep folder."""
    for root, dirs, files in os.walk(folder):
        if RUN_MARKER in files or SWEEP_MARKER in files:
            return True
        dirs[:] = [d for d in dirs if not _left_out(Path(d))]
    return False


def check_sources(sources: list[str], out: Path) -> list[Path]:
    """The source folders, resolved; one-line errors (before anything is written) for a source that is missing,
    holds no run or sweep folder, contains the archive or lies inside it, or shares its name with another."""
    if out.exists() and not out.is_dir():
        raise GraphrecError(f"archive --out '{out}' is a file; pass a folder (it is created when missing)")
    folders, names = [], {}
    target = out.resolve()
    for text in sources:
        folder = Path(os.path.expanduser(text))
        if not folder.is_dir():
            raise GraphrecError(f"archive: '{text}' is not a folder; pass run folders (runs/<name>-<time>/), sweep "
                                "folders or folders that hold them")
        real = folder.resolve()
        if real == target or real in target.parents:
            raise GraphrecError(f"archive: --out '{out}' lies inside '{text}'; archive into a folder outside it")
        if target in real.parents:
            raise GraphrecError(f"archive: '{text}' is already inside the archive '{out}'; pass the original folder")
        if not _holds_results(folder):
            raise GraphrecError(f"archive: '{text}' holds no run folder (config.yaml) or sweep folder (runs.jsonl); "
                                "pass runs/<name>-<time>/, sweeps/<name>-<time>/ or a folder that holds them")
        if real.name in names:
            raise GraphrecError(f"archive: '{text}' and '{names[real.name]}' would both become '{out / real.name}'; "
                                "archive them into different --out folders")
        names[real.name] = text
        folders.append(real)
    return folders


def _copy_run(source: Path, dest: Path, totals: ArchiveTotals) -> None:
    """Copy one run folder (checkpoints left out) to a hidden sibling, then swap it in for dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=PARTIAL_SUFFIX))
    staging.chmod(source.stat().st_mode & 0o777)  # mkdtemp's 0700 would otherwise become the copy's
    old = None
    try:
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if any(_left_out(Path(part)) for part in relative.parts):
                totals.left_out_bytes += path.stat().st_size if path.is_file() else 0
            elif path.is_dir():
                (staging / relative).mkdir(exist_ok=True)
            elif path.is_file():
                shutil.copy2(path, staging / relative)
                totals.kept_bytes += path.stat().st_size
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old.", suffix=PARTIAL_SUFFIX))
            os.rename(dest, old)  # onto the empty folder: replaces it
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not dest.exists():
            os.rename(old, dest)  # put the earlier copy back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    totals.runs += 1


def _running_logs(sweep: Path) -> set[Path]:
    """The log files of the trials a sweep folder's runs.jsonl still records as running (a killed one too)."""
    return {sweep / r["log"] for r in read_runs(sweep / SWEEP_MARKER).values()
            if r.get("status") == "running" and isinstance(r.get("log"), str)}


def _copy_tree(source: Path, dest: Path, totals: ArchiveTotals, skipped: frozenset[Path] = frozenset()) -> None:
    """Merge source into dest: run folders whole (_copy_run), other files each written atomically, except the files in
    skipped (running trials' logs)."""
    if (source / RUN_MARKER).is_file():
        if (source / "metrics.json").is_file() or is_failed(source):
            _copy_run(source, dest, totals)
        else:  # still training, or killed: without its last.pt a copy could be neither reported nor resumed
            totals.unfinished += 1
        return
    dest.mkdir(parents=True, exist_ok=True)
    if (source / SWEEP_MARKER).is_file():
        skipped = skipped | _running_logs(source)
    for path in sorted(source.iterdir()):
        if path in skipped:
            continue
        if _left_out(path):
            totals.left_out_bytes += path.stat().st_size if path.is_file() else 0
        elif path.is_dir():
            _copy_tree(path, dest / path.name, totals, skipped)
        elif path.is_file():
            payload = path.read_bytes()
            atomic_write_bytes(dest / path.name, payload)
            totals.kept_bytes += len(payload)


def archive(sources: list[str], out: str) -> ArchiveTotals:
    """Copy each source folder to out/<its name>, checkpoints left out, merged with what out already holds."""
    out_dir = Path(os.path.expanduser(out))
    totals = ArchiveTotals()
    for folder in check_sources(sources, out_dir):
        _copy_tree(folder, out_dir / folder.name, totals)
    return totals


def cmd_archive(args: argparse.Namespace) -> int:
    totals = archive(args.sources, args.out)
    skipped = f"; {totals.unfinished} unfinished run folder(s) skipped" if totals.unfinished else ""
    print(f"archived {totals.runs} run folder(s) to {args.out}: {totals.kept_bytes / 2**20:.2f} MiB kept, "
          f"{totals.left_out_bytes / 2**20:.1f} MiB of checkpoints left out{skipped}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    """`graphrec archive`."""
    parser = sub.add_parser("archive", help="copy run and sweep folders without their checkpoints (for git, "
                            "sharing, graphrec report and sweep --resume elsewhere)")
    parser.add_argument("sources", nargs="+", metavar="SRC",
                        help="run folders, sweep folders or folders that hold them, e.g. runs/fm/frappe-nfm")
    parser.add_argument("--out", required=True, help="archive folder; each SRC is merged into OUT/<its name>")
    parser.set_defaults(func=cmd_archive)
