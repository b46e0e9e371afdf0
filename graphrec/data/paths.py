"""Where data.path (and every path that resolves like it, e.g. data.item_features) points: resolved in one place."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Optional

from ..errors import GraphrecError
from ..schema import Config


def resolve_data_path(cfg: Config) -> Optional[Path]:
    """data.path as: absolute; else relative to the YAML file or the working folder; else under $GRAPHREC_DATA
    (default ../shared/data)."""
    if cfg.data.path is None:
        return None
    return resolve_config_path(cfg.data.path, cfg.base_dir, "data.path", fetch_hint(cfg.data.path))


def datasets_folder() -> Path:
    """Where bare dataset names resolve: $GRAPHREC_DATA, else ../shared/data from the working folder."""
    env = os.environ.get("GRAPHREC_DATA")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def fetch_hint(name: str) -> Optional[str]:
    """How to get a dataset graphrec knows by name (`graphrec data list`) when it is not on this machine, or None."""
    from .catalog import CATALOG
    entry = CATALOG.get(name)
    if entry is None:
        return None
    if entry.url is None:
        return (f"'{name}' is a dataset graphrec knows but cannot download: get {', '.join(entry.files)} from "
                f"{entry.source}, then graphrec data fetch {name} --mirror DIR --out {datasets_folder()}")
    return f"'{name}' is a dataset graphrec knows: graphrec data fetch {name} --out {datasets_folder()} gets it"


def resolve_config_path(value: str, base_dir: str, key: str, fix: Optional[str] = None) -> Path:
    """The existing file or folder a config value names: absolute; else relative to the YAML file's folder
    (`base_dir`) or the working folder; else under $GRAPHREC_DATA. One-line error naming `key` (and `fix`,
    when given, as the way out) otherwise."""
    path = Path(os.path.expanduser(value))
    candidates = [path] if path.is_absolute() else [Path(base_dir) / path, Path.cwd() / path]
    env = os.environ.get("GRAPHREC_DATA")
    data_root = datasets_folder()
    if not path.is_absolute():
        candidates.append(data_root / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
        if os.path.lexists(candidate):  # a symbolic link to nothing (a loop, or a missing target)
            raise GraphrecError(f"{key} '{value}': {os.path.abspath(candidate)} is a symbolic link that leads nowhere "
                                f"(a loop, or its target is missing); point {key} at the real file or folder")
    tried = ", ".join(dict.fromkeys(os.path.abspath(c) for c in candidates))
    known = sorted(p.name for p in data_root.iterdir()) if data_root.is_dir() else []
    close = difflib.get_close_matches(str(path), known, n=1, cutoff=0.75)
    hint = fix or (f"did you mean '{close[0]}'?" if close else
                   "give a path relative to the YAML file, an absolute one, or a folder under $GRAPHREC_DATA"
                   + ("" if env else " (GRAPHREC_DATA is not set)"))
    raise GraphrecError(f"{key} '{value}' not found (looked in {tried}); {hint}")
