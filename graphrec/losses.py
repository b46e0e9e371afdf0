"""Losses shared by every model, each checked against hand-computed values in tests/test_losses.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Scalar mean of softplus(neg - pos) = -log sigmoid(pos - neg); pos (batch,), neg (batch,) or (batch, k).

    With k negatives per positive, every (positive, negative) pair counts once: the mean over batch x k.
    """
    if neg_scores.dim() == 2:
        pos_scores = pos_scores.unsqueeze(1)
    return F.softplus(neg_scores - pos_scores).mean()


def l2_reg(batch_size: int, *ego_embeddings: torch.Tensor) -> torch.Tensor:
    """Scalar 0.5 * (sum of squared entries of the given (batch, d) ego embeddings) / batch_size."""
    return 0.5 * sum(e.pow(2).sum() for e in ego_embeddings) / batch_size
