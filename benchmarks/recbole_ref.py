"""RecBole 1.2.1 as a reference: its own virtualenv outside the repo, the split as atomic files, a driver subprocess."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .common import CACHE

VENV = CACHE / "recbole-venv"
DRIVER = Path(__file__).resolve().parent / "recbole_driver.py"
PINS = ["recbole==1.2.1", "numpy<2", "pandas<2.3", "scipy<1.12", "setuptools<81"]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(log=print) -> Optional[str]:
    """Create ~/.cache/graphrec-bench/recbole-venv with torch (same version as ours) and RecBole; None or why not."""
    import torch
    py = venv_python()
    check = [str(py), "-c", "import recbole, torch; print(recbole.__version__)"]
    if py.exists() and subprocess.run(check, capture_output=True, text=True).returncode == 0:
        return None
    torch_pin = "torch==" + torch.__version__.split("+")[0]
    log(f"creating RecBole virtualenv at {VENV} ({torch_pin}, {' '.join(PINS)})")
    steps = [[sys.executable, "-m", "venv", str(VENV)],
             [str(py), "-m", "pip", "install", "-q", torch_pin],
             [str(py), "-m", "pip", "install", "-q", *PINS]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"`{' '.join(step[2:])}` failed: {tail[0]}"
    proc = subprocess.run(check, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"RecBole does not import in {VENV}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def write_atomic(dataset, name: str = "gowalla") -> Path:
    """The graphrec split as RecBole atomic files under the cache (never the repo); returns the data_path.

    train/test are graphrec's train and test events (same ids); valid holds one training pair, because
    RecBole's benchmark_filename wants three files and a pair already in train changes no masking.
    """
    train, test = dataset.train, dataset.tests["test"]
    digest = hashlib.sha1(np.concatenate([train.keys(dataset.num_items), test.keys(dataset.num_items)]).tobytes())
    root = CACHE / "recbole-data" / f"{name}-{digest.hexdigest()[:12]}"
    folder = root / name
    if (folder / f"{name}.test.inter").is_file():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    for split, events in (("train", train), ("valid", train.take(np.arange(1))), ("test", test)):
        tmp = folder / f".{name}.{split}.inter.tmp"
        with open(tmp, "w") as fh:
            fh.write("user_id:token\titem_id:token\n")
            np.savetxt(fh, np.stack([events.user, events.item], axis=1), fmt="%d", delimiter="\t")
        os.replace(tmp, folder / f"{name}.{split}.inter")
    return root


def run_driver(data_root: Path, threads: int, name: str = "gowalla", extra: Optional[list[str]] = None,
               timeout: float = 3600) -> dict[str, Any]:
    """Run the driver in the RecBole venv (cwd in the cache so its log/ and saved/ stay out of the repo)."""
    workdir = CACHE / "recbole-work"
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="graphrec-bench-recbole-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [str(venv_python()), str(DRIVER), "--data-dir", str(data_root), "--dataset", name, "--out", str(out),
               "--threads", str(threads), *(extra or [])]
        env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
        env.pop("PYTHONPATH", None)
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"RecBole driver timed out after {timeout:.0f} s"}
        if out.is_file():
            result = json.loads(out.read_text())
            if "error" in result:
                result["error"] = f"RecBole failed in stage '{result.get('stage')}': {result['error']}"
            return result
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        return {"error": f"RecBole driver exited {proc.returncode} without a result: {' / '.join(tail)}"}


def recbole(dataset, threads: int, extra: Optional[list[str]] = None, log=print) -> dict[str, Any]:
    """Install if needed, write the atomic files, run the driver; {'error': why} when any step fails."""
    why = ensure_venv(log)
    if why:
        return {"error": f"RecBole could not be installed: {why}"}
    name = "".join(c if c.isalnum() else "_" for c in dataset.name) or "data"
    try:
        root = write_atomic(dataset, name)
    except OSError as exc:
        return {"error": f"could not write RecBole atomic files under {CACHE}: {exc}"}
    log(f"running RecBole 1.2.1 driver on {root / name} ...")
    return run_driver(root, threads, name, extra=extra)
