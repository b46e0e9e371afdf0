"""The measured workloads: graphrec's training batch, the SpMM floor, PyG's LightGCN loop, dense reference ranking."""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .common import Timing

# The LightGCN paper's Gowalla settings, shared by every implementation measured here.
SETTINGS = {"batch_size": 2048, "embedding_dim": 64, "num_layers": 3, "lr": 0.001, "reg": 1e-4}
QUICK_SYNTHETIC = {"num_users": 1500, "num_items": 1000, "mean_degree": 20.0}


def graphrec_config(data: Optional[str], threads: int, output_dir: str, quick: bool = False,
                    batch_size: int = SETTINGS["batch_size"], lr: float = SETTINGS["lr"], epochs: int = 1,
                    topk: tuple[int, ...] = (20,), synthetic: Optional[dict] = None, train_extra: Optional[dict] = None,
                    valid_ratio: float = 0.0, model_extra: Optional[dict] = None):
    """A graphrec Config for LightGCN (or the model model_extra names, with its keys) with the shared settings on a
    LightGCN-format folder or synthetic data.

    split.valid_ratio 0 is the paper protocol (train on all of train.txt, evaluate on test.txt); above 0 a validation
    split is carved from train for model selection.
    """
    from graphrec.config import build_config
    raw: dict[str, Any] = {
        "name": "bench", "seed": 2020, "device": os.environ.get("GRAPHREC_BENCH_DEVICE", "cpu"),
        "output_dir": output_dir,
        "split": {"valid_ratio": valid_ratio},
        "model": {"name": "lightgcn", "embedding_dim": SETTINGS["embedding_dim"],
                  "num_layers": SETTINGS["num_layers"], "init_std": 0.1, **(model_extra or {})},
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "reg": SETTINGS["reg"], "threads": threads,
                  "progress": False, "patience": 0, **(train_extra or {})},
        "eval": {"topk": list(topk), "metrics": ["recall", "ndcg", "precision", "hit", "mrr"]},
        "tracking": {"mode": "disabled"},
    }
    if quick or data is None:
        raw["data"] = {"format": "synthetic", "synthetic": {**QUICK_SYNTHETIC, **(synthetic or {})}}
        raw["split"] = {"method": "random", "valid_ratio": valid_ratio, "test_ratio": 0.2}
    else:
        raw["data"] = {"path": str(Path(data).resolve()), "format": "lightgcn",
                       "files": {"train": "train.txt", "test": "test.txt"}}
    return build_config(raw)


class GraphrecSession:
    """graphrec's own Trainer (model, optimizer, sampler, evaluators) in a throwaway run folder."""

    def __init__(self, data: Optional[str], threads: int, quick: bool = False, dataset=None, **cfg_kwargs):
        import contextlib
        import io
        from graphrec.trainer import Trainer
        self.tmp = tempfile.mkdtemp(prefix="graphrec-bench-run-")
        self.cfg = graphrec_config(data, threads, self.tmp, quick, **cfg_kwargs)
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # data warnings: printed once by `graphrec data info`
            self.trainer = Trainer(self.cfg, dataset=dataset)
        self.setup_seconds = time.perf_counter() - start
        self.dataset = self.trainer.dataset
        self.model, self.optimizer = self.trainer.model, self.trainer.optimizer

    @property
    def num_batches(self) -> int:
        """Batches in one epoch."""
        return math.ceil(len(self.dataset.train) / self.cfg.train.batch_size)

    def batches(self):
        """A fresh epoch's (users, pos, neg) batch iterator, as the Trainer draws it (Trainer.batches)."""
        return self.trainer.batches()

    def epoch_overhead(self) -> float:
        """Seconds of the per-epoch work before the first batch: shuffle and negative sampling of every event."""
        start = time.perf_counter()
        next(iter(self.batches()))
        return time.perf_counter() - start

    def step(self, batch) -> float:
        """One training step as the Trainer does it: loss, zero_grad, backward, optimizer step; returns the loss."""
        losses, _ = self.trainer.step(batch)
        return float(losses["loss"].detach())

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def plain_normalized_csr(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> torch.Tensor:
    """D^-1/2 A D^-1/2 as a torch CSR tensor the way a user would build it: dataset node order, int64 indices."""
    n = num_users + num_items
    rows = torch.from_numpy(np.concatenate([users, items + num_users]))
    cols = torch.from_numpy(np.concatenate([items + num_users, users]))
    degree = torch.bincount(rows, minlength=n).float()
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[degree == 0] = 0
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), inv_sqrt[rows] * inv_sqrt[cols], (n, n)).coalesce()
    return coo.to_sparse_csr()


