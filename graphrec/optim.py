"""Optimizers and learning-rate schedules, one per parameter group a model declares."""
from __future__ import annotations

import math
from typing import Optional

import torch

from .errors import GraphrecError
from .schema import TrainConfig


def build_optimizer(params: list[torch.nn.Parameter], name: str, lr: float, weight_decay: float = 0.0
                    ) -> torch.optim.Optimizer:
    """Adam (fused kernel where the build has one), AdamW or SGD over `params`."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    kwargs = {"lr": lr} if name == "adam" and not weight_decay else {"lr": lr, "weight_decay": weight_decay}
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, **kwargs)


def build_optimizers(train: TrainConfig, groups: dict[str, list[torch.nn.Parameter]]) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per named parameter group that has parameters (none: a model that trains nothing, MostPop);
    train.groups.<name> overrides lr / optimizer / weight_decay."""
    unknown = sorted(set(train.groups) - set(groups))
    if unknown:
        raise GraphrecError(f"train.groups.{unknown[0]}: the model has no parameter group '{unknown[0]}'; its "
                            f"groups: {', '.join(groups)}")
    out = {}
    for name, params in groups.items():
        if not params:
            continue
        over = train.groups.get(name)
        lr = over.lr if over is not None and over.lr is not None else train.lr
        kind = over.optimizer if over is not None and over.optimizer is not None else train.optimizer
        out[name] = build_optimizer(params, kind, lr, over.weight_decay if over is not None else 0.0)
    return out


def build_scheduler(train: TrainConfig, optimizer: torch.optim.Optimizer
                    ) -> Optional[torch.optim.lr_scheduler.LRScheduler]:
    """The per-epoch learning-rate schedule of train.lr_schedule: None (constant), cosine to lr_min, step or
    exponential."""
    if train.lr_schedule == "cosine":
        length = train.lr_schedule_epochs or train.epochs
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(length, 1), eta_min=train.lr_min)
    if train.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train.lr_milestones, gamma=train.lr_gamma)
    if train.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=train.lr_gamma)
    return None


def _cosine_rate(base: float, lr_min: float, epoch: int, length: int) -> float:
    """The cosine schedule's rate at `epoch` of `length` epochs."""
    return lr_min + (base - lr_min) * (1 + math.cos(math.pi * epoch / length)) / 2


def restore_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler, saved: dict) -> None:
    """Load a saved schedule's state into a scheduler built for the (possibly new) train.epochs.

    A cosine schedule saved for another length is rebuilt for the new one when every epoch trained so far (and the
    rate set for the next) ran at the same rate under both lengths, as before the end of the first epoch: the run
    then equals an uninterrupted run of the new length. Otherwise it is refused with one line.
    """
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.load_state_dict(saved)
        return
    new, old, done = scheduler.T_max, saved.get("T_max", scheduler.T_max), saved.get("last_epoch", 0)
    same = all(math.isclose(_cosine_rate(base, scheduler.eta_min, epoch, old),
                            _cosine_rate(base, scheduler.eta_min, epoch, new), rel_tol=1e-12)
               for base in saved.get("base_lrs", scheduler.base_lrs) for epoch in range(done + 1))
    if not same:
        raise GraphrecError(f"--resume with train.epochs {new} (the run has {old}): its cosine schedule already ran "
                            f"{done} epoch(s) at the rates of {old} epochs, so the run could not equal one of {new} "
                            f"epochs; resume with train.epochs={old}, or start a new run with train.epochs: {new}")
    scheduler.load_state_dict(saved)
    scheduler.T_max = new
