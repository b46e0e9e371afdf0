"""The model interface: loss(users, pos, neg) for training, embeddings() for full-ranking evaluation."""
from __future__ import annotations

from typing import Optional

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..config import ModelConfig
from ..data.dataset import Dataset
from ..graph.adjacency import NormalizedAdjacency
from ..losses import bpr_loss, l2_reg

_optimizer_steps = 0  # bumped after every torch optimizer step; fused ones do not bump parameters' _version


def _count_optimizer_step(optimizer, args, kwargs) -> None:  # noqa: ARG001
    """Global optimizer step hook: count the step so that every embeddings() cache sees it."""
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


@torch.no_grad()
def hardest_candidates(users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(b, k, 1) index of the candidate each user scores highest; users (b, d), candidates (b, k, c, d)."""
    return torch.einsum("bkcd,bd->bkc", candidates, users).argmax(-1, keepdim=True)


class Recommender(torch.nn.Module):
    """Base of every model: one (num_users + num_items, dim) ego embedding table, users first.

    Initialization (the one documented init): normal(0, init_std), as in the LightGCN reference code.
    Subclasses define `config_class`, `propagate(rows)` and may override `loss`.
    """

    config_class = ModelConfig
    registry_name = "base"
    summary = ""

    def __init__(self, cfg: ModelConfig, dataset: Dataset, graph: Optional[NormalizedAdjacency]):
        super().__init__()
        self.cfg = cfg
        self.num_users, self.num_items = dataset.num_users, dataset.num_items
        self.graph = graph
        self.embedding = torch.nn.Parameter(torch.empty(self.num_users + self.num_items, cfg.embedding_dim))
        torch.nn.init.normal_(self.embedding, std=cfg.init_std)
        self._cache: Optional[tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = None

    def propagate(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final node embeddings, (num_nodes, dim) or (len(rows), dim) for the given node rows."""
        raise NotImplementedError

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 on the batch's ego embeddings; returns named scalars.

        users/pos: (batch,) ids. neg: (batch,) one negative each; (batch, k) k negatives, BPR averaged over
        every pair and each negative's L2 counted 1/k; (batch, k, c) dynamic negative sampling, where each of
        the k negatives is the highest-scoring of c candidates under the current model (Zhang et al., 2013).
        """
        b = len(users)
        nodes = torch.cat([users, pos + self.num_users, neg.reshape(-1) + self.num_users])
        unique, inverse = torch.unique(nodes, return_inverse=True)
        table = self.propagate(unique)  # final embeddings of the batch's distinct nodes
        u, p, slots = table[inverse[:b]], table[inverse[b:2 * b]], inverse[2 * b:].view(neg.shape)
        if neg.dim() == 3:  # only the kept candidates enter the loss (and the autograd graph)
            choice = hardest_candidates(u.detach(), table.detach()[slots])
            neg, slots = neg.gather(2, choice).squeeze(2), slots.gather(2, choice).squeeze(2)
        n = table[slots]
        neg_scores = (u * n).sum(-1) if neg.dim() == 1 else (u.unsqueeze(1) * n).sum(-1)
        bpr = bpr_loss((u * p).sum(1), neg_scores)
        k = neg.shape[1] if neg.dim() == 2 else 1
        ego = self.embedding
        l2 = l2_reg(b, ego[users], ego[pos + self.num_users]) + l2_reg(b, ego[neg.reshape(-1) + self.num_users]) / k
        return {"loss": bpr + reg * l2, "bpr": bpr, "l2": l2}

    def forward(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float) -> dict[str, torch.Tensor]:
        """Same as loss(); lets DistributedDataParallel wrap the model."""
        return self.loss(users, pos, neg, reg)

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
        """Final (num_users, dim) user and (num_items, dim) item embeddings, cached until parameters change."""
        key = (_optimizer_steps,) + tuple((id(p), p._version, p.data_ptr()) for p in self.parameters())
        if self._cache is None or self._cache[0] != key:
            final = self.propagate()
            self._cache = (key, (final[:self.num_users], final[self.num_users:]))
        return self._cache[1]
