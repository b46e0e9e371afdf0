"""DRO on any pairwise model: the reduction of (b,) per-sample losses that the `dro:` section configures, and its
config-time check. Formulas: docs/ood-pieces.md; choices: docs/ood-models.md."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ..batches import PairBatch
from ..data.dataset import Dataset
from ..dro import dro_objective, group_dro_objective, popularity_groups, user_clusters
from ..errors import GraphrecError
from ..schema import DROConfig


class SampleReduction(nn.Module):
    """(b,) per-sample losses -> scalar: the mean, or with dro.enabled the KL-DRO objective sum_i w_i l_i over samples
    (groups 'sample') or sum_g w_g L_g over the groups of the samples' positive items (popularity quantiles) or users
    (K-means clusters). The group tables are non-persistent buffers: checkpoints do not change."""

    def __init__(self, cfg: DROConfig, dataset: Dataset, num_users: int):
        super().__init__()
        self.cfg, self.num_users = cfg, num_users
        if cfg.enabled and cfg.groups == "popularity":
            popularity = torch.from_numpy(np.bincount(dataset.train.item, minlength=dataset.num_items))
            self.register_buffer("group_of", popularity_groups(popularity, cfg.num_groups), persistent=False)
        elif cfg.enabled and cfg.groups == "user_cluster":
            seed = int(torch.randint(0, 2 ** 31 - 1, (1,)))  # from the run's seeded global generator
            train = dataset.train
            self.register_buffer("group_of", user_clusters(train.user, train.item, dataset.num_users,
                                                           dataset.num_items, cfg.num_groups, seed=seed),
                                 persistent=False)

    def group_nodes(self, batch: PairBatch) -> torch.Tensor:
        """(b,) node row (users first) whose group each sample belongs to: its user or its positive item."""
        return batch.users if self.cfg.groups == "user_cluster" else batch.pos + self.num_users

    def groups(self, batch: PairBatch) -> torch.Tensor:
        """(b,) int64 group id of each sample in [0, dro.num_groups)."""
        return self.group_of[batch.users if self.cfg.groups == "user_cluster" else batch.pos]

    def forward(self, per_sample: torch.Tensor, batch: Optional[PairBatch] = None,
                penalty: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scalar reduction of (b,) losses; `penalty` (num_groups,) lowers groups' weights (DRGO's Sinkhorn term)."""
        cfg = self.cfg
        if not cfg.enabled:
            return per_sample.mean()
        if cfg.groups == "sample":
            return dro_objective(per_sample, cfg.temperature)
        return group_dro_objective(per_sample, self.groups(batch), cfg.num_groups, cfg.temperature, penalty)


def check_dro(cfg, model_cls, origin) -> None:
    """Fill the dro keys the YAML leaves unset with the model's defaults (`dro_defaults`) and refuse dro.enabled on a
    model whose loss is not a reduction of per-sample losses; one-line GraphrecError naming the key."""
    given = cfg.dro.model_dump(exclude_unset=True)
    cfg.dro = DROConfig(**{**model_cls.dro_defaults, **given})
    if cfg.dro.enabled and not model_cls.per_sample_loss:
        kind = "pointwise" if model_cls.batch_kind == "pointwise" else "its own"
        raise GraphrecError(f"{origin.where(('dro', 'enabled'))}dro.enabled: model {model_cls.registry_name} has no "
                            f"per-sample ranking losses to reweight ({kind} loss, not reduced by reduce_samples); "
                            "remove the dro section or use a pairwise model such as lightgcn or mf")
