"""Losses shared by every model, each checked against hand-computed values in tests/test_losses.py and
tests/test_contrastive_pieces.py (the contrastive ones)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint


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


def softplus_of_dots(table: torch.Tensor, left: torch.Tensor, right: torch.Tensor, sign: float,
                     chunk: int = 65536) -> torch.Tensor:
    """Scalar sum over pairs e of softplus(sign * <table[left_e], table[right_e]>), rows of a (n, d) table at (E,)
    indices. Above `chunk` pairs, chunks are recomputed in backward: memory holds (chunk, d) rows, not (E, d)."""
    if len(left) <= chunk:
        return _softplus_of_dots(table, left, right, sign)
    total = table.new_zeros(())
    for start in range(0, len(left), chunk):
        part = slice(start, start + chunk)
        total = total + torch.utils.checkpoint.checkpoint(_softplus_of_dots, table, left[part], right[part], sign,
                                                          use_reentrant=False)
    return total


def _softplus_of_dots(table: torch.Tensor, left: torch.Tensor, right: torch.Tensor, sign: float) -> torch.Tensor:
    """softplus_of_dots of one chunk."""
    return F.softplus(sign * (table[left] * table[right]).sum(1)).sum()


def pointwise_loss(pred: torch.Tensor, label: torch.Tensor, task: str) -> torch.Tensor:
    """(batch,) per-row loss of raw predictions: squared error (regression) or logistic loss on {0, 1} labels."""
    if task == "classification":
        return F.binary_cross_entropy_with_logits(pred, label, reduction="none")
    return (pred - label).pow(2)


class _CosineLogSumExp(torch.autograd.Function):
    """(n,) log sum_j exp(unit1_i . unit2_j / t) of row-normalized (n, d) and (m, d) views, with one (n, m) matrix.

    The forward turns the logits into exp(logit - row max) in place and keeps them; the backward reads them as the
    softmax (scaled by the incoming gradient): three matrix products and one exp per entry in all.
    """

    @staticmethod
    def forward(ctx, unit1, unit2, temperature):  # type: ignore[override]
        scaled = unit1 / temperature
        weights = torch.mm(scaled, unit2.t())
        top = weights.amax(1, keepdim=True)
        weights.sub_(top).exp_()
        total = weights.sum(1, keepdim=True)
        ctx.save_for_backward(scaled, unit2, weights, total)
        ctx.temperature = temperature
        return (top + total.log()).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        scaled, unit2, weights, total = ctx.saved_tensors
        logit_grad = weights * (grad.unsqueeze(1) / total)  # softmax_ij * grad_i
        return logit_grad @ unit2 / ctx.temperature, logit_grad.t() @ scaled, None


def cosine_log_terms(view1: torch.Tensor, view2: torch.Tensor, temperature: float,
                     reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) log p_i = s_ii / t and (n,) log S_i = log sum_j exp(s_ij / t), s = cosine of (n, d) view rows.

    `reverse` sums over the other index instead (log sum_j exp(s_ji / t), the view2 -> view1 direction).
    """
    unit1, unit2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    log_pos = (unit1 * unit2).sum(1) / temperature
    log_all = _CosineLogSumExp.apply(unit2, unit1, temperature) if reverse else \
        _CosineLogSumExp.apply(unit1, unit2, temperature)
    return log_pos, log_all


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Scalar mean_i -log(exp(s_ii / t) / sum_j exp(s_ij / t)), s = cosine of (n, d) view rows (SGL, SimGCL)."""
    log_pos, log_all = cosine_log_terms(view1, view2, temperature)
    return (log_all - log_pos).mean()


def symmetric_contrastive(view1: torch.Tensor, view2: torch.Tensor, temperature: float, q: float, lam: float,
                          *, double_positive: bool = True, bidirectional: bool = False) -> torch.Tensor:
    """Scalar SGCL/RINCE loss mean_i [-p_i^q / q + (lam * (p_i + S_i))^q / q] of (n, d) views.

    p_i = exp(s_ii / t), S_i = sum_j exp(s_ij / t) (j = i included), s = cosine of view rows. The
    defaults are the official SGCL code: the positive counted twice (p_i + S_i) and one direction
    (view1 -> view2). `double_positive=False` uses lam * S_i; `bidirectional=True` averages both
    directions. Only p^q and (lam (p + S))^q are formed (log space, expm1), so exp(s / t) never
    overflows and small q keeps its digits. q -> 0 gives -log(p_i / (lam (p_i + S_i))); q = 1 gives
    -p_i + lam (p_i + S_i).
    """
    directions = (False, True) if bidirectional else (False,)
    total = 0.0
    for reverse in directions:
        log_pos, log_all = cosine_log_terms(view1, view2, temperature, reverse)
        if double_positive:
            log_all = torch.logaddexp(log_pos, log_all)
        total = total + (torch.expm1(q * (log_all + math.log(lam))) - torch.expm1(q * log_pos)).mean() / q
    return total / len(directions)


def contrast_nodes(users: torch.Tensor, pos: torch.Tensor, num_users: int, joint: bool) -> list[torch.Tensor]:
    """Node-id groups to contrast from a batch's (b,) users and positives: the unique users and the unique items
    (item ids shifted by num_users), as one group when `joint` (SGCL code) or two groups (SGL, SimGCL).

    A model sums its loss over the groups: sum(loss(z1[ids], z2[ids], ...) for ids in contrast_nodes(...)).
    """
    user_ids, item_ids = torch.unique(users), torch.unique(pos) + num_users
    return [torch.cat([user_ids, item_ids])] if joint else [user_ids, item_ids]


def info_nce_intra(view1: torch.Tensor, view2: torch.Tensor, temperature: float,
                   anchors: torch.Tensor | None = None, chunk_rows: int = 4096) -> torch.Tensor:
    """Scalar GRACE-style InfoNCE of (n, d) views, mean over the anchor rows i (default: all n):
    -log(exp(s12_ii / t) / (sum_j exp(s12_ij / t) + sum_{j != i} exp(s11_ij / t))), s = cosine of rows.

    Negatives are every other row of both views (IDSF's form, one direction: view1 -> view2). Anchors are taken
    `chunk_rows` at a time; when they span several chunks, each is recomputed in backward, so memory stays at
    (chunk_rows, n) logits (one chunk is kept for backward).
    """
    n1, n2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    anchors = torch.arange(len(n1), device=n1.device) if anchors is None else anchors
    if len(anchors) <= chunk_rows:
        return _intra_chunk(n1, n2, anchors, temperature) / max(1, len(anchors))
    total = n1.new_zeros(())
    for start in range(0, len(anchors), chunk_rows):
        rows = anchors[start:start + chunk_rows]
        total = total + torch.utils.checkpoint.checkpoint(_intra_chunk, n1, n2, rows, temperature,
                                                          use_reentrant=False)
    return total / len(anchors)


def _intra_chunk(n1: torch.Tensor, n2: torch.Tensor, rows: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sum over `rows` of info_nce_intra's terms, from row-normalized (n, d) views."""
    anchor = n1[rows] / temperature
    intra = anchor @ n1.t()
    intra[torch.arange(len(rows), device=rows.device), rows] = -torch.inf  # no self-pair among the negatives
    log_denominator = torch.logaddexp(torch.logsumexp(anchor @ n2.t(), dim=1), torch.logsumexp(intra, dim=1))
    return (log_denominator - (anchor * n2[rows]).sum(1)).sum()
