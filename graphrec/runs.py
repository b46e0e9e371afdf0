"""Run folders: claiming a hidden one and publishing it at its first checkpoint, failed-run marking, the lock that
keeps one process per folder, the metadata saved beside every run, and comparing saved configs."""
from __future__ import annotations

import errno
import itertools
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

from .atomic import atomic_write_json
from .errors import GraphrecError, one_line


PARTIAL_SUFFIX = ".partial"
FAILED_FILE = "FAILED.json"


class PendingRun:
    """A new run's folder: written as hidden `.<name>-<time>.partial` and renamed to `<name>-<time>` (`final`) by
    publish() once its first checkpoint exists, so no half-made run folder is ever visible. discard() removes it
    and any output folders the claim created (a run that fails before its first checkpoint leaves nothing)."""

    def __init__(self, partial: Path, final: Path, created: list[Path]) -> None:
        self.partial, self.final, self.created, self.published = partial, final, created, False

    @property
    def path(self) -> Path:
        """Where the run's files are now."""
        return self.final if self.published else self.partial

    def publish(self) -> Path:
        """Rename the hidden folder to its final name (the next free suffix if that name got taken); returns it."""
        if self.published:
            return self.final
        base, stem, suffix = self.final.parent, self.final.name, 1
        while True:
            try:
                os.rename(self.partial, self.final)  # replaces an empty folder at most, never a run
                break
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                self.final, suffix = base / f"{stem}-{suffix}", suffix + 1
        self.published = True
        return self.final

    def discard(self) -> None:
        """Delete the unpublished folder and the output folders the claim created (when empty); never raises."""
        if not self.published:
            shutil.rmtree(self.partial, ignore_errors=True)
        _remove_empty(self.created)


