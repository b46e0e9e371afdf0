"""Losses shared by every model, each checked against hand-computed values in tests/test_losses.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_per_sample(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """(batch,) softplus(neg - pos) = -log sigmoid(pos - neg), averaged over a sample's k negatives if (batch, k)."""
    if neg_scores.dim() == 2:
        return F.softplus(neg_scores - pos_scores.unsqueeze(1)).mean(1)
    return F.softplus(neg_scores - pos_scores)


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Scalar mean of softplus(neg - pos) = -log sigmoid(pos - neg); pos (batch,), neg (batch,) or (batch, k).

    With k negatives per positive, every (positive, negative) pair counts once: the mean over batch x k.
    """
    return bpr_per_sample(pos_scores, neg_scores).mean()


def l2_reg(batch_size: int, *ego_embeddings: torch.Tensor) -> torch.Tensor:
    """Scalar 0.5 * (sum of squared entries of the given (batch, d) ego embeddings) / batch_size."""
    return 0.5 * sum(e.pow(2).sum() for e in ego_embeddings) / batch_size


def pointwise_loss(pred: torch.Tensor, label: torch.Tensor, task: str) -> torch.Tensor:
    """(batch,) per-row loss of raw predictions: squared error (regression) or logistic loss on {0, 1} labels."""
    if task == "classification":
        return F.binary_cross_entropy_with_logits(pred, label, reduction="none")
    return (pred - label).pow(2)
