"""The training loop: batches of the model's kind, per-group optimizers, stages, early stopping on validation,
atomic checkpoints, exact resume, signals."""
from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
import yaml
from tqdm import tqdm

from . import distributed as dist_utils
from .allocator import tune_allocator
from .batches import BATCH_KINDS, GraphStep, PointBatch
from .atomic import atomic_write_json, atomic_write_text, remove_stale_temps
from .checkpoint import (convert_sharded, load_checkpoint, load_model_state, module_generator_states, rng_state,
                         save_checkpoint, seed_everything, set_module_generator_states, set_rng_state)
from .config import Config, config_from_file, config_to_dict
from .data.dataset import Dataset
from .data.loader import apply_protocol, load_dataset
from .data.sampling import NegativeSampler, epoch_batches, row_batches
from .errors import GraphrecError
from .evaluation import evaluate_splits
from .graph.partitioned import PartitionedGraph
from .models import build_model, get_model_class
from .models.base import Model, Stage
from .optim import build_optimizers, build_scheduler, restore_scheduler
from .runs import (PendingRun, RunLock, check_resumable, claim_run_dir, first_difference, mark_failed,
                   read_run_metadata, run_metadata)
from .signals import StopRequest, TrainingStopped  # noqa: F401 (re-exported: tests and callers import them here)
from .data.shift import write_shift
from .tasks import TASKS, build_evaluators, lower_is_better, point_labels
from .tracking import Tracker

TQDM_DISABLE = {True: False, False: True, "auto": None}  # train.progress -> tqdm's disable (None: only off a terminal)
# Keys a resumed run may change: they do not alter what is trained.
RESUME_MAY_CHANGE = {"train.epochs", "train.progress", "train.threads", "tracking", "output_dir"}


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GraphrecError("device: cuda but no CUDA device is visible; set device: cpu or auto")
    return torch.device(name)


def ddp_loss_scale(local_size: int, global_size: int, world_size: int) -> float:
    """Factor on a rank's batch-mean loss so that DDP's gradient average equals the global batch mean's gradient.

    DDP averages gradients over ranks: (1 / W) * sum_r grad(mean_r). The global batch mean is
    sum_r (b_r / B) * mean_r, so each rank scales its mean by b_r * W / B (exactly 1.0 when the shares are equal).
    Exact for losses that are means of per-sample terms (BPR, and the L2 term, which is a batch sum / batch size).
    Pass world_size 1 where the ranks' gradients are added rather than averaged (train.distributed: partitioned).
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


def check_stages(model: Model) -> list[Stage]:
    """The model's stages, checked: known groups and batch kinds, only the last one open-ended."""
    stages, groups = model.stages(), model.param_groups()
    for index, stage in enumerate(stages):
        unknown = sorted(set(stage.groups or ()) - set(groups))
        kind = stage.batch_kind or model.batch_kind
        if unknown or kind not in BATCH_KINDS or (stage.epochs is None and index < len(stages) - 1):
            raise GraphrecError(f"model {model.registry_name}: stage '{stage.name}' is malformed (groups "
                                f"{unknown or 'ok'}, batch kind {kind!r}, epochs {stage.epochs}); fix its stages()")
    return stages


def check_partitioned(cfg: Config, dataset: Dataset, world_size: int) -> None:
    """Refuse train.distributed: partitioned for a model, settings or graph it cannot split exactly."""
    name = cfg.model["name"]
    if not get_model_class(name).partitionable:
        raise GraphrecError(f"train.distributed: partitioned cannot train model {name}: only models whose graph work "
                            "is LightGCN propagation of one embedding table (lightgcn) split by rows; use "
                            "train.distributed: data")
    if cfg.model.get("backend", "torch") != "torch":
        raise GraphrecError(f"model.backend: {cfg.model['backend']} has no effect under train.distributed: "
                            "partitioned (its blocks use the torch sparse product); remove model.backend")
    if cfg.dro.enabled:
        raise GraphrecError("dro.enabled couples the samples of a batch, which train.distributed: partitioned "
                            "splits over ranks; use train.distributed: data or none")
    if world_size > min(dataset.num_users, dataset.num_items):
        raise GraphrecError(f"train.distributed: partitioned over {world_size} processes, but the graph has "
                            f"{dataset.num_users} users and {dataset.num_items} items and each process needs one of "
                            f"each; start at most {min(dataset.num_users, dataset.num_items)} processes")


