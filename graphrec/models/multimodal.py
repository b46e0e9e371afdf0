"""Shared pieces of the multimodal models (VBPR, LATTICE, FREEDOM, IDSF): their keys, the modality check, the item
features on the device with one projection per modality, the per-modality item-item kNN graphs and the BPR loss
with L2 on the final vectors. See docs/multimodal.md."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from ..batches import PairBatch
from ..data.dataset import Dataset
from ..errors import GraphrecError
from ..graph.knn import cached_knn_graph, knn_graph
from ..losses import bpr_per_sample, l2_reg
from ..schema import ModelConfig
from .base import BatchIndex, ModelContext, Recommender


class MultimodalConfig(ModelConfig):
    """Keys of every multimodal model."""

    modalities: Optional[list[str]] = Field(None, description="item feature modalities the model uses, e.g. "
                                            "[text, genre] (default: every one the dataset has; one name: the "
                                            "one-modality ablation)")
    finetune_features: bool = Field(False, description="train the raw item features as parameters (the MMRec and "
                                    "IDSF codes do: items x feature dims extra parameters, no L2); false: fixed")


class ItemGraphConfig(MultimodalConfig):
    """Keys of the models that propagate over the user-item graph and per-modality item-item kNN graphs."""

    num_layers: int = Field(2, ge=0, description="user-item propagation layers (LightGCN mean of layers 0..L)")
    item_layers: int = Field(1, ge=0, description="item-item graph convolution layers")
    knn_k: int = Field(10, ge=1, description="neighbours per item in each modality's cosine kNN item-item graph")
    knn_cache_dir: Optional[str] = Field(None, description="folder caching the kNN graphs by features, k and style "
                                         "(none: built in memory each run)")


def check_modalities(requested: Optional[Sequence[str]], dataset: Dataset, key: str) -> list[str]:
    """The modalities a model uses: `requested` (default: all of the dataset's), each one the dataset has."""
    have = list(dataset.item_features)
    if not have:
        raise GraphrecError(f"{key}: the model needs item features but the dataset has none; set "
                            "data.item_features {name: file}, data.synthetic.item_features, or data.format: mmrec "
                            "with feature files")
    unknown = [m for m in (requested or []) if m not in have]
    if unknown:
        raise GraphrecError(f"{key} names modality '{unknown[0]}', which the dataset does not have; its item "
                            f"features are: {', '.join(have)}")
    if requested is not None and (not requested or len(set(requested)) != len(requested)):
        raise GraphrecError(f"{key} is {list(requested)}; name each modality once, at least one")
    return list(requested) if requested is not None else have


def dense_features(matrix) -> np.ndarray:
    """(num_items, d) float32 array of a dense or sparse (multi-hot) feature matrix."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)


class MultimodalRecommender(Recommender):
    """Ranking base over item features: `self.modalities`, `feature(m)` (num_items, d_m) on the device (a
    parameter with finetune_features), `projected(m, items)` = W_m x + b_m (.., dim), and the BPR loss with L2 on
    the batch's final vectors, as the MMRec and IDSF codes regularize (not the ego rows)."""

    config_class = MultimodalConfig

    def __init__(self, cfg: MultimodalConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        self.modalities = check_modalities(cfg.modalities, ctx.dataset, "model.modalities")
        raw = {m: torch.from_numpy(dense_features(ctx.dataset.item_features[m])).to(ctx.device)
               for m in self.modalities}
        if cfg.finetune_features:
            self.trainable_features = torch.nn.ParameterDict({m: torch.nn.Parameter(x.clone())
                                                              for m, x in raw.items()})
        self.raw_features = raw  # fixed copies (not saved in checkpoints): the kNN graphs are built from these
        self.projections = torch.nn.ModuleDict({m: torch.nn.Linear(x.shape[1], cfg.embedding_dim)
                                                for m, x in raw.items()})

    def feature(self, modality: str) -> torch.Tensor:
        """(num_items, d_m) item features of a modality: trainable or fixed."""
        return self.trainable_features[modality] if self.cfg.finetune_features else self.raw_features[modality]

    def projected(self, modality: str, items: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(num_items, dim) or (len(items), dim) projected features W_m x_i + b_m."""
        x = self.feature(modality)
        return self.projections[modality](x if items is None else x[items])

    def item_graphs(self, weighted: bool) -> dict[str, torch.Tensor]:
        """{modality: (num_items, num_items) CSR} symmetric normalized top-k cosine graphs of the raw features, built
        once on the device (cached on disk with model.knn_cache_dir); weighted: cosine edges (LATTICE), else 0/1."""
        cfg, device = self.cfg, self.embedding.device
        build: Callable[[torch.Tensor], torch.Tensor] = (
            (lambda x: knn_graph(x, cfg.knn_k, device=device, weighted=weighted)) if cfg.knn_cache_dir is None else
            (lambda x: cached_knn_graph(x, cfg.knn_k, cfg.knn_cache_dir, device=device, weighted=weighted)))
        return {m: build(self.raw_features[m]) for m in self.modalities}

    def with_item_rows(self, table: torch.Tensor, item_add: torch.Tensor,
                       rows: Optional[torch.Tensor]) -> torch.Tensor:
        """`table` (num_nodes or len(rows), dim) plus (num_items, dim) `item_add` on its item rows."""
        padded = torch.cat([item_add.new_zeros(self.num_users, item_add.shape[1]), item_add])
        return table + (padded if rows is None else padded[rows])

    def pairwise_loss(self, batch: PairBatch, table: torch.Tensor, index: BatchIndex) -> dict[str, torch.Tensor]:
        """BPR + reg * L2 of the batch's final user, positive and negative vectors (each of k negatives 1/k)."""
        u, p, n, _ = self.pair_embeddings(batch, table, index)
        neg_scores = (u * n).sum(-1) if n.dim() == 2 else (u.unsqueeze(1) * n).sum(-1)
        bpr = self.reduce_samples(bpr_per_sample((u * p).sum(1), neg_scores), batch)
        b = len(batch.users)
        k = n.shape[1] if n.dim() == 3 else 1
        l2 = l2_reg(b, u, p) + l2_reg(b, n) / k
        return {"loss": bpr + self.reg * l2, "bpr": bpr, "l2": l2}
