"""Batched full-ranking evaluation: chunked U @ I.T on the device, seen items masked, all metrics and K in one pass.

Definitions (LightGCN paper): Recall@K = hits / |test items of the user|; Precision@K = hits / K;
NDCG@K = DCG / IDCG with IDCG over min(|test|, K) positions; Hit@K = 1 if any hit; MRR@K = 1 / rank
of the first hit (0 if none within K). Ties in score are broken by the lower item id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .data.dataset import Dataset, Interactions
from .graph.adjacency import csr_row_entries


RANKING_METRICS = ("recall", "ndcg", "precision", "hit", "mrr")

Scorer = Callable[[torch.Tensor], torch.Tensor]  # users (m,) -> scores (m, num_items)


def _csr_rows(crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row position in `rows`, column) pairs of the CSR rows `rows`, both (total,) int64."""
    counts, take = csr_row_entries(crow, rows)
    return torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts), col[take]


def _to_csr(interactions: Sequence[Interactions], num_users: int, num_items: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """crow (num_users + 1,) and sorted unique col of the union of the given events."""
    keys = np.unique(np.concatenate([x.keys(num_items) for x in interactions] or [np.zeros(0, np.int64)]))
    users, items = keys // num_items, keys % num_items
    crow = np.zeros(num_users + 1, dtype=np.int64)
    crow[1:] = np.cumsum(np.bincount(users, minlength=num_users))
    return torch.from_numpy(crow).to(device), torch.from_numpy(items).to(device)


def rank_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(m, k) item ids of the k best scores per row of (m, n_items), by score then lower id.

    One topk of k + 1 finds the rows whose k-th and (k+1)-th scores tie; only those rows pay for the
    exact tie resolution over all their items.
    """
    k = min(k, scores.shape[1])
    values, index = torch.topk(scores, min(k + 1, scores.shape[1]), dim=1)
    if values.shape[1] > k:
        ambiguous = torch.nonzero(values[:, k] == values[:, k - 1]).flatten()
        values, index = values[:, :k], index[:, :k].contiguous()
    else:
        ambiguous = index.new_zeros(0)
    if len(ambiguous):  # the k-th place is shared: take the tied items of lowest id
        sub, thr = scores[ambiguous], values[ambiguous, -1:]
        above = (sub > thr).sum(1)
        equal = sub == thr
        chosen = (sub > thr) | (equal & (torch.cumsum(equal, 1) <= (k - above).unsqueeze(1)))
        index[ambiguous] = torch.nonzero(chosen)[:, 1].view(len(ambiguous), k)
    index, _ = torch.sort(index, dim=1)
    order = torch.sort(scores.gather(1, index), dim=1, descending=True, stable=True).indices
    return index.gather(1, order)


def ranking_metrics(hits: torch.Tensor, num_relevant: torch.Tensor, ks: Sequence[int],
                    metrics: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-user metric values {'recall@20': (m,)} from hits (m, max K) bool in rank order and (m,) counts."""
    device = hits.device
    max_k = hits.shape[1]
    hits = hits.to(torch.float64)
    discount = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=device, dtype=torch.float64))
    ideal = torch.cumsum(discount, 0)
    ranks = torch.arange(1, max_k + 1, device=device, dtype=torch.float64)
    cum_hits = torch.cumsum(hits, 1)
    cum_dcg = torch.cumsum(hits * discount, 1)
    first_hit = torch.where(hits > 0, 1.0 / ranks, torch.zeros_like(hits)).cummax(1).values
    out = {}
    for k in ks:
        kk = min(k, max_k) - 1
        n_hit = cum_hits[:, kk]
        values = {
            "recall": n_hit / num_relevant,
            "precision": n_hit / k,
            "hit": (n_hit > 0).to(torch.float64),
            "ndcg": cum_dcg[:, kk] / ideal[torch.clamp(num_relevant, max=kk + 1) - 1],
            "mrr": first_hit[:, kk],
        }
        out.update({f"{name}@{k}": values[name] for name in metrics})
    return out


