"""Vectorized negative sampling and epoch batching: no Python loop per user or per event."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch

from ..batches import PairBatch
from ..errors import GraphrecError
from .dataset import Interactions


def subset_or_all(count: int, size, generator: torch.Generator) -> Optional[torch.Tensor]:
    """(size,) ids of range(count) drawn uniformly without replacement (on the generator's device), or None for all
    of them (`size` 'all', or at least `count`)."""
    if size == "all" or size >= count:
        return None
    return torch.randperm(count, generator=generator, device=generator.device)[:size]


class NegativeSampler:
    """Uniform random items that are never a training positive of the user (rejection on sorted keys)."""

    def __init__(self, train: Interactions, num_users: int, num_items: int, device: torch.device | str = "cpu",
                 raw_user_ids: Optional[np.ndarray] = None):
        self.num_items = num_items
        keys = torch.from_numpy(train.keys(num_items)).to(device)
        self.positive_keys = torch.unique(keys)  # sorted
        degree = torch.bincount(self.positive_keys // num_items, minlength=num_users)
        full = torch.nonzero(degree >= num_items).flatten()
        if len(full):
            user = int(full[0])
            shown = (f"user '{raw_user_ids[user]}' (as in the data files)" if raw_user_ids is not None
                     else f"user {user}")
            raise GraphrecError(f"{shown} has every one of the {num_items} items in train, so no negative item "
                                f"exists for pairwise training; remove that user's events or add items "
                                f"({len(full)} such user(s))")

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(n,) bool: whether each (user, item) pair is a training positive."""
        keys = users * self.num_items + items
        pos = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[pos] == keys

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n,) int64 items, one per user, none of them a training positive of that user."""
        items = torch.randint(0, self.num_items, users.shape, generator=generator, device=users.device)
        redo = torch.nonzero(self.is_positive(users, items)).flatten()
        while len(redo):
            items[redo] = torch.randint(0, self.num_items, redo.shape, generator=generator, device=users.device)
            redo = redo[self.is_positive(users[redo], items[redo])]
        return items


def user_uniform_pairs(users: torch.Tensor, items: torch.Tensor,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """len(users) (user, positive) pairs from the (n,) training events: each user uniform among the users with events,
    then one of that user's events uniformly."""
    order = torch.argsort(users, stable=True)
    counts = torch.bincount(users)
    starts = torch.cumsum(counts, 0) - counts
    active = torch.nonzero(counts).flatten()
    n = len(users)
    picked = active[torch.randint(0, len(active), (n,), generator=generator, device=users.device)]
    offset = (torch.rand(n, generator=generator, device=users.device) * counts[picked]).long()
    offset = torch.minimum(offset, counts[picked] - 1)  # rand() < 1 can still round up to 1.0 in float32
    return picked, items[order][starts[picked] + offset]


def epoch_batches(users: torch.Tensor, items: torch.Tensor, sampler: NegativeSampler, batch_size: int,
                  generator: torch.Generator, rank: int = 0, world_size: int = 1, num_negatives: int = 1,
                  candidates: int = 1, by_user: bool = False) -> Iterator[PairBatch]:
    """Shuffled (user, positive, negative) batches over every training event once (`by_user`: as many pairs from
    user_uniform_pairs).

    Negatives are (batch,) by default, (batch, num_negatives) with num_negatives > 1, and
    (batch, num_negatives, candidates) with candidates > 1 (the model keeps the hardest candidate).
    One negative per event is drawn for the whole epoch at once; several are drawn per global batch, so that
    memory holds one batch of them, not events x num_negatives x candidates ids.
    With world_size > 1, every rank walks the same global batches and takes its own 1/world_size share.
    """
    if by_user:
        batch_users, batch_pos = user_uniform_pairs(users, items, generator)
    else:
        order = torch.randperm(len(users), generator=generator, device=users.device)
        batch_users, batch_pos = users[order], items[order]
    per_event = num_negatives * candidates
    shape = (-1,) if per_event == 1 else (-1, num_negatives) if candidates == 1 else (-1, num_negatives, candidates)
    epoch_neg = sampler.sample(batch_users, generator) if per_event == 1 else None
    share = slice(rank, None, world_size)  # this rank's positions within each global batch
    for start in range(0, len(batch_users), batch_size):
        batch = slice(start, start + batch_size)
        users_b = batch_users[batch]
        if epoch_neg is None:
            neg = sampler.sample(users_b.unsqueeze(1).expand(-1, per_event).reshape(-1), generator).view(shape)
        else:
            neg = epoch_neg[batch]
        yield PairBatch(users_b[share], batch_pos[batch][share], neg[share])


def row_batches(num_rows: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu",
                rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Shuffled row indices, one (batch,) int64 tensor per batch, every row once; under DDP each rank's share."""
    order = torch.randperm(num_rows, generator=generator, device=device)
    for start in range(0, num_rows, batch_size):
        yield order[start:start + batch_size][rank::world_size]
