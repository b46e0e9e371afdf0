"""The offline agent: each proposal a `graphrec train` subprocess, N at once, recorded in the sweep folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import yaml

from ..atomic import atomic_write_json, atomic_write_text
from ..config import read_yaml
from ..errors import GraphrecError
from ..runs import RunLock
from .engine import Engine, Observation
from .hyperband import runs_to_stop
from .numbers import parse_number_list
from .runlog import append_record, end_cut_line, logged_seconds, metric_history, read_runs, run_folders
from .spec import SweepSpec, load_sweep, set_args

POLL_SECONDS = 0.25
ERROR_TAIL_LINES = 6


def portable_base(base: Path) -> dict:
    """The base experiment as a mapping that loads from any folder: a data.path relative to the base's folder or
    the working folder becomes absolute (names under $GRAPHREC_DATA stay as they are)."""
    raw = read_yaml(base)
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        path = Path(os.path.expanduser(data["path"]))
        found = [c for c in (base.parent / path, Path.cwd() / path) if not path.is_absolute() and c.exists()]
        if found:
            raw = {**raw, "data": {**data, "path": str(found[0].resolve())}}
    return raw


def claim_folder(parent: Path, name: str) -> Path:
    """Create and return parent/<name>-<time>[-n]; mkdir without exist_ok claims the name atomically."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = parent / f"{name}-{stamp}", 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, suffix = parent / f"{name}-{stamp}-{suffix}", suffix + 1


def create_sweep_folder(spec: SweepSpec, count: Optional[int], overrides: list[str],
                        sweep_dir: Optional[Path] = None, trials: Optional[list[int]] = None) -> Path:
    """sweeps/<name>-<time>/ with sweep.yaml (base: base.yaml), base.yaml (a snapshot) and sweep.json (with
    `trials`, the proposal indices this folder runs, when it runs only some)."""
    if sweep_dir is None:
        folder = claim_folder(Path.cwd() / "sweeps", spec.name)
    else:
        folder = Path(sweep_dir)
        if folder.exists() and any(folder.iterdir()):
            raise GraphrecError(f"sweep folder '{folder}' is not empty; continue it with graphrec sweep --resume "
                                f"{folder} or choose a new folder")
        folder.mkdir(parents=True, exist_ok=True)
    header = f"# {spec.base} as it was when sweep {folder.name} started\n"
    if overrides:  # not in this snapshot: `graphrec train base.yaml` alone would not train what the runs trained
        header += (f"# every run also applies --set {' --set '.join(overrides)} (sweep.json 'overrides'); each run "
                   "folder's config.yaml is the whole config\n")
    atomic_write_text(folder / "base.yaml", header + yaml.safe_dump(portable_base(spec.base), sort_keys=False))
    atomic_write_text(folder / "sweep.yaml", f"# {spec.path} (base: {spec.raw['base']})\n"
                      + yaml.safe_dump({**spec.raw, "base": "base.yaml"}, sort_keys=False))
    atomic_write_json(folder / "sweep.json", {"sweep_file": str(spec.path.resolve()), "base": str(spec.base),
                                              "count": count, "overrides": overrides, "method": spec.method,
                                              **({"trials": trials} if trials is not None else {}),
                                              "created": datetime.now().isoformat(timespec="seconds")})
    (folder / "runs").mkdir()
    (folder / "logs").mkdir()
    return folder


def open_sweep_folder(folder: Path, option: str = "--resume") -> dict:
    """sweep.json of an existing sweep folder; a one-line error for anything else, naming the `option` the folder
    was passed to."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GraphrecError(f"{option} '{folder}': no such folder; pass sweeps/<name>-<time>/ as printed by "
                            "graphrec sweep")
    if not (folder / "sweep.json").is_file() or not (folder / "sweep.yaml").is_file():
        raise GraphrecError(f"{option} '{folder}' is not a sweep folder (no sweep.json and sweep.yaml); pass "
                            "sweeps/<name>-<time>/ as printed by graphrec sweep")
    return json.loads((folder / "sweep.json").read_text())


def run_name_prefix(folder: Path) -> str:
    """The name a sweep's runs are named after (runs/<name>-<run id>-<time>): its base experiment's `name`."""
    return str(read_yaml(Path(folder) / "base.yaml").get("name", "run"))


def sweep_lock(folder: Path) -> RunLock:
    """The lock an agent holds on its sweep folder while it works on it: a second agent gets a one-line error, and
    report tells live runs from interrupted ones."""
    return RunLock(folder, in_use=f"sweep folder '{folder}' is in use by another graphrec sweep; wait for it to "
                   "end, or stop it (Ctrl-C) and run graphrec sweep --resume again")


def usable_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def child_env(threads: int) -> dict[str, str]:
    """The environment of a run: this graphrec first on the path, its share of the cores, unbuffered output."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return env


