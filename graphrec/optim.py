"""Optimizers and learning-rate schedules, one per parameter group a model declares."""
from __future__ import annotations

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
    """One optimizer per named parameter group; train.groups.<name> overrides lr / optimizer / weight_decay."""
    unknown = sorted(set(train.groups) - set(groups))
    if unknown:
        raise GraphrecError(f"train.groups.{unknown[0]}: the model has no parameter group '{unknown[0]}'; its "
                            f"groups: {', '.join(groups)}")
    out = {}
    for name, params in groups.items():
        over = train.groups.get(name)
        lr = over.lr if over is not None and over.lr is not None else train.lr
        kind = over.optimizer if over is not None and over.optimizer is not None else train.optimizer
        out[name] = build_optimizer(params, kind, lr, over.weight_decay if over is not None else 0.0)
    return out


def build_scheduler(train: TrainConfig, optimizer: torch.optim.Optimizer
                    ) -> Optional[torch.optim.lr_scheduler.LRScheduler]:
    """The per-epoch learning-rate schedule of train.lr_schedule: None (constant), cosine to lr_min, or step."""
    if train.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(train.epochs, 1), eta_min=train.lr_min)
    if train.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train.lr_milestones, gamma=train.lr_gamma)
    return None
