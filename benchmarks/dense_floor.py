"""The dense matrix products a model's training step cannot avoid, timed alone on this machine: a floor under its
step time that no change of graphrec's code can go below (only a faster GEMM, i.e. another device, can).

A step's unavoidable products are listed as (m, k, n) shapes of (m, k) x (k, n) products, from one real batch:
- a graph contrastive model's loss: per contrasted group of n nodes, the (n, d) x (d, n) cosine logits and the
  backward's two (n, n) x (n, d) products (twice with ssl_bidirectional);
- a multimodal model's feature projections: per modality of width d_m, (items, d_m) x (d_m, dim) forward and the
  weight's gradient (dim, items) x (items, d_m), over the batch's distinct items (VBPR), its positives and
  negatives each (FREEDOM's feature BPR terms) or every item (IDSF, LATTICE).
"""
from __future__ import annotations

import time
from typing import Callable

import torch

Product = tuple[int, int, int]
PROJECTS_EVERY_ITEM = ("idsf", "lattice")


def contrastive_products(model, batch) -> list[Product]:
    """(m, k, n) shapes of the contrastive loss's dense products in one step of a ContrastiveLightGCN."""
    from graphrec.losses import contrast_nodes
    cfg, d = model.cfg, model.cfg.embedding_dim
    products = []
    for nodes in contrast_nodes(batch.users, batch.pos, model.num_users, cfg.ssl_joint):
        n = len(nodes)
        products += [(n, d, n), (n, n, d), (n, n, d)]
    return products * (2 if cfg.ssl_bidirectional else 1)


def projection_products(model, batch, name: str) -> list[Product]:
    """(m, k, n) shapes of a multimodal model's feature projections (forward and weight gradient) in one step."""
    dim = model.cfg.embedding_dim
    if name in PROJECTS_EVERY_ITEM:
        items = model.num_items
    elif name == "freedom":
        items = len(batch.pos) + batch.neg.numel()
    else:
        rows, _ = model.batch_rows(batch)
        items = int((rows >= model.num_users).sum())
    products = []
    for modality in model.modalities:
        width = model.raw_features[modality].shape[1]
        products += [(items, width, dim), (dim, items, width)]
    return products


def time_products(products: list[Product], clock: Callable[[], float] = time.perf_counter,
                  repeats: int = 5, device: torch.device | str = "cpu") -> float:
    """Seconds (of `clock`) of one pass of torch.mm over `products` on `device`, the fastest of `repeats` passes."""
    operands = [(torch.randn(m, k, device=device), torch.randn(k, n, device=device)) for m, k, n in products]
    outs = [torch.empty(m, n, device=device) for m, _, n in products]
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for (a, b), out in zip(operands, outs):
            torch.mm(a, b, out=out)
        best = min(best, clock() - start)
    return best


def gflops(products: list[Product]) -> float:
    """Billions of floating-point operations (2 m k n each) in `products`."""
    return sum(2 * m * k * n for m, k, n in products) / 1e9
