"""MostPop: every user is shown the unseen items in order of their training popularity; nothing is trained."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import register
from .base import Model


@register("pop")
class MostPopular(Model):
    """Score of item i for every user = its number of training events (the non-personalized reference row)."""

    summary = "MostPop: items by training popularity, one ranking for every user (nothing is trained)"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        counts = np.bincount(ctx.dataset.train.item, minlength=ctx.dataset.num_items).astype(np.float32)
        self.register_buffer("popularity", torch.from_numpy(counts))

    @torch.no_grad()
    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """users (m,) -> (m, num_items) scores: the training popularity, the same row for each user."""
        return lambda users: self.popularity.repeat(len(users), 1)
