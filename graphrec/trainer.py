"""The training loop: BPR batches, early stopping on validation, atomic checkpoints, exact resume, signals."""
from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import yaml
from tqdm import tqdm

from . import distributed as dist_utils
from .allocator import tune_allocator
from .checkpoint import (atomic_write_json, atomic_write_text, discard_in_flight, load_checkpoint,
                         module_generator_states, remove_stale_temps, rng_state, save_checkpoint, seed_everything,
                         set_module_generator_states, set_rng_state)
from .config import Config, config_to_dict, resolve_data_path
from .data.dataset import Dataset
from .data.loader import load_dataset
from .data.sampling import NegativeSampler, epoch_batches
from .errors import GraphrecError
from .evaluation import EvalResult, Evaluator
from .graph.adjacency import NormalizedAdjacency
from .models import get_model_class
from .models.base import Recommender
from .tracking import Tracker


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GraphrecError("device: cuda but no CUDA device is visible; set device: cpu or auto")
    return torch.device(name)


def build_model(cfg: Config, dataset: Dataset, device: torch.device) -> Recommender:
    """The configured model on `device`, over the normalized training graph."""
    cls = get_model_class(cfg.model["name"])
    graph = NormalizedAdjacency.from_numpy(dataset.train.user, dataset.train.item, dataset.num_users,
                                           dataset.num_items, device)
    return cls(cls.config_class(**cfg.model), dataset, graph).to(device)


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam (fused kernel where the build has one), AdamW or SGD with train.lr."""
    params = list(model.parameters())
    if cfg.train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.train.lr)
    cls = torch.optim.Adam if cfg.train.optimizer == "adam" else torch.optim.AdamW
    try:
        return cls(params, lr=cfg.train.lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=cfg.train.lr)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer
                    ) -> Optional[torch.optim.lr_scheduler.LRScheduler]:
    """The per-epoch learning-rate schedule of train.lr_schedule: None (constant), cosine to lr_min, or step."""
    train = cfg.train
    if train.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(train.epochs, 1), eta_min=train.lr_min)
    if train.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train.lr_milestones, gamma=train.lr_gamma)
    return None


def run_metadata(cfg: Config) -> dict:
    """Seed, versions, thread count and git commit, saved beside every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"seed": cfg.seed, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "threads": torch.get_num_threads(), "git_commit": commit,
            "platform": platform.platform(), "command": " ".join(sys.argv)}


def ddp_loss_scale(local_size: int, global_size: int, world_size: int) -> float:
    """Factor on a rank's batch-mean loss so that DDP's gradient average equals the global batch mean's gradient.

    DDP averages gradients over ranks: (1 / W) * sum_r grad(mean_r). The global batch mean is
    sum_r (b_r / B) * mean_r, so each rank scales its mean by b_r * W / B (exactly 1.0 when the shares are equal).
    Exact for losses that are means of per-sample terms (BPR, and the L2 term, which is a batch sum / batch size).
    """
    return local_size * world_size / global_size


