"""Shared pieces of the benchmarks: environment facts, timing, tables, docs/benchmarks.md, subprocess workers."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
RESULTS = Path(__file__).resolve().parent / "results.json"
CACHE = Path(os.environ.get("GRAPHREC_BENCH_CACHE", Path.home() / ".cache" / "graphrec-bench"))
PAPER_RECALL20_GOWALLA = 0.1830  # LightGCN paper, Table 3, Gowalla Recall@20
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # --clock: cpu counts this process's CPU only
START_LOAD = [os.getloadavg()[0]]  # 1-minute load average when the command started (reset by __main__)


# ---- environment -------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_commit() -> str:
    """Short commit of the repository (with '+dirty' when graphrec/ has uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "graphrec"], capture_output=True, text=True,
                               cwd=REPO, timeout=5).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name() -> str:
    """graphrec's device in these benchmarks (--device), with the GPU's name on CUDA."""
    import torch
    device = os.environ.get("GRAPHREC_BENCH_DEVICE", "cpu")
    return f"{device} ({torch.cuda.get_device_name()})" if device.startswith("cuda") else device


def environment(threads: int, recbole_version: Optional[str] = None) -> dict[str, Any]:
    """Date, CPU, threads, library versions, load average and commit: the header of every result."""
    import torch
    try:
        import torch_geometric
        pyg = torch_geometric.__version__
    except ImportError:
        pyg = "not installed"
    return {"date": datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": threads, "torch": torch.__version__, "pyg": pyg,
            "recbole": recbole_version or "not run", "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default)"),
            "load_avg_start": round(START_LOAD[0], 2), "load_avg_end": round(os.getloadavg()[0], 2),
            "commit": git_commit(), "device": device_name(),
            "command": "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:])}


def env_line(env: dict[str, Any]) -> str:
    """One line with the environment facts for the printed and written header."""
    return (f"{env['date']} | {env['cpu']} ({env['cores']} cores) | {env['threads']} threads | torch {env['torch']} | "
            f"PyG {env['pyg']} | RecBole {env['recbole']} | Python {env['python']} | OMP_WAIT_POLICY "
            f"{env.get('omp_wait_policy', '?')} | 1-min load avg "
            f"{env['load_avg_start']} at start, {env['load_avg_end']} at end | graphrec {env['commit']}"
            + (f" | graphrec on {env['device']}" if env.get("device", "cpu") != "cpu" else ""))


def busy_note(env: dict[str, Any]) -> Optional[str]:
    """A warning when other processes loaded the CPU during the run (timings then are noisier)."""
    load = max(env["load_avg_start"], env["load_avg_end"])
    if load > 0.75 * (env["cores"] or 1) + 0.5:
        return (f"note: the machine was busy (1-min load average up to {load} on {env['cores']} cores): other "
                "processes competed for the CPU, so absolute times are inflated; ratios within the run are "
                "more reliable.")
    return None


def set_threads(threads: int) -> None:
    """Fix the intra-op thread count of this process (and of the BLAS/OpenMP pools of its children)."""
    import torch
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    import psutil
    return psutil.Process().memory_info().rss / 2 ** 20


def available_mib() -> float:
    """Memory the OS reports as available now, MiB."""
    import psutil
    return psutil.virtual_memory().available / 2 ** 20


# ---- timing ------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Per-call seconds of one measured operation."""

    seconds: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.seconds.append(value)

    @property
    def n(self) -> int:
        return len(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds) if self.seconds else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def total(self) -> float:
        return sum(self.seconds)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ---- formatting --------------------------------------------------------------------------------------
def fmt_s(seconds: Optional[float]) -> str:
    """Seconds with a unit that keeps 3 significant digits: 12.3 ms, 4.56 s, 1.2 h."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def fmt_x(ratio: Optional[float]) -> str:
    """A ratio as 0.42x / 3.1x / 120x."""
    if ratio is None or math.isnan(ratio) or math.isinf(ratio):
        return "n/a"
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.0f}x"


def fmt_mib(mib: Optional[float]) -> str:
    """MiB as '812 MiB' or '3.4 GiB'."""
    if mib is None or math.isnan(mib):
        return "n/a"
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def fmt_count(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def parse_count(text: str) -> int:
    """'1M' / '300k' / '2.5M' / '1000' -> int."""
    text = text.strip().lower()
    mult = {"k": 1e3, "m": 1e6, "g": 1e9}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "kmg" else text) * mult)


@dataclass
class Table:
    """A titled markdown table with optional notes under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


# ---- results and docs --------------------------------------------------------------------------------
def load_results() -> dict[str, Any]:
    """benchmarks/results.json: the latest numbers of each command (feeds the summary in docs)."""
    if RESULTS.is_file():
        try:
            return json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def publish(command: str, tables: Sequence[Table], env: dict[str, Any], results: dict[str, Any],
            write: bool) -> None:
    """Print the tables; unless write is False, store results and append the section to docs/benchmarks.md."""
    print(env_line(env))
    note = busy_note(env)
    if note:
        print(note)
        tables = list(tables)
        tables[0].notes.append(note)
    for table in tables:
        print()
        print(table.markdown())
    if not write:
        print("\n(not written to docs/benchmarks.md: --quick or --no-write)")
        return
    stored = load_results()
    stored[command] = {"env": env, **results}
    RESULTS.write_text(json.dumps(stored, indent=1, sort_keys=True, default=float) + "\n")
    from .docs import append_section, write_summary
    append_section(command, tables, env)
    write_summary(stored)
    print(f"\nappended to {DOCS.relative_to(REPO)} and updated its summary")


# ---- subprocess workers ------------------------------------------------------------------------------
def run_worker(kind: str, spec: dict[str, Any], threads: int, timeout: float = 3600,
               env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Run `python -m benchmarks _worker kind` in a fresh process (with `env` added to its environment); returns its
    JSON result or {'error': ...}."""
    with tempfile.TemporaryDirectory(prefix="graphrec-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks", "_worker", kind, json.dumps(spec), str(out), str(threads)]
        full_env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **(env or {}))
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if out.is_file():
            return json.loads(out.read_text())
        why = "killed by the OS (out of memory?)" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"{why}: {' / '.join(tail)}"}


def save_figure(fig: Any, path: Path) -> str:
    """Lay out, write and close a matplotlib figure; returns the 'plot: PATH' note line."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {repo_relative(path)}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the error into one usage line and exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def repo_relative(path: Path) -> Path:
    """`path` relative to the repository when inside it, so that docs/ names no machine's folders."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path
