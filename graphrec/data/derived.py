"""Derived-data folders: written whole into a temp folder beside the target, then renamed; with a SOURCE.json."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import GraphrecError


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_out_folder(out: Path, flag: str = "--out") -> None:
    """One-line error, before any work, when `out` exists with content or is a file."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraphrecError(f"{flag} '{out}' already exists and is not an empty folder; remove it or choose "
                            "another folder (nothing was written)")


def write_folder_atomically(out: Path, fill: Callable[[Path], dict[str, Any]], command: str,
                            inputs: list[Path], seed: int) -> dict[str, Any]:
    """Run fill(temp_folder) -> SOURCE.json extras, add SOURCE.json (command, inputs' sha256, seed, version),
    then rename the folder to `out`; nothing is left behind on failure. Returns the SOURCE record."""
    out = Path(out)
    check_out_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        record = {"command": command,
                  "inputs": [{"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size,
                              "sha256": file_sha256(Path(p))} for p in inputs],
                  "seed": seed, "graphrec_version": __version__}
        record.update(fill(tmp))
        (tmp / "SOURCE.json").write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