@dataclass
class EvalResult:
    """Sums of per-user (per-row) metric values and the number of users (rows) they cover, summable across ranks."""

    sums: dict[str, float]
    num_users: int

    def means(self) -> dict[str, float]:
        """The metric means over the evaluated users."""
        return {k: v / max(1, self.num_users) for k, v in self.sums.items()}


class Evaluator:
    """Full ranking of one split: every user with test and training events, seen items masked.

    Holds at most `max_score_elements` entries of the users x items score matrix at once. Scores come from the
    model's scorer (graphrec.models.base.Recommender.scorer), a dot product of embeddings by default.
    """

    shardable = True  # users can be split across ranks and the sums added
    unit = "users"

    def __init__(self, dataset: Dataset, split: str, ks: Sequence[int], metrics: Sequence[str],
                 max_score_elements: int, device: torch.device | str = "cpu"):
        self.ks, self.metrics, self.device = list(ks), list(metrics), torch.device(device)
        self.num_items = dataset.num_items
        truth = dataset.eval_splits()[split]
        seen = [dataset.train] + ([dataset.valid] if split != "valid" and dataset.valid is not None else [])
        self.truth_crow, self.truth_col = _to_csr([truth], dataset.num_users, dataset.num_items, self.device)
        self.seen_crow, self.seen_col = _to_csr(seen, dataset.num_users, dataset.num_items, self.device)
        has_truth = (self.truth_crow[1:] - self.truth_crow[:-1]) > 0
        has_train = torch.from_numpy(np.bincount(dataset.train.user, minlength=dataset.num_users) > 0).to(self.device)
        self.users = torch.nonzero(has_truth & has_train).flatten()
        self.chunk_users = max(1, max_score_elements // max(1, self.num_items))
        self.largest_chunk_elements = 0

    def prepare(self, model) -> Scorer:
        """What evaluate() takes: the model's scorer, computed once for every split and chunk."""
        return model.scorer()

    @torch.no_grad()
    def evaluate(self, scorer: Scorer, users: torch.Tensor | None = None) -> EvalResult:
        """Metric sums over `users` (default: all evaluable users), scoring each chunk of users with `scorer`."""
        users = self.users if users is None else users
        max_k = max(self.ks)
        sums = {f"{m}@{k}": 0.0 for k in self.ks for m in self.metrics}
        for start in range(0, len(users), self.chunk_users):
            chunk = users[start:start + self.chunk_users]
            scores = scorer(chunk)
            self.largest_chunk_elements = max(self.largest_chunk_elements, scores.numel())
            row, col = _csr_rows(self.seen_crow, self.seen_col, chunk)
            scores[row, col] = -torch.inf
            top = rank_topk(scores, max_k)
            del scores
            relevant = torch.zeros((len(chunk), self.num_items), dtype=torch.bool, device=self.device)
            row, col = _csr_rows(self.truth_crow, self.truth_col, chunk)
            relevant[row, col] = True
            hits = relevant.gather(1, top)
            num_relevant = self.truth_crow[chunk + 1] - self.truth_crow[chunk]
            for key, values in ranking_metrics(hits, num_relevant, self.ks, self.metrics).items():
                sums[key] += float(values.sum())
        return EvalResult(sums, len(users))


def evaluate_splits(model, evaluators: dict, splits: list[str], dist=None) -> dict[str, float]:
    """Metrics '<split>/<metric>' of a model on the named splits; users are sharded over ranks when `dist` is given.

    The model's scorer (or the model, for pointwise tasks) is prepared once for all splits.
    """
    model.eval()
    out: dict[str, float] = {}
    prepared = None
    for split in splits:
        evaluator = evaluators[split]
        prepared = evaluator.prepare(model) if prepared is None else prepared
        if dist is not None and evaluator.shardable:
            result = dist.sum_result(evaluator.evaluate(prepared, dist.shard(evaluator.users)))
        else:
            result = evaluator.evaluate(prepared)
        out.update({f"{split}/{k}": v for k, v in result.means().items()})
        out[f"{split}/{evaluator.unit}"] = result.num_users
    return out