def train_args(base: Path, params: dict[str, Any], extra: list[str]) -> list[str]:
    """`train BASE --set ...`: the sweep's settings, then --set, then the run's params."""
    args = ["train", str(base)]
    for text in extra + set_args(params):
        args += ["--set", text]
    return args


def run_command(base: Path, params: dict[str, Any], extra: list[str]) -> list[str]:
    """`python -m graphrec.cli train BASE --set ...` (train_args as a process)."""
    return [sys.executable, "-m", "graphrec.cli", *train_args(base, params, extra)]


def runs_in_sweep(engine: Engine, count: Optional[int]) -> int:
    """How many runs the sweep makes: --count, capped at a grid's combinations (all of them without --count)."""
    size = engine.size()
    total = size if count is None else (min(count, size) if size is not None else count)
    if total is None:
        raise GraphrecError(f"method {engine.spec.method} proposes without end; pass --count N")
    return total


def proposal_id(index: int) -> str:
    """The id of a sweep's proposal `index`: r000, r001, ..."""
    return f"r{index:03d}"


def trial_indices(engine: Engine, trials_text: Optional[str], count: Optional[int]) -> Optional[list[int]]:
    """The proposal indices --trials names (None without it): grid and random sweeps only, whose run rNNN has the
    same parameters whichever runs came before it; a grid's indices must exist."""
    if trials_text is None:
        return None
    if count is not None:
        raise GraphrecError(f"--trials {trials_text} names the runs itself; drop --count {count}")
    if engine.spec.method == "bayes":
        raise GraphrecError(f"--trials {trials_text}: a bayes sweep's proposals depend on the runs before them, so "
                            "one cannot be run alone; use method: random or grid")
    indices = parse_number_list(trials_text, "--trials", "trial")
    size = engine.size()
    if size is not None and max(indices) >= size:
        raise GraphrecError(f"--trials {trials_text}: the grid has {size} combinations, r000-{proposal_id(size - 1)}")
    return indices


def sweep_settings(spec: SweepSpec, overrides: list[str]) -> list[str]:
    """The --set texts every run of the sweep shares: selection by the sweep's metric, then the sweep's --set."""
    return [f"train.select_metric={spec.select_metric()}", *overrides]


def plan_offline(sweep_file: str | Path, count: Optional[int] = None, overrides: Optional[list[str]] = None,
                 trials: Optional[str] = None) -> list[tuple[str, list[str]]]:
    """The runs an offline sweep would start (all, or those --trials names), none started and nothing written:
    (run id, `graphrec train` arguments) per run. Grid and random sweeps only: a bayes proposal depends on the
    results before it."""
    if count is not None and count < 1:
        raise GraphrecError(f"--count {count}: give 1 or more")
    overrides = list(overrides or [])
    spec = load_sweep(sweep_file, overrides)
    if spec.method == "bayes":
        raise GraphrecError(f"{sweep_file}: --dry-run lists grid and random sweeps; a bayes sweep's proposals "
                            "depend on the results of the runs before them")
    engine = Engine(spec)
    indices = trial_indices(engine, trials, count) or range(runs_in_sweep(engine, count))
    base = Path(os.path.relpath(spec.base)) if spec.base.resolve().is_relative_to(Path.cwd()) else spec.base
    return [(proposal_id(index), train_args(base, engine.propose(index, []).params, sweep_settings(spec, overrides)))
            for index in indices]


def resume_command(run_dir: Path, threads: int) -> list[str]:
    """`python -m graphrec.cli train --resume RUN_DIR`, with this agent's thread share (a key resume may change)."""
    return [sys.executable, "-m", "graphrec.cli", "train", "--resume", str(run_dir),
            "--set", f"train.threads={threads}", "--set", "train.progress=false"]


@dataclass
class LiveRun:
    """A run whose process is alive."""

    id: str
    params: dict[str, Any]
    draw: dict[str, Any]
    process: subprocess.Popen
    log_path: Path
    known_folders: set[str]
    started: float = field(default_factory=time.monotonic)
    run_dir: Optional[Path] = None
    stopping: bool = False
    earlier_seconds: float = 0.0  # a resumed run's logged time before its resume