class Trainer:
    """Trains one config into one run folder; `fit()` returns the final metrics.

    The model declares its batch kind, parameter groups and stages (graphrec.models.base); the loop is the same for
    all of them. Under torchrun every rank builds the same Trainer; rank 0 chooses the run folder and writes every
    file.
    """

    def __init__(self, cfg: Config, run_dir: Optional[Path] = None, resume: bool = False,
                 dataset: Optional[Dataset] = None):
        tune_allocator()
        self.cfg = cfg
        mode = cfg.train.distributed
        world_size = dist_utils.launch_world_size(mode)  # checked before any process group is joined
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.seed)
        self.dataset = apply_protocol(cfg, dataset if dataset is not None else load_dataset(cfg))
        if self.dataset.source is not None:  # the folder the loader resolved, recorded in config.yaml
            cfg.data.path = self.dataset.source
        if mode == "partitioned":
            check_partitioned(cfg, self.dataset, world_size)
        self.dist = dist_utils.init_from_env(mode)
        self.is_writer = self.dist.rank == 0
        self.device = resolve_device(cfg.device) if not self.dist.is_cuda else self.dist.device
        partition = None
        if mode == "partitioned":
            train = self.dataset.train
            partition = PartitionedGraph(torch.from_numpy(train.user).to(self.device),
                                         torch.from_numpy(train.item).to(self.device), self.dataset.num_users,
                                         self.dataset.num_items, self.dist.rank, self.dist.world_size,
                                         cfg.train.partitioner)
            self.dist.user_owner = partition.owner[:self.dataset.num_users]  # each rank evaluates the users it holds
        self.model = build_model(cfg, self.dataset, self.device, partition)
        self.stages = check_stages(self.model)
        kinds = {stage.batch_kind or self.model.batch_kind for stage in self.stages}
        if "graph" in kinds and self.dist.distributed:
            raise GraphrecError(f"model {cfg.model['name']} trains whole-graph steps, which torchrun cannot split; "
                                "run it as one process (graphrec train)")
        self.groups = self.model.param_groups()
        self.optimizers = build_optimizers(cfg.train, self.groups)
        self.schedulers = {name: s for name, opt in self.optimizers.items()
                           if (s := build_scheduler(cfg.train, opt)) is not None}
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.view_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        if "pairwise" in kinds:
            self.sampler = NegativeSampler(self.dataset.train, self.dataset.num_users, self.dataset.num_items,
                                           self.device, self.dataset.user_ids)
            self.train_users = torch.from_numpy(self.dataset.train.user).to(self.device)
            self.train_items = torch.from_numpy(self.dataset.train.item).to(self.device)
        if "pointwise" in kinds:
            rows = self.dataset.fields.rows["train"]
            self.point_features = torch.from_numpy(rows.features).to(self.device)
            self.point_values = torch.from_numpy(rows.values).to(self.device)
            self.point_labels = torch.from_numpy(point_labels(self.dataset, cfg.task)).to(self.device)
        self.evaluators = build_evaluators(self.dataset, cfg, self.device)
        self.state = TrainState()
        self.epoch_start_gen_state = self.sample_gen.get_state()
        self.epoch_start_view_state = self.view_gen.get_state()
        self.last_saved: Optional[str] = None  # what last.pt holds, for error messages
        self.pending: Optional[PendingRun] = None  # a new run's hidden folder, until its first checkpoint
        if run_dir is not None:
            self.run_dir = Path(run_dir)
        else:  # rank 0 claims a fresh folder and tells the others its names
            self.pending = self.dist.broadcast_object(claim_run_dir(cfg.output_dir, cfg.name) if self.is_writer
                                                      else None)
            self.run_dir = self.pending.path
        self.lock: Optional[RunLock] = None
        try:
            if self.is_writer:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.lock = RunLock(self.run_dir)  # held until fit() ends: one process per run folder
            metadata: dict = {}
            if resume:
                self._resume()
                metadata = read_run_metadata(self.run_dir) if self.is_writer else {}
            elif self.is_writer:
                metadata = run_metadata(cfg.seed)
                atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
                atomic_write_json(self.run_dir / "run.json", metadata)
                atomic_write_json(self.run_dir / "warnings.json", self.dataset.warnings.as_dict())
                if TASKS[cfg.task].at_k:
                    write_shift(self.dataset, self.run_dir, cfg.eval.head_share, cfg.eval.tail_share)
            self.ddp_model = self.dist.wrap(self.model)  # after _resume: DDP starts from rank 0's loaded parameters
            name = (self.pending.final if self.pending else self.run_dir).name
            self.tracker = Tracker(cfg.tracking, self.run_dir, name, config_to_dict(cfg), self.is_writer, metadata)
        except BaseException:
            self._release(discard=True)
            raise

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of the 'main' group (the only one for most models)."""
        return self.optimizers.get("main") or next(iter(self.optimizers.values()))

    def _resume_command(self) -> str:
        launcher = (f"torchrun --nproc_per_node={self.dist.world_size} -m graphrec" if self.dist.distributed
                    else "graphrec")
        return f"{launcher} train --resume {self.run_dir}"

    # ---- stages and batches ------------------------------------------------------------------------
    def stage(self, epoch: Optional[int] = None) -> Stage:
        """The stage that epoch `epoch` (default: the current one) belongs to."""
        epoch = self.state.epoch if epoch is None else epoch
        start = 0
        for stage in self.stages:
            if stage.epochs is None or epoch < start + stage.epochs:
                return stage
            start += stage.epochs
        return self.stages[-1]

    def _batch_kind(self) -> str:
        return self.stage().batch_kind or self.model.batch_kind

    def _num_events(self, kind: str) -> int:
        """Training units one epoch walks: events (pairwise), rows (pointwise), steps (graph)."""
        if kind == "pairwise":
            return len(self.train_users)
        if kind == "pointwise":
            return len(self.point_labels)
        return self.model.graph_steps

    def _epoch_batches(self) -> int:
        """Global batches per epoch: every event (row) once, or the model's graph steps; at most train.max_batches.

        Under DDP a last global batch smaller than the world size is skipped, so that no rank gets an empty share.
        """
        cfg, kind = self.cfg.train, self._batch_kind()
        events = self._num_events(kind)
        total = events if kind == "graph" else math.ceil(events / cfg.batch_size)
        if self.dist.distributed and total and events - (total - 1) * cfg.batch_size < self.dist.world_size:
            total -= 1
        return min(total, cfg.max_batches) if cfg.max_batches else total

    def batches(self) -> Iterator:
        """This rank's batches of one epoch of the current stage's kind, drawn from the sample generator's state."""
        cfg, kind = self.cfg.train, self._batch_kind()
        rank, world = self.dist.rank, self.dist.world_size
        if kind == "pairwise":
            return epoch_batches(self.train_users, self.train_items, self.sampler, cfg.batch_size, self.sample_gen,
                                 rank, world, cfg.num_negatives, cfg.negative_candidates, cfg.sampler == "users")
        if kind == "pointwise":
            return (PointBatch(self.point_features[index], self.point_values[index], self.point_labels[index])
                    for index in row_batches(len(self.point_labels), cfg.batch_size, self.sample_gen, self.device,
                                             rank, world))
        return (GraphStep(self.state.epoch, index) for index in range(self.model.graph_steps))

    # ---- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        """Everything an exact resume needs; sharded tables whole (collective under a partition)."""
        model, optimizer = convert_sharded(
            self.model, self.optimizers, self.model.state_dict(),
            {name: opt.state_dict() for name, opt in self.optimizers.items()}, self._whole_rows)
        return {"model": model, "optimizer": optimizer,
                "scheduler": {name: s.state_dict() for name, s in self.schedulers.items()} or None,
                "state": asdict(self.state), "epoch_start_gen_state": self.epoch_start_gen_state,
                "epoch_start_view_state": self.epoch_start_view_state,
                "model_generators": module_generator_states(self.model), "rng": rng_state(),
                "config": config_to_dict(self.cfg), "world_size": self.dist.world_size}

    def _save(self, name: str) -> None:
        """Write run_dir/name atomically (rank 0 only; every rank helps gather sharded tables); every rank
        remembers what last.pt holds."""
        if self.is_writer or self.model.sharded_parameters():
            state = self._checkpoint()
            if self.is_writer:
                save_checkpoint(self.run_dir / name, state)
        if name == "last.pt":
            self.last_saved = _describe(self.state)
            if self.pending is not None:  # the first checkpoint: the run folder becomes visible
                self.run_dir = self.pending.publish() if self.is_writer else self.pending.final
                self.tracker.moved(self.run_dir)
                self.pending = None
                if self.is_writer:
                    print(f"run folder: {self.run_dir}", file=sys.stderr)

    def _resume(self) -> None:
        check_resumable(self.run_dir)
        saved = load_checkpoint(self.run_dir / "last.pt")
        diff = first_difference(config_to_dict(self.cfg), saved.get("config", {}), RESUME_MAY_CHANGE)
        if diff:
            raise GraphrecError(f"--resume {self.run_dir}: config differs from the run's at '{diff[0]}' "
                                f"({diff[1]!r} vs {diff[2]!r}); resume with the run's own config (omit the config "
                                "file) or start a new run")
        model, optimizer = convert_sharded(self.model, self.optimizers, saved["model"],
                                           _by_group(saved["optimizer"], "param_groups"), self._local_rows)
        load_model_state(self.model, model, self.run_dir / "last.pt", self.dataset)
        for name, state in optimizer.items():
            self.optimizers[name].load_state_dict(state)
        for name, state in _by_group(saved.get("scheduler"), "last_epoch").items():
            if name in self.schedulers:
                restore_scheduler(self.schedulers[name], state)
        known = {f.name for f in fields(TrainState)}
        self.state = TrainState(**{k: v for k, v in saved["state"].items() if k in known})
        if isinstance(self.state.epoch_sums, dict):  # one merged dict, as an older checkpoint may hold
            self.state.epoch_sums = [self.state.epoch_sums] if self.state.epoch_sums else []
        self.epoch_start_gen_state = saved["epoch_start_gen_state"]
        self.epoch_start_view_state = saved.get("epoch_start_view_state", self.epoch_start_view_state)
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

    def active_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers of the groups the current stage trains."""
        groups = self.stage().groups
        return {name: opt for name, opt in self.optimizers.items() if groups is None or name in groups}

    def step(self, batch, loss_scale: float = 1.0) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """One optimization step of the current stage: loss, backward (DDP averages gradients), optional clipping,
        then each active group's optimizer; returns the named losses and the pre-clip gradient norm (or None)."""
        losses = self.ddp_model(batch)
        self.model.zero_grad(set_to_none=True)
        (losses["loss"] * loss_scale if loss_scale != 1.0 else losses["loss"]).backward()
        optimizers = self.active_optimizers()
        norm = None
        if self.cfg.train.grad_clip:
            params = [p for opt in optimizers.values() for group in opt.param_groups for p in group["params"]]
            norm = self.dist.clip_grad_norm(params, self.cfg.train.grad_clip)
        for opt in optimizers.values():
            opt.step()
        return losses, norm

    def _train_epoch(self, epoch: int, stop: StopRequest) -> Optional[dict[str, float]]:
        """One pass over the training data; None if a stop was requested (the state then marks the batch).

        Before the first batch the model's on_epoch_start hook runs with the view generator at its epoch-start
        state, so a resumed epoch redraws the same views. Each batch is one `step`; then one host sync reads the
        losses, the gradient norm and one sum per parameter (NaN/Inf in any entry makes its sum non-finite), and,
        under DDP, one all_reduce agrees on stopping, so every rank leaves at the same batch.
        """
        cfg = self.cfg.train
        self.sample_gen.set_state(self.epoch_start_gen_state)
        self.view_gen.set_state(self.epoch_start_view_state)
        self.model.stage = self.stage().name
        self.model.on_epoch_start(epoch, self.view_gen)
        batches = self.batches()
        total = self._epoch_batches()
        events = self._num_events(self._batch_kind())
        params = [p for p in self.model.parameters() if p.requires_grad]
        distributed = self.dist.distributed
        sums = self._resumed_sums()
        self.ddp_model.train()
        bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False, initial=min(self.state.batch_in_epoch, total),
                   disable=TQDM_DISABLE[cfg.progress] if self.is_writer else True)
        started = time.perf_counter()
        try:
            for index, batch in enumerate(batches):
                if index >= total:
                    break
                if index < self.state.batch_in_epoch:
                    continue
                share, scale = 1.0, 1.0  # this rank's fraction of the global batch, and its loss factor
                if distributed:
                    global_size = min(cfg.batch_size, events - index * cfg.batch_size)
                    share = len(batch) / global_size
                    scale = ddp_loss_scale(len(batch), global_size,
                                           self.dist.world_size if self.dist.mode == "data" else 1)
                losses, norm = self.step(batch, scale)
                watched = [v.detach() for v in losses.values()]
                if norm is not None:
                    watched.append(norm)
                watched += [p.detach().sum() for p in params]
                values = torch.stack([w.to(torch.float64) for w in watched]).tolist()
                loss_values = dict(zip(losses, values))
                param_sums = values[len(losses) + (norm is not None):]
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
                if norm is not None:  # the pre-clip norm, the same on every rank: counted once (rank 0)
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

    def _local_rows(self, table: torch.Tensor) -> torch.Tensor:
        """(n_r, ...) this rank's rows of a whole (num_nodes, ...) node table."""
        return table.index_select(0, self.model.partition.owned.to(table.device))

    def _whole_rows(self, local: torch.Tensor) -> torch.Tensor:
        """(num_nodes, ...) node table assembled from every rank's rows (collective)."""
        return self.model.partition.gather(local)

    def evaluate(self, splits: list[str]) -> dict[str, float]:
        """Metrics '<split>/<metric>' of the current model on the named splits (users sharded over ranks)."""
        return evaluate_splits(self.model, self.evaluators, splits, self.dist)

    def _selection_score(self, value: float) -> float:
        """The validation value as a score where higher is better (RMSE and logloss negated)."""
        return -value if lower_is_better(self.cfg.train.select_metric) else value

    def fit(self, stop: Optional[StopRequest] = None) -> dict[str, float]:
        """Train until train.epochs or early stopping, then evaluate the best checkpoint on every split.

        SIGINT/SIGTERM (or `stop.request()`) end the current batch, save last.pt and raise TrainingStopped.
        """
        cfg = self.cfg.train
        split = self.selection_split
        has_valid = split in self.evaluators
        select = f"{split}/{cfg.select_metric}"
        stop = stop if stop is not None else StopRequest(announce=self.is_writer)
        try:
            with stop:
                while self.optimizers and not self.state.stopped_early and self.state.epoch < cfg.epochs:
                    epoch = self.state.epoch
                    stage = self.stage()
                    losses = self._train_epoch(epoch, stop)
                    if losses is None:
                        self._save("last.pt")
                        self._stopped(stop, f"in epoch {epoch} after batch {self.state.batch_in_epoch}")
                    record = {"epoch": epoch, **{f"train/{k}": v for k, v in losses.items()},
                              "train/lr": self.optimizer.param_groups[0]["lr"],
                              "train_seconds": self.state.train_seconds}
                    if len(self.stages) > 1:
                        record["stage"] = stage.name
                    due = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
                    if has_valid and stage.evaluate and due:
                        # rank 0's numbers drive every rank's decisions (they are all_reduce results anyway)
                        started = time.perf_counter()
                        metrics = self.dist.broadcast_object(self.evaluate([split]))
                        self.state.eval_seconds += time.perf_counter() - started
                        record.update(metrics, eval_seconds=self.state.eval_seconds)
                        score = self._selection_score(metrics[select])
                        if score > self.state.best_score:
                            self.state.best_score, self.state.best_epoch, self.state.bad_evals = score, epoch, 0
                            self._save("best.pt")
                        else:
                            self.state.bad_evals += 1
                            self.state.stopped_early = cfg.patience > 0 and self.state.bad_evals >= cfg.patience
                    self.state.history.append(record)
                    self._advance_epoch()
                    self._save("last.pt")
                    self.tracker.log(record)  # after last.pt: a logged epoch is always in the checkpoint
                    if self.is_writer:
                        shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items()
                                          if k not in ("epoch", "stage"))
                        print(f"epoch {epoch}: {shown}", file=sys.stderr)
                        if self.state.stopped_early:
                            print(f"graphrec: early stop after epoch {epoch} (best {select} at epoch "
                                  f"{self.state.best_epoch})", file=sys.stderr)
                    done = self.state.stopped_early or self.state.epoch >= cfg.epochs
                    if self.dist.any(stop.requested)[0] and not done:
                        self._stopped(stop, f"after epoch {epoch}")
            return self.finish()
        except BaseException as exc:
            self.tracker.close()
            self.dist.close(together=isinstance(exc, TrainingStopped))  # every rank stops at the same epoch
            self._release(failure=None if isinstance(exc, (TrainingStopped, KeyboardInterrupt)) else exc,
                          discard=True)
            raise

    def _release(self, failure: Optional[BaseException] = None, discard: bool = False) -> None:
        """End this process's hold on the run folder: with `discard`, a folder not yet published is deleted (a run
        that ends before its first checkpoint leaves nothing); a published one is marked FAILED.json on `failure`."""
        if self.is_writer and self.pending is not None and discard:
            self.pending.discard()
        elif self.is_writer and failure is not None:
            mark_failed(self.run_dir, str(failure) if isinstance(failure, GraphrecError) else
                        f"{type(failure).__name__}: {failure}")
        if self.lock is not None:
            self.lock.release()

    @property
    def selection_split(self) -> str:
        """The split checkpoints are selected on: valid, or test_ood (else test) under the leaky protocol."""
        if self.cfg.protocol != "leaky":
            return "valid"
        return "test_ood" if "test_ood" in self.evaluators else "test"

    @property
    def protocol(self) -> str:
        """refit, leaky, validation (selected on valid) or paper (no validation split: the last epoch is reported)."""
        if self.cfg.protocol in ("refit", "leaky"):
            return self.cfg.protocol
        return "validation" if "valid" in self.evaluators else "paper"

    def _stopped(self, stop: StopRequest, where: str) -> None:
        self.dist.barrier()  # last.pt is on disk before any rank exits (a launcher may then end the others)
        if self.is_writer:
            print(f"graphrec: stopped {where}; last.pt saved; resume with: {self._resume_command()}",
                  file=sys.stderr)
        raise TrainingStopped(stop.exit_code)

    def _advance_epoch(self) -> None:
        with warnings.catch_warnings():  # a group idle in this epoch's stage still advances: schedules count epochs
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            for scheduler in self.schedulers.values():
                scheduler.step()
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        self.state.epoch_sums = []
        self.epoch_start_gen_state = self.sample_gen.get_state()
        self.epoch_start_view_state = self.view_gen.get_state()

    def finish(self) -> dict[str, float]:
        """Load best.pt (or keep the last model without validation), evaluate all splits, write metrics.json."""
        if self.pending is not None:  # nothing was trained (a model without parameters): publish the folder now
            self._save("last.pt")
        best = self.run_dir / "best.pt"
        sharded = bool(self.model.sharded_parameters())
        if sharded:
            self.dist.barrier()  # best.pt is whole on disk before any rank reads its rows
        has_best = best.exists()
        if has_best and (self.is_writer or sharded):
            self.model.load_state_dict(convert_sharded(self.model, self.optimizers, load_checkpoint(best)["model"],
                                                       {}, self._local_rows)[0])
        if not sharded:
            self.dist.broadcast_module(self.model)  # the other ranks take rank 0's (best) parameters
        started = time.perf_counter()
        metrics = self.evaluate(list(self.evaluators))
        metrics.update({"best_epoch": self.state.best_epoch, "epochs_run": self.state.epoch,
                        "train_seconds": self.state.train_seconds,
                        "eval_seconds": self.state.eval_seconds + time.perf_counter() - started,
                        "protocol": self.protocol})
        if not has_best:
            self._save("best.pt")
        if self.is_writer:
            atomic_write_json(self.run_dir / "metrics.json", metrics)
        self.tracker.log({"final": True, **metrics})
        self.tracker.summary(metrics)
        self.tracker.close()
        self.dist.close(together=True)
        self._release()
        return metrics


