"""What one training step consumes, by the batch kind a model declares: pairwise, pointwise or whole-graph."""
from __future__ import annotations

from dataclasses import dataclass

import torch

BATCH_KINDS = ("pairwise", "pointwise", "graph")


@dataclass
class PairBatch:
    """(user, positive, negatives) events: users/pos (b,), neg (b,), (b, k) or (b, k, c) dynamic candidates."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def __iter__(self):  # unpacks as (users, pos, neg)
        return iter((self.users, self.pos, self.neg))

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.users, self.pos, self.neg)[index]


@dataclass
class PointBatch:
    """Feature rows with labels: features (b, f) int64 global feature ids, values (b, f) float32, label (b,)."""

    features: torch.Tensor
    values: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass
class GraphStep:
    """One whole-graph step (all nodes at once): the epoch and the step's index within it."""

    epoch: int
    index: int

    def __len__(self) -> int:
        return 1
