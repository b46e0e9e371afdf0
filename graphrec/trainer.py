"""The training loop: BPR batches, early stopping on validation, atomic checkpoints, exact resume, signals."""
from __future__ import annotations

import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import yaml
from tqdm import tqdm

from . import distributed as dist_utils
from .allocator import tune_allocator
from .checkpoint import (atomic_write_json, atomic_write_text, load_checkpoint, rng_state, save_checkpoint,
                         seed_everything, set_rng_state)
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


@dataclass
class TrainState:
    """Everything that changes during training, saved in last.pt for an exact resume."""

    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)


class StopRequest:
    """SIGINT/SIGTERM: the first asks to stop after the current batch, a second exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:
            print("graphrec: second interrupt, exiting now (no checkpoint is half-written)", file=sys.stderr)
            os._exit(130)
        self.requested = True
        print(f"graphrec: {signal.Signals(signum).name} received; finishing the current batch and saving last.pt",
              file=sys.stderr)

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


class Trainer:
    """Trains one config into one run folder; `fit()` returns the final metrics."""

    def __init__(self, cfg: Config, run_dir: Optional[Path] = None, resume: bool = False,
                 dataset: Optional[Dataset] = None):
        tune_allocator()
        if cfg.data.path is not None:
            cfg.data.path = str(resolve_data_path(cfg))
        self.cfg = cfg
        self.dist = dist_utils.init_from_env()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.device = resolve_device(cfg.device) if not self.dist.is_cuda else self.dist.device
        seed_everything(cfg.seed)
        self.dataset = dataset if dataset is not None else load_dataset(cfg)
        self.model = build_model(cfg, self.dataset, self.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.ddp_model = self.dist.wrap(self.model)
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
        self.run_dir = run_dir or self._new_run_dir()
        self.is_writer = self.dist.rank == 0
        if resume:
            self._resume()
        elif self.is_writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
            atomic_write_json(self.run_dir / "run.json", run_metadata(cfg))
            atomic_write_json(self.run_dir / "warnings.json", self.dataset.warnings.as_dict())
        self.tracker = Tracker(cfg.tracking, self.run_dir, self.run_dir.name, config_to_dict(cfg), self.is_writer)
        if self.cfg.train.select_metric not in self._metric_keys():
            raise GraphrecError(f"train.select_metric '{cfg.train.select_metric}' is not computed; choose one of "
                                f"{', '.join(self._metric_keys())} (eval.metrics x eval.topk)")

    def _metric_keys(self) -> list[str]:
        return [f"{m}@{k}" for k in self.cfg.eval.topk for m in self.cfg.eval.metrics]

    def _new_run_dir(self) -> Path:
        base = Path(self.cfg.output_dir)
        if not base.is_absolute():
            base = Path.cwd() / base
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = base / f"{self.cfg.name}-{stamp}"
        suffix = 1
        while path.exists():
            path = base / f"{self.cfg.name}-{stamp}-{suffix}"
            suffix += 1
        return path

    # ---- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "state": self.state.__dict__.copy(), "epoch_start_gen_state": self.epoch_start_gen_state,
                "rng": rng_state(), "config": config_to_dict(self.cfg)}

    def _save(self, name: str) -> None:
        if self.is_writer:
            save_checkpoint(self.run_dir / name, self._checkpoint())

    def _resume(self) -> None:
        saved = load_checkpoint(self.run_dir / "last.pt")
        ours = config_to_dict(self.cfg)
        theirs = saved.get("config", {})
        ignore = {("train", "epochs"), ("train", "progress"), ("tracking", "mode"), ("output_dir",)}
        diffs = [k for k in _diff_keys(ours, theirs) if k not in ignore and k[:1] not in ignore]
        if diffs:
            key = ".".join(diffs[0])
            raise GraphrecError(f"--resume {self.run_dir}: config differs from the run's at '{key}' "
                                f"({_get(ours, diffs[0])!r} vs {_get(theirs, diffs[0])!r}); resume with the "
                                "run's own config (omit the config file) or start a new run")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.state = TrainState(**saved["state"])
        self.epoch_start_gen_state = saved["epoch_start_gen_state"]
        set_rng_state(saved["rng"])
        print(f"graphrec: resuming {self.run_dir} at epoch {self.state.epoch} batch {self.state.batch_in_epoch}",
              file=sys.stderr)

    # ---- training ----------------------------------------------------------------------------------
    def _check_finite(self, losses: dict[str, torch.Tensor], epoch: int, batch: int) -> None:
        if not torch.isfinite(losses["loss"]):
            last = self.run_dir / "last.pt"
            where = f"last good checkpoint: {last}" if last.exists() else "no checkpoint yet"
            raise GraphrecError(f"loss became {float(losses['loss'])} at epoch {epoch} batch {batch}; {where}. "
                                "Lower train.lr, raise train.reg or set train.grad_clip")

    def _train_epoch(self, epoch: int, stop: StopRequest) -> Optional[dict[str, float]]:
        """One pass over the training events; None if a stop was requested mid-epoch."""
        cfg = self.cfg.train
        self.sample_gen.set_state(self.epoch_start_gen_state)
        batches = epoch_batches(self.train_users, self.train_items, self.sampler, cfg.batch_size,
                                self.sample_gen, self.dist.rank, self.dist.world_size)
        total = math.ceil(len(self.train_users) / cfg.batch_size)
        if cfg.max_batches:
            total = min(total, cfg.max_batches)
        sums: dict[str, float] = {}
        self.model.train()
        bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False, disable=not (cfg.progress and self.is_writer),
                   initial=self.state.batch_in_epoch)
        started = time.perf_counter()
        for index, (users, pos, neg) in enumerate(batches):
            if index >= total:
                break
            if index < self.state.batch_in_epoch:
                continue
            losses = self.ddp_model(users, pos, neg, cfg.reg)
            self._check_finite(losses, epoch, index)
            self.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            self.state.batch_in_epoch = index + 1
            bar.update(1)
            if stop.requested:
                self.state.train_seconds += time.perf_counter() - started
                bar.close()
                return None
        bar.close()
        self.state.train_seconds += time.perf_counter() - started
        if not torch.isfinite(self.model.embedding).all():
            raise GraphrecError(f"embeddings became NaN/Inf in epoch {epoch}; lower train.lr or set train.grad_clip")
        n = max(1, self.state.batch_in_epoch)
        return {k: v / n for k, v in sums.items()}

    def evaluate(self, splits: list[str]) -> dict[str, float]:
        """Metrics '<split>/<metric>@<K>' of the current model on the named splits."""
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

    def fit(self) -> dict[str, float]:
        """Train until train.epochs or early stopping, then evaluate the best checkpoint on every split."""
        cfg = self.cfg.train
        has_valid = "valid" in self.evaluators
        select = f"valid/{cfg.select_metric}"
        with StopRequest() as stop:
            while self.state.epoch < cfg.epochs:
                epoch = self.state.epoch
                losses = self._train_epoch(epoch, stop)
                if losses is None:
                    self._save("last.pt")
                    self.tracker.close()
                    print(f"graphrec: stopped in epoch {epoch}; resume with: graphrec train --resume {self.run_dir}",
                          file=sys.stderr)
                    raise SystemExit(130)
                record = {"epoch": epoch, **{f"train/{k}": v for k, v in losses.items()},
                          "train_seconds": self.state.train_seconds}
                stop_now = False
                if has_valid and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                    metrics = self.evaluate(["valid"])
                    record.update(metrics)
                    if metrics[select] > self.state.best_score:
                        self.state.best_score, self.state.best_epoch, self.state.bad_evals = metrics[select], epoch, 0
                        self._save("best.pt")
                    else:
                        self.state.bad_evals += 1
                        stop_now = cfg.patience > 0 and self.state.bad_evals >= cfg.patience
                self.state.history.append(record)
                self.tracker.log(record)
                self._advance_epoch()
                self._save("last.pt")
                if self.is_writer:
                    shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
                    print(f"epoch {epoch}: {shown}", file=sys.stderr)
                if stop_now:
                    print(f"graphrec: early stop after epoch {epoch} (best {select} at epoch {self.state.best_epoch})",
                          file=sys.stderr)
                    break
        return self.finish()

    def _advance_epoch(self) -> None:
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        self.epoch_start_gen_state = self.sample_gen.get_state()

    def finish(self) -> dict[str, float]:
        """Load best.pt (or keep the last model without validation), evaluate all splits, write metrics.json."""
        best = self.run_dir / "best.pt"
        if best.exists():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        metrics = self.evaluate(list(self.evaluators))
        metrics.update({"best_epoch": self.state.best_epoch, "epochs_run": self.state.epoch,
                        "train_seconds": self.state.train_seconds,
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
    from .config import build_config
    tune_allocator()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GraphrecError(f"'{run_dir}' is not a run folder (no config.yaml); pass runs/<name>-<time>/")
    saved = load_checkpoint(run_dir / checkpoint)
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg = build_config(raw, source=str(run_dir / "config.yaml"), base_dir=str(run_dir))
    device = resolve_device(cfg.device)
    dataset = load_dataset(cfg)
    model = build_model(cfg, dataset, device)
    model.load_state_dict(saved["model"])
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