class Sweep:
    """One sweep folder being worked on: proposes, launches, watches and records runs."""

    def __init__(self, folder: Path, spec: SweepSpec, count: Optional[int], workers: int, overrides: list[str],
                 threads: Optional[int] = None, retry_failed: bool = False, trials: Optional[list[int]] = None):
        self.folder, self.spec, self.workers, self.overrides = folder, spec, workers, overrides
        self.retry_failed, self.trials = retry_failed, trials
        self.engine = Engine(spec)
        self.count = len(trials) if trials is not None else runs_in_sweep(self.engine, count)
        self.threads = threads or max(1, usable_cores() // workers)
        self.runs_file = folder / "runs.jsonl"
        end_cut_line(self.runs_file)
        self.records = read_runs(self.runs_file)
        self.live: dict[str, LiveRun] = {}
        self.base_name = run_name_prefix(folder)

    # ---- records -------------------------------------------------------------------------------------
    def _record(self, run_id: str, **fields: Any) -> None:
        record = {"id": run_id, "time": datetime.now().isoformat(timespec="seconds"), **fields}
        append_record(self.runs_file, record)
        self.records[run_id] = {**self.records.get(run_id, {}), **record}

    def _history(self) -> list[Observation]:
        return [Observation(r["draw"], r.get("metric"), r["status"]) for r in self.records.values()]

    def _next_index(self) -> int:
        """The proposal index of the next new run: the next of `trials` not yet started, else the next in order."""
        if self.trials is None:
            return len(self.records)
        return next(index for index in self.trials if proposal_id(index) not in self.records)

    def _target_reached(self) -> bool:
        target = self.spec.target
        values = [r["metric"] for r in self.records.values() if r.get("metric") is not None]
        return target is not None and any(v == target or self.spec.better(v, target) for v in values)

    # ---- processes -----------------------------------------------------------------------------------
    def _launch(self, run_id: str, params: dict[str, Any], draw: dict[str, Any],
                resume_dir: Optional[Path] = None) -> None:
        """Start run `run_id` (or continue it from resume_dir's last.pt) as a graphrec process."""
        runs_dir = self.folder / "runs"
        name = f"{self.base_name}-{run_id}"
        extra = [f"output_dir={runs_dir}", f"name={name}", f"train.threads={self.threads}", "train.progress=false",
                 *sweep_settings(self.spec, self.overrides)]
        log_path = self.folder / "logs" / f"{run_id}.log"
        before_resume = logged_seconds(resume_dir) if resume_dir is not None else 0.0
        known = {p.name for p in run_folders(self.folder, self.base_name, run_id)}
        command = (resume_command(resume_dir, self.threads) if resume_dir is not None
                   else run_command(self.folder / "base.yaml", params, extra))
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env(self.threads))
        self.live[run_id] = LiveRun(run_id, params, draw, process, log_path, known, run_dir=resume_dir,
                                    earlier_seconds=before_resume)
        origin = {"resumed_from": str(resume_dir.relative_to(self.folder))} if resume_dir is not None else {}
        earlier = self.records.get(run_id, {})
        if earlier.get("status") == "failed":  # run again from scratch (--retry-failed): the failure is history
            origin = {"failed_before": earlier.get("run_dir"), "error": None, "exit_code": None}
        self._record(run_id, status="running", params=params, draw=draw, log=str(log_path.relative_to(self.folder)),
                     threads=self.threads, **origin)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        how = f"resumed from {resume_dir.name}/last.pt" if resume_dir is not None else "started"
        print(f"sweep: {run_id} {how} ({shown})", file=sys.stderr)

    def _unfinished_run_dir(self, run_id: str) -> Optional[Path]:
        """The newest published run folder of run_id with a last.pt (a run the kill interrupted), if any."""
        folders = [p for p in run_folders(self.folder, self.base_name, run_id) if (p / "last.pt").is_file()]
        return folders[-1] if folders else None

    def _find_run_dir(self, run: LiveRun) -> Optional[Path]:
        if run.run_dir is None:
            fresh = [p for p in run_folders(self.folder, self.base_name, run.id) if p.name not in run.known_folders]
            run.run_dir = fresh[-1] if fresh else None
        return run.run_dir

    def _finish(self, run: LiveRun) -> None:
        code = run.process.returncode
        run_dir = self._find_run_dir(run)
        seconds = round(time.monotonic() - run.started + run.earlier_seconds, 2)
        folder = str(run_dir.relative_to(self.folder)) if run_dir else None
        metrics_file = run_dir / "metrics.json" if run_dir else None
        if code == 0 and metrics_file is not None and metrics_file.is_file():
            metric = json.loads(metrics_file.read_text()).get(self.spec.metric)
            self._record(run.id, status="finished", run_dir=folder, metric=metric, seconds=seconds)
            print(f"sweep: {run.id} finished {self.spec.metric}={metric} ({seconds:.1f} s)", file=sys.stderr)
        elif run.stopping and code == 128 + signal.SIGTERM:
            curve = metric_history(run_dir, self.spec.metric) if run_dir else []
            best = (max if self.spec.goal == "maximize" else min)(curve) if curve else None
            self._record(run.id, status="stopped", run_dir=folder, metric=best, seconds=seconds,
                         evaluations=len(curve))
            print(f"sweep: {run.id} stopped by hyperband after {len(curve)} evaluations", file=sys.stderr)
        else:
            lines = [ln for ln in run.log_path.read_text(errors="replace").splitlines() if ln.strip()]
            tail = " | ".join(lines[-ERROR_TAIL_LINES:])[-1000:]
            self._record(run.id, status="failed", run_dir=folder, metric=None, seconds=seconds, exit_code=code,
                         error=tail)
            print(f"sweep: {run.id} failed (exit {code}); see {run.log_path}", file=sys.stderr)

    def _early_terminate(self) -> None:
        """SIGTERM the running runs that hyperband stops (graphrec saves last.pt and exits 143)."""
        curves = {}
        for run_id, record in self.records.items():
            live = self.live.get(run_id)
            run_dir = self._find_run_dir(live) if live else (self.folder / record["run_dir"]
                                                             if record.get("run_dir") else None)
            if run_dir is not None:
                curves[run_id] = metric_history(run_dir, self.spec.metric)
        running = {run_id for run_id, run in self.live.items() if not run.stopping}
        for run_id in runs_to_stop(self.spec.hyperband, curves, running, self.spec.goal == "maximize"):
            self.live[run_id].stopping = True
            self.live[run_id].process.send_signal(signal.SIGTERM)

    def _stop_all(self) -> None:
        """On an interrupt: ask every live run to save last.pt and stop, and wait; they stay `running` in runs.jsonl,
        so --resume runs them again."""
        for run in self.live.values():
            if run.process.poll() is None:
                run.process.send_signal(signal.SIGTERM)
        for run in self.live.values():
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.process.kill()

    # ---- the loop ------------------------------------------------------------------------------------
    def _pending(self) -> list[tuple[str, dict, dict, Optional[Path]]]:
        """Runs left `running` by a killed sweep: continued from their last.pt where they saved one (an exact
        resume), else run again with the same parameters."""
        return [(run_id, r["params"], r["draw"], self._unfinished_run_dir(run_id))
                for run_id, r in self.records.items() if r["status"] == "running" and run_id not in self.live]

    def _failed(self) -> list[tuple[str, dict, dict, None]]:
        """With retry_failed: the failed runs, run again from scratch with their parameters (a new run folder)."""
        if not self.retry_failed:
            return []
        return [(run_id, r["params"], r["draw"], None) for run_id, r in self.records.items()
                if r["status"] == "failed" and run_id not in self.live]

    def run(self) -> None:
        """Launch until `count` runs are done (at most `workers` at once), watching for hyperband stops."""
        queue, failed = self._pending(), self._failed()
        if queue:
            print(f"sweep: continuing {len(queue)} run(s) left unfinished: {', '.join(q[0] for q in queue)}",
                  file=sys.stderr)
        if failed:
            print(f"sweep: running {len(failed)} failed run(s) again from scratch: {', '.join(q[0] for q in failed)}",
                  file=sys.stderr)
            queue += failed
        try:  # SIGTERM of the agent stops its runs as Ctrl-C does (main thread only)
            previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        except ValueError:
            previous = None
        try:
            while True:
                while len(self.live) < self.workers and (queue or (len(self.records) < self.count
                                                                   and not self._target_reached())):
                    if queue:
                        self._launch(*queue.pop(0))
                        continue
                    index = self._next_index()
                    proposal = self.engine.propose(index, self._history())
                    if proposal is None:
                        self.count = len(self.records)
                        break
                    self._launch(proposal_id(index), proposal.params, proposal.draw)
                if not self.live:
                    break
                time.sleep(POLL_SECONDS)
                for run_id, run in list(self.live.items()):
                    if run.process.poll() is not None:
                        self._finish(run)
                        del self.live[run_id]
                if self.spec.hyperband is not None and self.live:
                    self._early_terminate()
        except KeyboardInterrupt:
            self._stop_all()
            print(f"sweep: interrupted; continue with: graphrec sweep --resume {self.folder}", file=sys.stderr)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def check_retry_failed(retry_failed: bool, resume: bool) -> None:
    """Failed runs are retried only in an existing sweep folder (--resume)."""
    if retry_failed and not resume:
        raise GraphrecError("--retry-failed continues a sweep folder: graphrec sweep --resume sweeps/<name>-<time>/ "
                            "--retry-failed")