@dataclass
class TrainState:
    """Everything that changes during training, saved in last.pt for an exact resume."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # global batches of epoch `epoch` already trained (non-zero after a mid-epoch stop)
    epoch_sums: list = field(default_factory=list)  # per rank: loss sums over those batches
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    history: list = field(default_factory=list)


class TrainingStopped(SystemExit):
    """Raised by fit() once a SIGINT/SIGTERM stop has saved last.pt; its exit code is 128 + the signal number."""


class StopRequest:
    """SIGINT/SIGTERM: the first asks to stop after the current batch, a second exits at once.

    The immediate exit deletes the temp file of a checkpoint being written, so no half-written file is left
    (checkpoints are renamed into place only when complete). A signal within `DUPLICATE_WINDOW` seconds of the
    first counts as the same interrupt: under torchrun a Ctrl-C reaches each rank twice, from the terminal
    and forwarded by the launcher. `request()` does what a first signal does.
    """

    DUPLICATE_WINDOW = 0.5

    def __init__(self, announce: bool = True) -> None:
        self.requested = False
        self.signum: Optional[int] = None
        self.announce = announce
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask the training loop to stop after the current batch."""
        if not self.requested:
            self._first_at = time.monotonic()
        self.requested = True
        if self.signum is None:
            self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (130 for SIGINT)."""
        return 128 + (self.signum or int(signal.SIGINT))

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        # os.write, not print: a handler may run while the main thread is inside a print to stderr.
        if self.requested:
            if time.monotonic() - self._first_at < self.DUPLICATE_WINDOW:
                return
            discard_in_flight()
            os.write(2, b"graphrec: second interrupt, exiting now (no checkpoint is half-written)\n")
            os._exit(128 + signum)
        self.request(signum)
        if self.announce:
            os.write(2, f"graphrec: {signal.Signals(signum).name} received; finishing the current batch and saving "
                        "last.pt (interrupt again to exit at once)\n".encode())

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Trainer:
    """Trains one config into one run folder; `fit()` returns the final metrics.

    Under torchrun every rank builds the same Trainer; rank 0 chooses the run folder and writes every file.
    """

    def __init__(self, cfg: Config, run_dir: Optional[Path] = None, resume: bool = False,
                 dataset: Optional[Dataset] = None):
        tune_allocator()
        if cfg.data.path is not None:
            cfg.data.path = str(resolve_data_path(cfg))
        self.cfg = cfg
        self.dist = dist_utils.init_from_env()
        self.is_writer = self.dist.rank == 0
        if cfg.train.select_metric not in self._metric_keys():
            raise GraphrecError(f"train.select_metric '{cfg.train.select_metric}' is not computed; choose one of "
                                f"{', '.join(self._metric_keys())} (eval.metrics x eval.topk)")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.device = resolve_device(cfg.device) if not self.dist.is_cuda else self.dist.device
        seed_everything(cfg.seed)
        self.dataset = dataset if dataset is not None else load_dataset(cfg)
        self.model = build_model(cfg, self.dataset, self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.sampler = NegativeSampler(self.dataset.train, self.dataset.num_users, self.dataset.num_items,
                                       self.device)
        self.train_users = torch.from_numpy(self.dataset.train.user).to(self.device)
        self.train_items = torch.from_numpy(self.dataset.train.item).to(self.device)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.evaluators = {name: Evaluator(self.dataset, name, cfg.eval.topk, cfg.eval.metrics,
                                           cfg.eval.max_score_elements, self.device)
                           for name in self.dataset.eval_splits()}
        self.state = TrainState()
        self.epoch_start_gen_state = self.sample_gen.get_state()
        self.last_saved: Optional[str] = None  # what last.pt holds, for error messages
        if run_dir is not None:
            self.run_dir = Path(run_dir)
        else:  # rank 0 claims a fresh folder and tells the others its name
            claimed = str(self._new_run_dir()) if self.is_writer else None
            self.run_dir = Path(self.dist.broadcast_object(claimed))
        if resume:
            self._resume()
        elif self.is_writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
            atomic_write_json(self.run_dir / "run.json", run_metadata(cfg))
            atomic_write_json(self.run_dir / "warnings.json", self.dataset.warnings.as_dict())
        self.ddp_model = self.dist.wrap(self.model)  # after _resume: DDP starts from rank 0's loaded parameters
        self.tracker = Tracker(cfg.tracking, self.run_dir, self.run_dir.name, config_to_dict(cfg), self.is_writer)

    def _metric_keys(self) -> list[str]:
        return [f"{m}@{k}" for k in self.cfg.eval.topk for m in self.cfg.eval.metrics]

    def _new_run_dir(self) -> Path:
        """Create and return output_dir/<name>-<time>[-n]; mkdir without exist_ok claims the name atomically."""
        base = Path(self.cfg.output_dir)
        if not base.is_absolute():
            base = Path.cwd() / base
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path, suffix = base / f"{self.cfg.name}-{stamp}", 1
        while True:
            try:
                path.mkdir()
                return path
            except FileExistsError:
                path = base / f"{self.cfg.name}-{stamp}-{suffix}"
                suffix += 1

    def _resume_command(self) -> str:
        launcher = (f"torchrun --nproc_per_node={self.dist.world_size} -m graphrec" if self.dist.distributed
                    else "graphrec")
        return f"{launcher} train --resume {self.run_dir}"

    # ---- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "state": asdict(self.state), "epoch_start_gen_state": self.epoch_start_gen_state,
                "model_generators": module_generator_states(self.model), "rng": rng_state(),
                "config": config_to_dict(self.cfg), "world_size": self.dist.world_size}

    def _save(self, name: str) -> None:
        """Write run_dir/name atomically (rank 0 only); every rank remembers what last.pt holds."""
        if self.is_writer:
            save_checkpoint(self.run_dir / name, self._checkpoint())
        if name == "last.pt":
            self.last_saved = _describe(self.state)

    def _resume(self) -> None:
        saved = load_checkpoint(self.run_dir / "last.pt")
        ours = config_to_dict(self.cfg)
        theirs = saved.get("config", {})
        ignore = {("train", "epochs"), ("train", "progress"), ("train", "threads"), ("tracking", "mode"),
                  ("output_dir",)}
        diffs = [k for k in _diff_keys(ours, theirs) if k not in ignore and k[:1] not in ignore]
        if diffs:
            key = ".".join(diffs[0])
            raise GraphrecError(f"--resume {self.run_dir}: config differs from the run's at '{key}' "
                                f"({_get(ours, diffs[0])!r} vs {_get(theirs, diffs[0])!r}); resume with the "
                                "run's own config (omit the config file) or start a new run")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved.get("scheduler") is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        known = {f.name for f in fields(TrainState)}
        self.state = TrainState(**{k: v for k, v in saved["state"].items() if k in known})
        if isinstance(self.state.epoch_sums, dict):  # one merged dict, as an older checkpoint may hold
            self.state.epoch_sums = [self.state.epoch_sums] if self.state.epoch_sums else []
        self.epoch_start_gen_state = saved["epoch_start_gen_state"]
        set_module_generator_states(self.model, saved.get("model_generators", {}))
        set_rng_state(saved["rng"])
        self.last_saved = _describe(self.state)
        if self.is_writer:
            remove_stale_temps(self.run_dir)  # left by a writer killed mid-save; the files themselves are whole
            # log.jsonl may hold an epoch that last.pt does not (killed between the two): rewrite it from the state
            atomic_write_text(self.run_dir / "log.jsonl",
                              "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.state.history))
            print(f"graphrec: resuming {self.run_dir} from last.pt ({self.last_saved})", file=sys.stderr)

    # ---- training ----------------------------------------------------------------------------------
    def _epoch_batches(self) -> int:
        """Global batches per epoch: every event once, at most train.max_batches.

        Under DDP a last global batch smaller than the world size is skipped, so that no rank gets an empty share.
        """
        cfg = self.cfg.train
        events = len(self.train_users)
        total = math.ceil(events / cfg.batch_size)
        if self.dist.distributed and total and events - (total - 1) * cfg.batch_size < self.dist.world_size:
            total -= 1
        return min(total, cfg.max_batches) if cfg.max_batches else total

    def _numeric_error(self, what: str, epoch: int, batch: int) -> GraphrecError:
        where = (f"last good checkpoint: {self.run_dir / 'last.pt'} ({self.last_saved})" if self.last_saved
                 else "no checkpoint was saved yet")
        return GraphrecError(f"{what} at epoch {epoch} batch {batch}; {where}; lower train.lr, raise train.reg or "
                             "set train.grad_clip")

    def _resumed_sums(self) -> dict[str, float]:
        """This rank's loss sums of the batches trained before a mid-epoch stop (empty at an epoch start).

        Kept per rank so that a resumed epoch adds them up in the same order as an uninterrupted one; after a
        change of world size, rank 0 carries them all.
        """
        parts = self.state.epoch_sums
        if len(parts) == self.dist.world_size:
            return dict(parts[self.dist.rank])
        merged: dict[str, float] = {}
        for part in parts if self.is_writer else []:
            for key, value in part.items():
                merged[key] = merged.get(key, 0.0) + value
        return merged

    def _reduce_sums(self, sums: dict[str, float]) -> dict[str, float]:
        keys = sorted(set(sums).union(*self.state.epoch_sums))  # the same key list on every rank
        return dict(zip(keys, self.dist.sum_floats([sums.get(k, 0.0) for k in keys])))

    def _train_epoch(self, epoch: int, stop: StopRequest) -> Optional[dict[str, float]]:
        """One pass over the training events; None if a stop was requested (the state then marks the batch).

        Each batch: forward, backward (DDP averages gradients), optional clipping, step; then one host sync reads
        the losses, the gradient norm and one sum per parameter (NaN/Inf in any entry makes its sum non-finite),
        and, under DDP, one all_reduce agrees on stopping, so every rank leaves at the same batch.
        """
        cfg = self.cfg.train
        self.sample_gen.set_state(self.epoch_start_gen_state)
        batches = self.batches()
        total = self._epoch_batches()
        events = len(self.train_users)
        params = [p for p in self.model.parameters() if p.requires_grad]
        distributed = self.dist.distributed
        sums = self._resumed_sums()
        self.ddp_model.train()
        bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False, disable=not (cfg.progress and self.is_writer),
                   initial=min(self.state.batch_in_epoch, total))
        started = time.perf_counter()
        try:
            for index, (users, pos, neg) in enumerate(batches):
                if index >= total:
                    break
                if index < self.state.batch_in_epoch:
                    continue
                losses = self.ddp_model(users, pos, neg, cfg.reg)
                loss = losses["loss"]
                share = 1.0  # this rank's fraction of the global batch
                if distributed:
                    global_size = min(cfg.batch_size, events - index * cfg.batch_size)
                    share = len(users) / global_size
                    loss = loss * ddp_loss_scale(len(users), global_size, self.dist.world_size)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                watched = [v.detach() for v in losses.values()]
                if cfg.grad_clip:
                    watched.append(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                self.optimizer.step()
                watched += [p.detach().sum() for p in params]
                values = torch.stack([w.to(torch.float64) for w in watched]).tolist()
                loss_values = dict(zip(losses, values))
                param_sums = values[len(losses) + bool(cfg.grad_clip):]
                bad_loss = not math.isfinite(loss_values["loss"])
                bad_params = not all(map(math.isfinite, param_sums)) and not all(
                    bool(torch.isfinite(p).all()) for p in params)  # a sum can overflow with finite entries
                bad_loss, bad_params, stopping = self.dist.any(bad_loss, bad_params, stop.requested)
                if bad_loss:
                    shown = loss_values["loss"] if not math.isfinite(loss_values["loss"]) else "NaN/Inf on another rank"
                    raise self._numeric_error(f"loss became {shown}", epoch, index)
                if bad_params:
                    raise self._numeric_error("embeddings became NaN/Inf", epoch, index)
                for key, value in loss_values.items():
                    sums[key] = sums.get(key, 0.0) + (value * share if distributed else value)
                if cfg.grad_clip:  # the pre-clip norm, the same on every rank: counted once (rank 0)
                    sums["grad_norm"] = sums.get("grad_norm", 0.0) + (values[len(losses)] if self.is_writer else 0.0)
                self.state.batch_in_epoch = index + 1
                bar.update(1)
                if stopping:
                    self.state.epoch_sums = self.dist.gather_object(sums)
                    return None
        finally:
            bar.close()
            self.state.train_seconds += time.perf_counter() - started
        totals = self._reduce_sums(sums)
        n = max(1, self.state.batch_in_epoch)
        return {k: v / n for k, v in totals.items()}

    def evaluate(self, splits: list[str]) -> dict[str, float]:
        """Metrics '<split>/<metric>@<K>' of the current model on the named splits (users sharded over ranks)."""
        self.model.eval()
        user_emb, item_emb = self.model.embeddings()
        out: dict[str, float] = {}
        for split in splits:
            evaluator = self.evaluators[split]
            users = self.dist.shard(evaluator.users)
            result = self.dist.sum_result(evaluator.evaluate(user_emb, item_emb, users))
            out.update({f"{split}/{k}": v for k, v in result.means().items()})
            out[f"{split}/users"] = result.num_users
        return out

    def fit(self, stop: Optional[StopRequest] = None) -> dict[str, float]:
        """Train until train.epochs or early stopping, then evaluate the best checkpoint on every split.

        SIGINT/SIGTERM (or `stop.request()`) end the current batch, save last.pt and raise TrainingStopped.
        """
        cfg = self.cfg.train
        has_valid = "valid" in self.evaluators
        select = f"valid/{cfg.select_metric}"
        stop = stop if stop is not None else StopRequest(announce=self.is_writer)
        try:
            with stop:
                while not self.state.stopped_early and self.state.epoch < cfg.epochs:
                    epoch = self.state.epoch
                    losses = self._train_epoch(epoch, stop)
                    if losses is None:
                        self._save("last.pt")
                        self._stopped(stop, f"in epoch {epoch} after batch {self.state.batch_in_epoch}")
                    record = {"epoch": epoch, **{f"train/{k}": v for k, v in losses.items()},
                              "train/lr": self.optimizer.param_groups[0]["lr"],
                              "train_seconds": self.state.train_seconds}
                    if has_valid and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                        # rank 0's numbers drive every rank's decisions (they are all_reduce results anyway)
                        started = time.perf_counter()
                        metrics = self.dist.broadcast_object(self.evaluate(["valid"]))
                        self.state.eval_seconds += time.perf_counter() - started
                        record.update(metrics, eval_seconds=self.state.eval_seconds)
                        if metrics[select] > self.state.best_score:
                            self.state.best_score, self.state.best_epoch, self.state.bad_evals = \
                                metrics[select], epoch, 0
                            self._save("best.pt")
                        else:
                            self.state.bad_evals += 1
                            self.state.stopped_early = cfg.patience > 0 and self.state.bad_evals >= cfg.patience
                    self.state.history.append(record)
                    self._advance_epoch()
                    self._save("last.pt")
                    self.tracker.log(record)  # after last.pt: a logged epoch is always in the checkpoint
                    if self.is_writer:
                        shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
                        print(f"epoch {epoch}: {shown}", file=sys.stderr)
                        if self.state.stopped_early:
                            print(f"graphrec: early stop after epoch {epoch} (best {select} at epoch "
                                  f"{self.state.best_epoch})", file=sys.stderr)
                    done = self.state.stopped_early or self.state.epoch >= cfg.epochs
                    if self.dist.any(stop.requested)[0] and not done:
                        self._stopped(stop, f"after epoch {epoch}")
        except BaseException:
            self.tracker.close()
            self.dist.close()
            raise
        return self.finish()

    def _stopped(self, stop: StopRequest, where: str) -> None:
        if self.is_writer:
            print(f"graphrec: stopped {where}; last.pt saved; resume with: {self._resume_command()}",
                  file=sys.stderr)
        raise TrainingStopped(stop.exit_code)

    def batches(self):
        """This rank's (users, pos, neg) batches of one epoch, drawn from the sample generator's current state."""
        cfg = self.cfg.train
        return epoch_batches(self.train_users, self.train_items, self.sampler, cfg.batch_size, self.sample_gen,
                             self.dist.rank, self.dist.world_size, cfg.num_negatives, cfg.negative_candidates)

    def _advance_epoch(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step()
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        self.state.epoch_sums = []
        self.epoch_start_gen_state = self.sample_gen.get_state()

    def finish(self) -> dict[str, float]:
        """Load best.pt (or keep the last model without validation), evaluate all splits, write metrics.json."""
        best = self.run_dir / "best.pt"
        if self.is_writer and best.exists():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        self.dist.broadcast_module(self.model)  # the other ranks take rank 0's (best) parameters
        started = time.perf_counter()
        metrics = self.evaluate(list(self.evaluators))
        metrics.update({"best_epoch": self.state.best_epoch, "epochs_run": self.state.epoch,
                        "train_seconds": self.state.train_seconds,
                        "eval_seconds": self.state.eval_seconds + time.perf_counter() - started,
                        "protocol": "validation" if "valid" in self.evaluators else "paper"})
        if self.is_writer:
            if not best.exists():
                self._save("best.pt")
            atomic_write_json(self.run_dir / "metrics.json", metrics)
        self.tracker.log({"final": True, **metrics})
        self.tracker.summary(metrics)
        self.tracker.close()
        self.dist.close()
        return metrics


def _describe(state: TrainState) -> str:
    """Where a checkpoint with this state stands, e.g. 'end of epoch 4' or 'epoch 5 after batch 12'."""
    if state.batch_in_epoch:
        return f"epoch {state.epoch} after batch {state.batch_in_epoch}"
    return f"end of epoch {state.epoch - 1}" if state.epoch else "before training"


def _diff_keys(a: dict, b: dict, prefix: tuple = ()) -> list[tuple]:
    """Key paths whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, prefix + (key,))
        elif va != vb:
            out.append(prefix + (key,))
    return out


