"""Batched full-ranking evaluation: chunked U @ I.T on the device, seen items masked, all metrics and K in one pass.

Definitions (LightGCN paper): Recall@K = hits / |test items of the user|; Precision@K = hits / K;
NDCG@K = DCG / IDCG with IDCG over min(|test|, K) positions; Hit@K = 1 if any hit; MRR@K = 1 / rank
of the first hit (0 if none within K). Ties in score are broken by the lower item id.

Metrics under shift: Coverage@K = distinct items in the union of all evaluated users' top-K / num_items (not a
per-user mean); ARP@K = mean over users of the mean train popularity (train events) of their top-K items;
recall_<group>@K and ndcg_<group>@K for the head / mid / tail items by train popularity (eval.head_share,
eval.tail_share): the ranking is over all items, only the group's relevant items and hits count, and users
without relevant items in the group are left out of that group's mean.

Sampled evaluation (eval.users): a seeded simple random sample of n of a split's N evaluable users; each per-user
mean gets `<metric>_ci95`, the half-width of its 95% normal interval 1.96 * sd / sqrt(n) * sqrt(1 - n / N) (sd over
the sample's per-user values; group metrics: over the sample's users in the group; the finite-population factor makes
it 0 when the sample is every user). Coverage is not a per-user mean: it is computed on the sample's top-K lists and
has no interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .data.dataset import Dataset, Interactions
from .data.shift import popularity_groups
from .graph.adjacency import NormalizedAdjacency, csr_row_entries


Scorer = Callable[[torch.Tensor], torch.Tensor]  # users (m,) -> scores (m, num_items)


def _csr_rows(crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row position in `rows`, column) pairs of the CSR rows `rows`, both (total,) int64."""
    counts, take = csr_row_entries(crow, rows)
    return torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts), col[take]


def _held_out(top: torch.Tensor, row: torch.Tensor, col: torch.Tensor, num_items: int) -> torch.Tensor:
    """(m, K) bool: whether each ranked item of (m, K) `top` is among its row's held-out (row, col) pairs, which
    come in CSR order (rows ascending, columns sorted); no dense (m, num_items) mask is built."""
    keys = row * num_items + col
    ranked = torch.arange(len(top), device=top.device).unsqueeze(1) * num_items + top
    return torch.isin(ranked, keys, assume_unique=True)  # both unique: CSR pairs, distinct items per row


