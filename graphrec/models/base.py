"""The model interface every family shares, and the ranking base with one ego embedding table.

A model declares its batch kind (pairwise, pointwise, graph), the tasks it supports, its parameter groups and its
stages; the trainer does the rest. See docs/extending.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..batches import PairBatch
from ..data.dataset import Dataset
from ..graph.adjacency import NormalizedAdjacency
from ..graph.partitioned import PartitionedGraph
from ..losses import bpr_per_sample, l2_reg
from ..schema import DROConfig, ModelConfig, TrainConfig
from .robust import SampleReduction

_optimizer_steps = 0  # bumped after every torch optimizer step; fused ones do not bump parameters' _version


def _count_optimizer_step(optimizer, args, kwargs) -> None:  # noqa: ARG001
    """Global optimizer step hook: count the step so that every embeddings() cache sees it."""
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def tensors_state_key(tensors) -> tuple:
    """A cache key that changes when any optimizer steps or any of the tensors is replaced or changed in place."""
    return (_optimizer_steps,) + tuple((id(t), t._version, t.data_ptr()) for t in tensors)


@dataclass
class ModelContext:
    """What a model is built from: the dataset, the device, the training keys, the task, the dro section, and the
    training graph (or, under train.distributed: partitioned, this rank's block of it)."""

    dataset: Dataset
    device: torch.device
    train: TrainConfig = field(default_factory=TrainConfig)
    task: str = "ranking"
    dro: DROConfig = field(default_factory=DROConfig)
    _graph: Optional[NormalizedAdjacency] = None
    partition: Optional[PartitionedGraph] = None

    @property
    def graph(self) -> NormalizedAdjacency:
        """D^-1/2 A D^-1/2 of the training events on the device, built on first use and kept."""
        if self._graph is None:
            train = self.dataset.train
            self._graph = NormalizedAdjacency.from_numpy(train.user, train.item, self.dataset.num_users,
                                                         self.dataset.num_items, self.device)
        return self._graph


@dataclass(frozen=True)
class Stage:
    """A phase of training: `epochs` epochs (None: until the end) stepping the named parameter groups (None: all).

    `batch_kind` overrides the model's for the stage (e.g. a 'graph' pre-training stage); `evaluate` says whether
    validation and checkpoint selection run during it.
    """

    name: str = "main"
    epochs: Optional[int] = None
    groups: Optional[tuple[str, ...]] = None
    batch_kind: Optional[str] = None
    evaluate: bool = True


class Model(torch.nn.Module):
    """Base of every model: `loss(batch)` returns named scalars with 'loss'; the trainer steps and evaluates.

    Class attributes: `config_class` (the model's keys), `batch_kind` ('pairwise' | 'pointwise' | 'graph'),
    `tasks` (the first is the default), `summary` (one line for `graphrec models`), `per_sample_loss` (its loss
    reduces (b,) per-sample terms through reduce_samples, so `dro:` can reweight them), `dro_defaults` (dro keys
    the model sets when the YAML does not) and `partitionable` (it trains exactly under train.distributed:
    partitioned, its graph work being LightGCN propagation of its ego table through `propagate` and `ego_rows`).
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    registry_name: ClassVar[str] = "base"
    summary: ClassVar[str] = ""
    batch_kind: ClassVar[str] = "pairwise"
    tasks: ClassVar[tuple[str, ...]] = ("ranking",)
    graph_steps: ClassVar[int] = 1  # steps per epoch of a 'graph' batch kind
    per_sample_loss: ClassVar[bool] = False
    dro_defaults: ClassVar[dict] = {}
    partitionable: ClassVar[bool] = False

    def __init__(self, cfg: ModelConfig, ctx: ModelContext):
        super().__init__()
        self.cfg = cfg
        self.reg = ctx.train.reg
        self.task = ctx.task
        self.stage = "main"

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Named scalar losses of one batch; 'loss' is the one minimized."""
        raise NotImplementedError

    def forward(self, batch) -> dict[str, torch.Tensor]:
        """Same as loss(); lets DistributedDataParallel wrap the model."""
        return self.loss(batch)

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Called before each epoch (again on a resumed one, with the generator at the same state): redraw views."""

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """Named parameter groups, each with its own optimizer (train.groups sets their lr); default: one 'main'."""
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    def stages(self) -> list[Stage]:
        """The training phases in order; default: one stage over every group for all epochs."""
        return [Stage()]

    def sharded_parameters(self) -> list[str]:
        """Names of the parameters that hold only this rank's node rows (train.distributed: partitioned); a
        checkpoint holds them whole, gathered from every rank."""
        return []


def normal_rows(num_rows: int, dim: int, std: float, keep: Optional[torch.Tensor] = None,
                chunk_rows: int = 65536) -> torch.Tensor:
    """(num_rows, dim) normal(0, std) draws from the global CPU generator, or only the `keep` rows (sorted ids) of
    that table: drawn 65,536 rows at a time, so a rank that keeps 1/N of a large table never holds all of it.
    The values equal one whole draw (torch's CPU normal_ fills blocks of 16 values; chunks are multiples of 16)."""
    if keep is None:
        return torch.nn.init.normal_(torch.empty(num_rows, dim), std=std)
    parts = []
    for start in range(0, num_rows, chunk_rows):
        block = torch.nn.init.normal_(torch.empty(min(chunk_rows, num_rows - start), dim), std=std)
        low, high = torch.searchsorted(keep, torch.tensor([start, start + len(block)])).tolist()
        parts.append(block[keep[low:high] - start])
    return torch.cat(parts)


@torch.no_grad()
def hardest_candidates(users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(b, k, 1) index of the candidate each user scores highest; users (b, d), candidates (b, k, c, d)."""
    return torch.einsum("bkcd,bd->bkc", candidates, users).argmax(-1, keepdim=True)


@dataclass
class BatchIndex:
    """Where a pairwise batch's users, positives and negatives sit in a table of node rows."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor


class Recommender(Model):
    """Ranking base: one (num_users + num_items, dim) ego embedding table, users first.

    Initialization (the one documented init): normal(0, init_std), as in the LightGCN reference code.
    Subclasses define `propagate(rows)`; `loss` is BPR + L2 built from pieces a subclass can reuse
    (`batch_rows`, `pairwise_loss`, `reduce_samples`), and `scorer()` ranks users against all items.
    A subclass that overrides `loss` says `per_sample_loss = True` when its loss still goes through reduce_samples
    (otherwise dro.enabled is refused for it); one that overrides the loss, the propagation or the epoch hook is not
    `partitionable` unless it says so.
    """

    per_sample_loss: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "loss" in cls.__dict__ and "per_sample_loss" not in cls.__dict__:
            cls.per_sample_loss = False
        if "partitionable" not in cls.__dict__ and {"loss", "propagate", "on_epoch_start"} & set(cls.__dict__):
            cls.partitionable = False

    def __init__(self, cfg: ModelConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.num_users, self.num_items = ctx.dataset.num_users, ctx.dataset.num_items
        self.partition = ctx.partition
        self.graph = ctx.graph if self.uses_graph and self.partition is None else None
        # under a partition only this rank's rows (and their optimizer moments) are kept
        keep = None if self.partition is None else self.partition.owned.cpu()
        self.embedding = torch.nn.Parameter(normal_rows(self.num_users + self.num_items, cfg.embedding_dim,
                                                        cfg.init_std, keep))
        self.reduction = SampleReduction(ctx.dro, ctx.dataset, self.num_users)
        self._cache: Optional[tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = None

    uses_graph: ClassVar[bool] = True

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final node embeddings, (num_nodes, dim) or (len(rows), dim) for the given node rows."""
        raise NotImplementedError

    def sharded_parameters(self) -> list[str]:
        """The ego table, which under a partition holds this rank's (n_r, dim) rows only."""
        return [] if self.partition is None else ["embedding"]

    def ego_rows(self, nodes: torch.Tensor) -> torch.Tensor:
        """(len(nodes), dim) ego embeddings of node ids (under a partition: fetched from their owners)."""
        if self.partition is None:
            return self.embedding[nodes]
        return self.partition.fetch(self.embedding, nodes)

    def batch_rows(self, batch: PairBatch) -> tuple[torch.Tensor, BatchIndex]:
        """(n,) the batch's distinct node rows, and where each user, positive and negative sits among them."""
        b = len(batch.users)
        nodes = torch.cat([batch.users, batch.pos + self.num_users, batch.neg.reshape(-1) + self.num_users])
        unique, inverse = torch.unique(nodes, return_inverse=True)
        return unique, BatchIndex(inverse[:b], inverse[b:2 * b], inverse[2 * b:].view(batch.neg.shape))

    def pair_embeddings(self, batch: PairBatch, table: torch.Tensor, index: BatchIndex
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (b, d), p (b, d), n (b, d) or (b, k, d), and the negatives used, (b,) or (b, k), from a table.

        With (b, k, c) candidates (dynamic negative sampling, Zhang et al. 2013) each negative is the candidate the
        user scores highest, chosen on detached scores: only the kept candidates enter the autograd graph.
        """
        u, p, neg, slots = table[index.users], table[index.pos], batch.neg, index.neg
        if neg.dim() == 3:
            # index_select, not table[slots]: the same rows, ~1.7x faster for a (b, k, c) gather of 64-d rows
            candidates = table.detach().index_select(0, slots.flatten()).view(*slots.shape, table.shape[1])
            choice = hardest_candidates(u.detach(), candidates)
            neg, slots = neg.gather(2, choice).squeeze(2), slots.gather(2, choice).squeeze(2)
        return u, p, table[slots], neg

    def reduce_samples(self, per_sample: torch.Tensor, batch: Optional[PairBatch] = None) -> torch.Tensor:
        """Scalar from the batch's (b,) per-sample losses: the mean, or the DRO objective of the `dro:` section."""
        return self.reduction(per_sample, batch)

    def pairwise_terms(self, batch: PairBatch, table: torch.Tensor,
                       index: BatchIndex) -> tuple[torch.Tensor, torch.Tensor]:
        """(b,) per-sample BPR and the scalar L2 of the batch's ego embeddings, from propagated rows `table`.

        neg: (b,) one negative each; (b, k): BPR averaged over a sample's pairs and each negative's L2 counted 1/k;
        (b, k, c): dynamic negative sampling (see pair_embeddings).
        """
        u, p, n, neg = self.pair_embeddings(batch, table, index)
        neg_scores = (u * n).sum(-1) if n.dim() == 2 else (u.unsqueeze(1) * n).sum(-1)
        b, k = len(batch.users), neg.shape[1] if neg.dim() == 2 else 1
        ego = self.ego_rows(torch.cat([batch.users, batch.pos + self.num_users, neg.reshape(-1) + self.num_users]))
        ego_users, ego_pos, ego_neg = ego.split([b, b, b * k])
        l2 = l2_reg(b, ego_users, ego_pos) + l2_reg(b, ego_neg) / k
        return bpr_per_sample((u * p).sum(1), neg_scores), l2

    def pairwise_loss(self, batch: PairBatch, table: torch.Tensor, index: BatchIndex) -> dict[str, torch.Tensor]:
        """BPR (reduced by reduce_samples) + reg * L2 on the batch's ego embeddings, from propagated rows `table`."""
        per_sample, l2 = self.pairwise_terms(batch, table, index)
        bpr = self.reduce_samples(per_sample, batch)
        return {"loss": bpr + self.reg * l2, "bpr": bpr, "l2": l2}

    def loss(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 with the batch's rows propagated once."""
        rows, index = self.batch_rows(batch)
        return self.pairwise_loss(batch, self.propagate(rows), index)

    def train(self, mode: bool = True) -> "Recommender":
        """Switch mode and drop cached embeddings (fused optimizers update parameters without a version bump)."""
        self._cache = None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        """Load parameters and drop cached embeddings."""
        self._cache = None
        return super().load_state_dict(*args, **kwargs)

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (num_users, dim) user and (num_items, dim) item embeddings, cached until parameters or graph change."""
        key = (id(self.graph),) + tensors_state_key(self.parameters())
        if self._cache is None or self._cache[0] != key:
            final = self.propagate()
            self._cache = (key, (final[:self.num_users], final[self.num_users:]))
        return self._cache[1]

    @torch.no_grad()
    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function users (m,) -> scores (m, num_items) against every item; default: dot product of embeddings.

        Called once per evaluation, so a model computes what all users share (embeddings, fused features) here.
        """
        return dot_scorer(*self.embeddings())


def dot_scorer(user_emb: torch.Tensor, item_emb: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """users (m,) -> (m, num_items) scores user_emb[users] @ item_emb.T, the item side transposed once."""
    item_t = item_emb.t().contiguous()
    return lambda users: user_emb[users] @ item_t