def _get(data: dict, path: tuple):
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def evaluate_run(run_dir: Path, splits: Optional[list[str]] = None, checkpoint: str = "best.pt") -> dict[str, float]:
    """Re-evaluate a run folder's checkpoint on its splits (all by default); returns the metrics."""
    from .config import config_from_file
    tune_allocator()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GraphrecError(f"'{run_dir}' is not a run folder (no config.yaml); pass runs/<name>-<time>/")
    saved = load_checkpoint(run_dir / checkpoint)
    cfg = config_from_file(run_dir / "config.yaml", base_dir=str(run_dir))
    device = resolve_device(cfg.device)
    dataset = load_dataset(cfg)
    model = build_model(cfg, dataset, device)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError:
        raise GraphrecError(f"{run_dir / checkpoint} does not match {run_dir / 'config.yaml'} (model shape); "
                            "restore config.yaml to the run's values") from None
    model.eval()
    names = splits or list(dataset.eval_splits())
    unknown = [s for s in names if s not in dataset.eval_splits()]
    if unknown:
        raise GraphrecError(f"unknown split '{unknown[0]}'; this run has {', '.join(dataset.eval_splits())}")
    user_emb, item_emb = model.embeddings()
    out: dict[str, float] = {}
    for name in names:
        result: EvalResult = Evaluator(dataset, name, cfg.eval.topk, cfg.eval.metrics, cfg.eval.max_score_elements,
                                       device).evaluate(user_emb, item_emb)
        out.update({f"{name}/{k}": v for k, v in result.means().items()})
        out[f"{name}/users"] = result.num_users
    return out
