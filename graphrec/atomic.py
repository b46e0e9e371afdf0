"""Atomic file writes: readers see the old file or the whole new one, never a part (stdlib only, so commands
that only write files start without torch)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


# Temp files being written right now; an immediate exit (a second Ctrl-C) removes them first.
_IN_FLIGHT: set[str] = set()
TEMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` so that readers see the old file or the whole new one, never a part.

    Temp file in the same folder, fsync, os.replace, then fsync of the folder so the rename itself is durable.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    _IN_FLIGHT.add(tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        _IN_FLIGHT.discard(tmp)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def discard_in_flight() -> None:
    """Delete temp files of writes still in progress (called before an immediate exit); never raises."""
    for tmp in list(_IN_FLIGHT):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files that a killed writer left in `folder` (.<name>.<random>.tmp); returns them."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if str(tmp) not in _IN_FLIGHT:
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write_bytes for text."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    """atomic_write_bytes for pretty JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