def _to_csr(interactions: Sequence[Interactions], num_users: int, num_items: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """crow (num_users + 1,) and sorted unique col of the union of the given events."""
    keys = np.unique(np.concatenate([x.keys(num_items) for x in interactions] or [np.zeros(0, np.int64)]))
    users, items = keys // num_items, keys % num_items
    crow = np.zeros(num_users + 1, dtype=np.int64)
    crow[1:] = np.cumsum(np.bincount(users, minlength=num_users))
    return torch.from_numpy(crow).to(device), torch.from_numpy(items).to(device)


def _union_graph(dataset: Dataset, split: Interactions, device: torch.device):
    """The normalized graph of the training events plus one split's events (duplicates once)."""
    keys = np.unique(np.concatenate([dataset.train.keys(dataset.num_items), split.keys(dataset.num_items)]))
    return NormalizedAdjacency.from_numpy(keys // dataset.num_items, keys % dataset.num_items, dataset.num_users,
                                          dataset.num_items, device)


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


GROUPS = ("head", "mid", "tail")
CI95_Z = 1.959964  # two-sided 95% quantile of the standard normal


def _add(sums: dict[str, float], squares: dict[str, float], key: str, values: torch.Tensor) -> None:
    """Add the sum and the sum of squares of (m,) per-user values to `key`'s totals."""
    sums[key] += float(values.sum())
    squares[key] += float(values.square().sum())


def ci95_half_width(total: float, square_total: float, n: int, sample_fraction: float) -> float:
    """Half-width of the 95% normal interval of a mean of n values from their sum and sum of squares, with the
    finite-population factor sqrt(1 - sample_fraction); nan for fewer than 2 values."""
    if n < 2:
        return float("nan")
    variance = max(0.0, (square_total - total * total / n) / (n - 1))
    return CI95_Z * (variance / n * max(0.0, 1.0 - sample_fraction)) ** 0.5


@dataclass
class EvalResult:
    """Sums (and sums of squares) of per-user (per-row) metric values, the users (rows) they cover, and the union of
    recommended items per K (for coverage); every field but `sample_fraction` adds up across ranks (`packed` /
    `from_packed`). With `sample_fraction` (sampled users / evaluable users) the means carry `_ci95` half-widths."""

    sums: dict[str, float]
    num_users: int
    group_users: dict[str, int] = field(default_factory=dict)
    recommended: Optional[torch.Tensor] = None  # (len(coverage_ks), num_items) bool: in some user's top-K
    coverage_ks: tuple[int, ...] = ()
    squares: dict[str, float] = field(default_factory=dict)  # same keys as sums (empty: no intervals)
    sample_fraction: Optional[float] = None  # None: every evaluable user, no intervals

    def means(self) -> dict[str, float]:
        """The metric means over the evaluated users (group metrics: over the users with items in the group)."""
        out = {}
        for key, value in self.sums.items():
            name = key.split("@")[0]
            group = name.rsplit("_", 1)[1] if "_" in name else None
            n = self.group_users[group] if group in GROUPS else self.num_users
            out[key] = value / max(1, n)
            if self.sample_fraction is not None:
                out[f"{key}_ci95"] = ci95_half_width(value, self.squares[key], n, self.sample_fraction)
        for row, k in enumerate(self.coverage_ks):
            out[f"coverage@{k}"] = float(self.recommended[row].sum()) / self.recommended.shape[1]
        return out

    def packed(self) -> torch.Tensor:
        """Every summable field in one float64 vector (sums, squares, users, group users, recommended bitmap)."""
        head = ([self.sums[k] for k in self.sums] + [self.squares[k] for k in self.squares] + [self.num_users]
                + [self.group_users[g] for g in self.group_users])
        flat = torch.tensor(head, dtype=torch.float64)
        if self.recommended is None:
            return flat
        return torch.cat([flat, self.recommended.flatten().to(device="cpu", dtype=torch.float64)])

    def from_packed(self, packed: torch.Tensor) -> "EvalResult":
        """An EvalResult laid out like this one from a (summed) `packed()` vector."""
        values = packed.tolist() if self.recommended is None else packed[:-self.recommended.numel()].tolist()
        n_sums, n_squares, n_groups = len(self.sums), len(self.squares), len(self.group_users)
        users_at = n_sums + n_squares
        recommended = None if self.recommended is None else (
            packed[-self.recommended.numel():].view(self.recommended.shape) > 0)
        return EvalResult(dict(zip(self.sums, values[:n_sums])), int(values[users_at]),
                          {g: int(v) for g, v in zip(self.group_users, values[users_at + 1:users_at + 1 + n_groups])},
                          recommended, self.coverage_ks, dict(zip(self.squares, values[n_sums:users_at])),
                          self.sample_fraction)


class Evaluator:
    """Full ranking of one split: every user with test and training events (or a seeded sample of `sample_users`
    of them), seen items masked.

    Holds at most `max_score_elements` entries of the users x items score matrix at once. Scores come from the
    model's scorer (graphrec.models.base.Recommender.scorer), a dot product of embeddings by default.
    """

    shardable = True  # users can be split across ranks and the sums added
    unit = "users"

    def __init__(self, dataset: Dataset, split: str, ks: Sequence[int], metrics: Sequence[str],
                 max_score_elements: int, device: torch.device | str = "cpu", head_share: float = 0.2,
                 tail_share: float = 0.5, sample_users: Optional[int] = None, seed: int = 0, leaky: bool = False):
        self.ks, self.metrics, self.device = list(ks), list(metrics), torch.device(device)
        self.num_items = dataset.num_items
        truth = dataset.eval_splits()[split]
        # protocol leaky: nothing masked, and the split's own edges join the graph the model propagates over
        self.leak_graph = _union_graph(dataset, truth, self.device) if leaky else None
        seen = [] if leaky else [dataset.train] + ([dataset.valid] if split != "valid" and dataset.valid is not None
                                                   else [])
        self.truth_crow, self.truth_col = _to_csr([truth], dataset.num_users, dataset.num_items, self.device)
        self.seen_crow, self.seen_col = _to_csr(seen, dataset.num_users, dataset.num_items, self.device)
        has_truth = (self.truth_crow[1:] - self.truth_crow[:-1]) > 0
        has_train = torch.from_numpy(np.bincount(dataset.train.user, minlength=dataset.num_users) > 0).to(self.device)
        self.users = torch.nonzero(has_truth & has_train).flatten()
        self.population = len(self.users)
        self.sample_fraction = None if sample_users is None else min(1.0, sample_users / max(1, self.population))
        if sample_users is not None and sample_users < self.population:
            pick = np.random.default_rng(seed).choice(self.population, sample_users, replace=False)
            self.users = self.users[torch.from_numpy(np.sort(pick)).to(self.device)]
        self.chunk_users = max(1, max_score_elements // max(1, self.num_items))
        self.largest_chunk_elements = 0
        item_counts = np.bincount(dataset.train.item, minlength=dataset.num_items)
        self.item_popularity = torch.from_numpy(item_counts.astype(np.float64)).to(self.device)
        self.item_group = torch.from_numpy(popularity_groups(item_counts, head_share, tail_share)).to(self.device)
        self.plain = [m for m in self.metrics if m in ("recall", "ndcg", "precision", "hit", "mrr")]
        self.grouped = {g: [m.split("_")[0] for m in self.metrics if m.endswith(f"_{g}")] for g in GROUPS}
        self.grouped = {g: names for g, names in self.grouped.items() if names}

    @property
    def preparation_key(self) -> Optional[int]:
        """Evaluators with the same key share one prepared scorer (a leaky one propagates over its own graph)."""
        return None if self.leak_graph is None else id(self)

    def prepare(self, model) -> Scorer:
        """What evaluate() takes: the model's scorer, computed once for every split and chunk."""
        if self.leak_graph is None or getattr(model, "graph", None) is None:
            return model.scorer()
        graph, model.graph = model.graph, self.leak_graph
        try:
            return model.scorer()
        finally:
            model.graph = graph

    @torch.no_grad()
    def evaluate(self, scorer: Scorer, users: torch.Tensor | None = None) -> EvalResult:
        """Metric sums over `users` (default: all evaluable users), scoring each chunk of users with `scorer`."""
        users = self.users if users is None else users
        max_k = max(self.ks)
        per_user = [m for m in self.metrics if m != "coverage"]
        sums = {f"{m}@{k}": 0.0 for k in self.ks for m in per_user}
        squares = dict(sums)
        group_users = {g: 0 for g in self.grouped}
        coverage_ks = tuple(self.ks) if "coverage" in self.metrics else ()
        recommended = torch.zeros((len(coverage_ks), self.num_items), dtype=torch.bool, device=self.device)
        for start in range(0, len(users), self.chunk_users):
            chunk = users[start:start + self.chunk_users]
            scores = scorer(chunk)
            self.largest_chunk_elements = max(self.largest_chunk_elements, scores.numel())
            row, col = _csr_rows(self.seen_crow, self.seen_col, chunk)
            scores[row, col] = -torch.inf
            top = rank_topk(scores, max_k)
            del scores
            row, col = _csr_rows(self.truth_crow, self.truth_col, chunk)
            hits = _held_out(top, row, col, self.num_items)
            num_relevant = self.truth_crow[chunk + 1] - self.truth_crow[chunk]
            for key, values in ranking_metrics(hits, num_relevant, self.ks, self.plain).items():
                _add(sums, squares, key, values)
            self._shift_metrics(top, hits, row, col, sums, squares, group_users, recommended)
        return EvalResult(sums, len(users), group_users, recommended if coverage_ks else None, coverage_ks, squares,
                          self.sample_fraction)

    def _shift_metrics(self, top: torch.Tensor, hits: torch.Tensor, truth_row: torch.Tensor, truth_col: torch.Tensor,
                       sums: dict[str, float], squares: dict[str, float], group_users: dict[str, int],
                       recommended: torch.Tensor) -> None:
        """Add one chunk's ARP and group recall/NDCG sums (and squares) and its top-K items to `recommended`, from
        its (m, max K) top items and hits and the (row, item) pairs of its relevant items."""
        for row, k in enumerate(self.ks if len(recommended) else ()):
            recommended[row, top[:, :k].flatten()] = True
        if "arp" in self.metrics:
            popularity = torch.cumsum(self.item_popularity[top], 1)
            for k in self.ks:
                kk = min(k, top.shape[1])
                _add(sums, squares, f"arp@{k}", popularity[:, kk - 1] / kk)
        for group, names in self.grouped.items():
            code = GROUPS.index(group)
            in_group = self.item_group[truth_col] == code
            num_relevant = torch.bincount(truth_row[in_group], minlength=len(top))
            keep = num_relevant > 0
            group_hits = (hits & (self.item_group[top] == code))[keep]
            group_users[group] += int(keep.sum())
            for key, values in ranking_metrics(group_hits, num_relevant[keep], self.ks, names).items():
                name, k = key.split("@")
                _add(sums, squares, f"{name}_{group}@{k}", values)


def evaluate_splits(model, evaluators: dict, splits: list[str], dist=None) -> dict[str, float]:
    """Metrics '<split>/<metric>' of a model on the named splits; users are sharded over ranks when `dist` is given.

    The model's scorer (or the model, for pointwise tasks) is prepared once for all splits (per split under the
    leaky protocol).
    """
    model.eval()
    out: dict[str, float] = {}
    scorers: dict = {}
    for split in splits:
        evaluator = evaluators[split]
        key = evaluator.preparation_key
        if key not in scorers:
            scorers[key] = evaluator.prepare(model)
        prepared = scorers[key]
        if dist is not None and evaluator.shardable:
            result = dist.sum_result(evaluator.evaluate(prepared, dist.shard(evaluator.users)))
        else:
            result = evaluator.evaluate(prepared)
        out.update({f"{split}/{k}": v for k, v in result.means().items()})
        out[f"{split}/{evaluator.unit}"] = result.num_users
        if result.sample_fraction is not None:
            out[f"{split}/{evaluator.unit}_evaluable"] = evaluator.population
    return out