class SpmmFloor:
    """The SpMM floor of one LightGCN batch: num_layers forward + num_layers backward torch.sparse.mm products."""

    def __init__(self, csr: torch.Tensor, dim: int, num_layers: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.csr, self.num_layers = csr, num_layers
        self.x = torch.randn(csr.shape[0], dim, generator=gen) * 0.1
        self.grad = torch.randn(csr.shape[0], dim, generator=gen) * 1e-3

    def batch(self) -> None:
        """2 * num_layers products, each (num_nodes, num_nodes) CSR @ (num_nodes, dim) dense."""
        h, g = self.x, self.grad
        for _ in range(self.num_layers):
            h = torch.sparse.mm(self.csr, h)
        for _ in range(self.num_layers):
            g = torch.sparse.mm(self.csr, g)


def interleaved(blocks: dict[str, tuple[callable, int]], rounds: int, clock=time.perf_counter) -> dict[str, Timing]:
    """Time several workloads in alternating rounds (so background load hits them alike).

    blocks: name -> (fn taking no arguments, calls per round); returns per-call Timing of each, in seconds of
    `clock` (wall time by default; time.process_time counts only this process's CPU, steadier on a shared machine).
    """
    out = {name: Timing() for name in blocks}
    for _ in range(rounds):
        for name, (fn, calls) in blocks.items():
            for _ in range(calls):
                start = clock()
                fn()
                out[name].add(clock() - start)
    return out


@dataclass
class PygLoop:
    """PyG 2.x's LightGCN in its standard training loop (examples/lightgcn.py), with the shared settings."""

    edge_index: torch.Tensor
    train_edge_label_index: torch.Tensor
    num_users: int
    num_items: int
    batch_size: int
    model: Any
    optimizer: torch.optim.Optimizer
    sparse_adj: bool = False

    @classmethod
    def build(cls, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int,
              batch_size: int = SETTINGS["batch_size"], sparse_adj: bool = False, seed: int = 2020) -> "PygLoop":
        """edge_index of the training graph in both directions, items offset by num_users.

        sparse_adj=True passes the graph as a torch.sparse CSR adjacency (adj_t) instead: PyG's faster path.
        """
        from torch_geometric.nn.models import LightGCN
        torch.manual_seed(seed)
        u = torch.from_numpy(users)
        i = torch.from_numpy(items) + num_users
        train_eli = torch.stack([u, i])
        edge_index = torch.cat([train_eli, train_eli.flip(0)], dim=1)
        if sparse_adj:
            from torch_geometric.utils import to_torch_csr_tensor
            n = num_users + num_items
            edge_index = to_torch_csr_tensor(edge_index.flip(0), size=(n, n))  # adj_t: row = target
        model = LightGCN(num_nodes=num_users + num_items, embedding_dim=SETTINGS["embedding_dim"],
                         num_layers=SETTINGS["num_layers"])
        optimizer = torch.optim.Adam(model.parameters(), lr=SETTINGS["lr"])
        return cls(edge_index, train_eli, num_users, num_items, batch_size, model, optimizer, sparse_adj)

    def loader(self):
        """Shuffled index batches over the training edges (torch DataLoader over a range, as in the example)."""
        return iter(torch.utils.data.DataLoader(range(self.train_edge_label_index.size(1)), shuffle=True,
                                                batch_size=self.batch_size))

    def step(self, index: torch.Tensor) -> float:
        """One batch of the example's train(): uniform random negatives, BPR + lambda_reg 1e-4 L2."""
        pos = self.train_edge_label_index[:, index]
        neg = torch.stack([pos[0], torch.randint(self.num_users, self.num_users + self.num_items,
                                                  (index.numel(),))], dim=0)
        edge_label_index = torch.cat([pos, neg], dim=1)
        self.optimizer.zero_grad()
        pos_rank, neg_rank = self.model(self.edge_index, edge_label_index).chunk(2)
        loss = self.model.recommendation_loss(pos_rank, neg_rank, node_id=edge_label_index.unique(),
                                              lambda_reg=SETTINGS["reg"])
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def dense_reference_metrics(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                            seen: list[np.ndarray], truth: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean Recall/NDCG/Precision/Hit/MRR@k over `users` by a full dense score row and a stable argsort per user.

    seen[j] / truth[j]: the training items and the test items of users[j]. Ties go to the lower item id
    (stable sort of the negated scores). A deliberately plain loop: it is the reference, not the fast path.
    """
    sums = {"recall": 0.0, "ndcg": 0.0, "precision": 0.0, "hit": 0.0, "mrr": 0.0}
    user_emb, item_t = user_emb.cpu(), item_emb.cpu().t().contiguous()
    chunk = 256
    for start in range(0, len(users), chunk):
        rows = users[start:start + chunk]
        scores = (user_emb[torch.from_numpy(rows)] @ item_t).numpy().astype(np.float64)
        for j, row in enumerate(scores):
            row[seen[start + j]] = -np.inf
            ranked = np.argsort(-row, kind="stable")[:k]
            relevant = np.zeros(len(row), dtype=bool)
            relevant[truth[start + j]] = True
            hits = relevant[ranked]
            n_rel = len(truth[start + j])
            dcg = float((hits / np.log2(np.arange(2, len(hits) + 2))).sum())
            idcg = float((1.0 / np.log2(np.arange(2, min(n_rel, k) + 2))).sum())
            sums["recall"] += hits.sum() / n_rel
            sums["precision"] += hits.sum() / k
            sums["hit"] += float(hits.any())
            sums["ndcg"] += dcg / idcg
            sums["mrr"] += 1.0 / (np.flatnonzero(hits)[0] + 1) if hits.any() else 0.0
    return {f"{m}@{k}": v / len(users) for m, v in sums.items()}


def per_user_lists(crow: np.ndarray, col: np.ndarray, users: np.ndarray) -> list[np.ndarray]:
    """The CSR rows `users` as a list of item arrays."""
    return [col[crow[u]:crow[u + 1]] for u in users]