def _by_group(saved: Optional[dict], marker: str) -> dict[str, dict]:
    """Optimizer (scheduler) states by group; an older checkpoint holds one state (recognized by `marker`)."""
    if not saved:
        return {}
    return {"main": saved} if marker in saved else saved


def _describe(state: TrainState) -> str:
    """Where a checkpoint with this state stands, e.g. 'end of epoch 4' or 'epoch 5 after batch 12'."""
    if state.batch_in_epoch:
        return f"epoch {state.epoch} after batch {state.batch_in_epoch}"
    return f"end of epoch {state.epoch - 1}" if state.epoch else "before training"


def load_run(run_dir: Path, checkpoint: str = "best.pt", overrides: Sequence[str] = ()):
    """(config, dataset, model with the checkpoint's parameters in eval mode, evaluators) of a run folder, its config
    with `overrides` (model.* and eval.* keys that change how the trained model evaluates, never its parameters)."""
    tune_allocator()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GraphrecError(f"'{run_dir}' is not a run folder (no config.yaml); pass runs/<name>-<time>/")
    saved = load_checkpoint(run_dir / checkpoint)
    cfg = config_from_file(run_dir / "config.yaml", list(overrides), base_dir=str(run_dir))
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    dataset = apply_protocol(cfg, load_dataset(cfg))
    model = build_model(cfg, dataset, device)
    load_model_state(model, saved["model"], run_dir / checkpoint, dataset, overrides)
    model.eval()
    return cfg, dataset, model, build_evaluators(dataset, cfg, device)


def evaluate_run(run_dir: Path, splits: Optional[list[str]] = None, checkpoint: str = "best.pt",
                 overrides: Sequence[str] = ()) -> dict[str, float]:
    """Re-evaluate a run folder's checkpoint on its splits (all by default), its config with `overrides`; returns
    the metrics."""
    _, _, model, evaluators = load_run(run_dir, checkpoint, overrides)
    names = splits or list(evaluators)
    unknown = [s for s in names if s not in evaluators]
    if unknown:
        raise GraphrecError(f"unknown split '{unknown[0]}'; this run has {', '.join(evaluators)}")
    return evaluate_splits(model, evaluators, names)
