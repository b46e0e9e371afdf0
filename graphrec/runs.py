"""Run folders: claiming a fresh one, the metadata saved beside every run, and comparing saved configs."""
from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def new_run_dir(output_dir: str, name: str) -> Path:
    """Create and return output_dir/<name>-<time>[-n]; mkdir without exist_ok claims the name atomically."""
    base = Path(output_dir)
    if not base.is_absolute():
        base = Path.cwd() / base
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = base / f"{name}-{stamp}", 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path = base / f"{name}-{stamp}-{suffix}"
            suffix += 1


def run_metadata(seed: int) -> dict:
    """Seed, versions, thread count and git commit, saved beside every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"seed": seed, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "threads": torch.get_num_threads(), "git_commit": commit,
            "platform": platform.platform(), "command": " ".join(sys.argv)}


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