def _remove_empty(folders: list[Path]) -> None:
    """rmdir the folders, deepest (last) first, stopping at the first that is not empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def claim_run_dir(output_dir: str, name: str) -> PendingRun:
    """Claim a fresh run folder output_dir/<name>-<time>[-n] as a hidden partial one (mkdir claims it atomically).

    A name is free when neither its partial nor its final folder exists: a published run held the partial name
    until its rename, so two processes never get the same final name.
    """
    base = Path(os.path.expanduser(output_dir))
    base = base if base.is_absolute() else Path.cwd() / base
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    created: list[Path] = []  # output folders this claim makes, outermost first
    partial = base
    try:
        for folder in reversed([base, *base.parents]):
            if not folder.exists():
                try:
                    folder.mkdir()
                    created.append(folder)
                except FileExistsError:  # made by another process meanwhile
                    pass
        for suffix in itertools.count():  # ends at the first free name
            final = base / (f"{name}-{stamp}" + (f"-{suffix}" if suffix else ""))
            partial = base / f".{final.name}{PARTIAL_SUFFIX}"
            try:
                partial.mkdir()
            except FileExistsError:
                continue
            if not final.exists():
                return PendingRun(partial, final, created)
            partial.rmdir()
    except OSError as exc:
        _remove_empty(created)
        raise GraphrecError(f"cannot create the run folder '{partial}' ({exc.strerror}); choose another name or "
                            "output_dir") from None


def mark_failed(run_dir: Path, reason: str) -> None:
    """Write run_dir/FAILED.json with the one-line reason, so the folder says plainly that the run failed."""
    atomic_write_json(Path(run_dir) / FAILED_FILE, {"reason": one_line(reason),
                                                    "time": datetime.now().isoformat(timespec="seconds")})


def failure_reason(run_dir: Path) -> Optional[str]:
    """The reason in run_dir/FAILED.json, or None when the run has not failed."""
    path = Path(run_dir) / FAILED_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text()).get("reason", "no reason recorded"))
    except (OSError, ValueError, AttributeError):
        return "FAILED.json is unreadable"


def is_failed(run_dir: Path) -> bool:
    """Whether the run in run_dir failed (it holds FAILED.json)."""
    return (Path(run_dir) / FAILED_FILE).is_file()


RESUME_GRACE_S = 10.0  # graphrec train --resume waits this long for a just-stopped process to let go of the folder


class RunLock:
    """An exclusive lock on a run folder (fcntl.flock on the folder itself), held while one process trains into it.

    A second process gets a one-line GraphrecError (`in_use`, else one about a run). The lock writes no file,
    follows the folder through its rename at publication, and ends with release(), the process, or garbage
    collection; without fcntl (Windows) it is a no-op.
    """

    def __init__(self, run_dir: Path, in_use: Optional[str] = None, wait: float = 0.0) -> None:
        """`wait`: seconds to keep trying while another process holds the lock (one that was just stopped may still
        be exiting: torchrun's ranks outlive torchrun by a moment)."""
        self.fd: Optional[int] = None
        try:
            import fcntl
        except ImportError:
            return
        fd = os.open(run_dir, os.O_RDONLY)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                os.close(fd)
                raise GraphrecError(in_use or f"run folder '{run_dir}' is in use by another graphrec process (training "
                                    "or resuming it); wait for that one to finish, or stop it first") from None
        self.fd = fd

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_held(run_dir: Path) -> Optional[bool]:
    """Whether a process holds run_dir's RunLock now, read from /proc/locks (nothing is locked or written); None
    where the system keeps no such table (not Linux) or the folder is gone."""
    try:
        table = Path("/proc/locks").read_text()
        st = os.stat(run_dir)
    except OSError:
        return None
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields or "FLOCK" not in fields:  # a waiter's line, or a POSIX lock: not a RunLock
            continue
        device = fields[fields.index("FLOCK") + 4].split(":")  # FLOCK ADVISORY WRITE <pid> <maj:min:inode>
        if len(device) == 3 and (int(device[0], 16), int(device[1], 16), int(device[2])) == wanted:
            return True
    return False


def check_resumable(run_dir: Path) -> None:
    """One-line errors when run_dir is not a run folder that --resume can continue: missing, no config.yaml or
    last.pt, or marked failed."""
    if not run_dir.is_dir():
        raise GraphrecError(f"--resume '{run_dir}': no such run folder; pass runs/<name>-<time>/ "
                            "as printed by graphrec train")
    if not (run_dir / "config.yaml").is_file():
        raise GraphrecError(f"--resume '{run_dir}' is not a run folder (no config.yaml); pass runs/<name>-<time>/")
    reason = failure_reason(run_dir)
    if reason is not None:
        raise GraphrecError(f"--resume '{run_dir}': the run failed ({reason}); a failed run is not continued: start "
                            "a new run with graphrec train CONFIG")
    if not (run_dir / "last.pt").is_file():
        raise GraphrecError(f"--resume '{run_dir}': no last.pt (the run saved no checkpoint); start a new run "
                            "with graphrec train CONFIG")


def run_metadata(seed: int) -> dict:
    """Seed, versions, thread count, git commit and the run's tracking id (its W&B run id, kept by --resume), saved
    beside every run as run.json."""
    import numpy as np
    import torch
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"seed": seed, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "threads": torch.get_num_threads(), "git_commit": commit,
            "platform": platform.platform(), "command": " ".join(sys.argv),
            "tracking_id": os.environ.get("WANDB_RUN_ID") or secrets.token_hex(4)}  # a W&B sweep agent names its run


def read_run_metadata(run_dir: Path) -> dict:
    """A run folder's run.json ({} when it has none or it is unreadable: metadata never blocks a run)."""
    try:
        data = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def config_differences(ours: dict, theirs: dict, prefix: tuple = ()) -> list[tuple[tuple, object, object]]:
    """(key path, our value, their value) for every key both nested dicts hold with different values, sorted.

    Keys only one side holds do not count: a newer graphrec may add keys (with defaults) to an older run's config.
    """
    out = []
    for key in sorted(set(ours) & set(theirs), key=str):
        a, b = ours[key], theirs[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, prefix + (key,))
        elif a != b:
            out.append((prefix + (key,), a, b))
    return out


def first_difference(ours: dict, theirs: dict, ignore: set[str] = frozenset()) -> Optional[tuple[str, object, object]]:
    """The first differing key path as 'a.b' (skipping paths in `ignore` and below them), with both values."""
    for path, a, b in config_differences(ours, theirs):
        dotted = ".".join(map(str, path))
        if not any(dotted == i or dotted.startswith(i + ".") for i in ignore):
            return dotted, a, b
    return None