def run_offline(sweep_file: Optional[str | Path], count: Optional[int] = None, workers: int = 1,
                overrides: Optional[list[str]] = None, sweep_dir: Optional[str | Path] = None,
                resume: bool = False, threads: Optional[int] = None, retry_failed: bool = False,
                trials: Optional[str] = None) -> Path:
    """Run a sweep without W&B: a new sweep folder from `sweep_file` (with `trials`, e.g. '7-11', only those
    proposals, each with its parameters in the whole sweep), or with resume=True the folder `sweep_dir` continued
    (finished runs kept, runs left running run again; with retry_failed also the failed runs, from scratch). Each
    run gets `threads` threads (default: this process's cores split between the workers). Returns the sweep
    folder."""
    check_retry_failed(retry_failed, resume)
    if workers < 1:
        raise GraphrecError(f"--workers {workers}: give 1 or more")
    if threads is not None and threads < 1:
        raise GraphrecError(f"--threads {threads}: give 1 or more (threads per run; default: cores // workers)")
    if count is not None and count < 1:
        raise GraphrecError(f"--count {count}: give 1 or more")
    if resume:
        if sweep_dir is None:
            raise GraphrecError("--resume needs the sweep folder, e.g. graphrec sweep --resume sweeps/<name>-<time>/")
        if overrides:
            raise GraphrecError("--set cannot change a sweep being resumed: its runs keep the --set it started with")
        if trials is not None and count is not None:
            raise GraphrecError(f"--trials {trials} names the runs itself; drop --count {count}")
        folder = Path(sweep_dir)
        state = open_sweep_folder(folder)
        lock = sweep_lock(folder)
        overrides = list(state.get("overrides") or [])
        indices = state.get("trials")
        if indices is not None and count is not None:
            raise GraphrecError(f"--count {count}: sweep folder '{folder}' runs the trials it was started with "
                                "(--trials); resume it without --count, or with --trials to change them")
        spec = load_sweep(folder / "sweep.yaml", overrides)
        if trials is not None:
            indices, count = retrial(folder, spec, trials), None
        else:
            count = count if count is not None else state.get("count")
    else:
        if sweep_file is None:
            raise GraphrecError("graphrec sweep needs a sweep file (e.g. experiments/sweeps/lightgcn-quickstart.yaml) "
                                "or --resume SWEEP_DIR")
        overrides = list(overrides or [])
        spec = load_sweep(sweep_file, overrides)
        engine = Engine(spec)  # a missing engine, bad --trials or an endless sweep is reported before the folder
        indices = trial_indices(engine, trials, count)
        if indices is None:
            runs_in_sweep(engine, count)
        folder = create_sweep_folder(spec, count, overrides, Path(sweep_dir) if sweep_dir else None, indices)
        spec = load_sweep(folder / "sweep.yaml", overrides)
        lock = sweep_lock(folder)
        print(f"sweep folder: {folder}", file=sys.stderr)
    with lock:
        if resume and (count, indices) != (state.get("count"), state.get("trials")):
            atomic_write_json(folder / "sweep.json", {**state, "count": count,
                                                      **({"trials": indices} if indices is not None else {})})
        Sweep(folder, spec, count, workers, overrides, threads, retry_failed, indices).run()
    return folder


def retrial(folder: Path, spec: SweepSpec, trials_text: str) -> list[int]:
    """A resumed folder's new trials (`--resume DIR --trials 6-9`), so that the ones it gives up can run in another
    folder at once (`--trials 10-11` there): they must keep every run the folder has already begun."""
    indices = trial_indices(Engine(spec), trials_text, None)
    begun, kept = sorted(read_runs(folder / "runs.jsonl")), {proposal_id(i) for i in indices}
    dropped = [run_id for run_id in begun if run_id not in kept]
    if dropped:
        raise GraphrecError(f"--trials {trials_text}: sweep folder '{folder}' has already begun {', '.join(dropped)}; "
                            "keep every begun run in --trials (begun: " + ", ".join(begun) + ")")
    return indices
