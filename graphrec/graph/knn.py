"""Item-item kNN graphs from item features: chunked top-k cosine, symmetrized, D^-1/2 S D^-1/2, cached on disk."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import torch

from ..checkpoint import save_checkpoint
from ..errors import GraphrecError

Device = Union[torch.device, str, None]
# Exact ties (items with one feature row) are broken by a pseudo-random offset below float32's resolution of a cosine:
# without it the block layout chose among tied neighbours, and a few items became everyone's neighbour
TIE_BREAK = 1e-9


def knn_graph(features: torch.Tensor, k: int, chunk_rows: int = 4096, device: Device = None,
              weighted: bool = False) -> torch.Tensor:
    """(n, n) sparse CSR D^-1/2 S D^-1/2 of the top-k cosine neighbours of (n, d) `features`.

    Each row keeps its k most cosine-similar other items (never itself; exact ties broken by TIE_BREAK); S is the
    union of these edges in both directions, so it is symmetric, and D holds S's row sums. FREEDOM style by
    default: S is binary.
    `weighted=True` is LATTICE style: S holds the cosine (clamped at 0). Both reference codes normalize the
    one-directional top-k matrix instead, which is not symmetric. Similarities are computed in
    (chunk_rows, chunk_rows) blocks, so no dense (n, n) matrix is ever held; only blocks on or above the diagonal
    are computed, each serving the top-k of its rows and of its columns.
    """
    if k < 1:
        raise GraphrecError(f"model.knn_k is {k}; use a positive number of neighbours, e.g. 10")
    device = torch.device(device) if device is not None else features.device
    n = features.shape[0]
    best = topk_cosine_neighbours(features, k, chunk_rows, device)
    k = best.k
    src = torch.arange(n, device=device).repeat_interleave(k)
    dst = best.index.reshape(-1)
    weight = best.value.reshape(-1).float().clamp_min(0.0) if weighted else torch.ones(n * k, device=device)
    return _symmetric_normalized(torch.cat([src, dst]), torch.cat([dst, src]), torch.cat([weight, weight]), n)


@torch.no_grad()
def topk_cosine_neighbours(features: torch.Tensor, k: int, chunk_rows: int = 4096,
                           device: Device = None) -> "RunningTopK":
    """Each row's min(k, n - 1) most cosine-similar other rows of (n, d) `features`: (n, k) `value` and `index`.

    Computed in (chunk_rows, chunk_rows) blocks on or above the diagonal, each serving its rows and its columns.
    """
    device = torch.device(device) if device is not None else features.device
    n = features.shape[0]
    normed = torch.nn.functional.normalize(features.to(device=device, dtype=torch.float32), dim=1)
    best = RunningTopK(n, min(k, n - 1), device)
    # pair (i, j) gets TIE_BREAK * frac(r_i + r_j): symmetric, independent of the blocks, and the same on every run
    r = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)
    for start in range(0, n, chunk_rows):
        rows = normed[start:start + chunk_rows]
        for col_start in range(start, n, chunk_rows):
            cols = normed[col_start:col_start + chunk_rows]
            block = (rows @ cols.T).double()
            block += TIE_BREAK * torch.frac(r[start:start + len(rows), None] + r[None, col_start:col_start + len(cols)])
            if col_start == start:
                block.fill_diagonal_(-torch.inf)
            best.offer(start, block, col_start)
            if col_start != start:
                best.offer(col_start, block.T.contiguous(), start)
    return best


class RunningTopK:
    """The k largest values seen so far in each of n rows, (n, k) `value` and their column `index`."""

    def __init__(self, n: int, k: int, device: torch.device):
        self.k = k
        self.value = torch.full((n, k), -torch.inf, device=device, dtype=torch.float64)  # keeps the tie-break
        self.index = torch.zeros((n, k), dtype=torch.int64, device=device)

    def offer(self, row_start: int, block: torch.Tensor, col_start: int) -> None:
        """Merge a (r, m) block of rows row_start.. and columns col_start.. into the running top-k."""
        value, index = block.topk(min(self.k, block.shape[1]), dim=1)
        rows = slice(row_start, row_start + block.shape[0])
        merged_value = torch.cat([self.value[rows], value], dim=1)
        merged_index = torch.cat([self.index[rows], index + col_start], dim=1)
        self.value[rows], pick = merged_value.topk(self.k, dim=1)
        self.index[rows] = merged_index.gather(1, pick)


def _symmetric_normalized(rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n) CSR D^-1/2 S D^-1/2 where S merges duplicate (row, col) entries by max and drops zeros."""
    keys, inverse = torch.unique(rows * n + cols, return_inverse=True)
    merged = torch.zeros(len(keys), device=weight.device).scatter_reduce_(0, inverse, weight, "amax",
                                                                          include_self=False)
    keep = merged > 0
    keys, merged = keys[keep], merged[keep]
    row, col = keys // n, keys % n
    degree = torch.zeros(n, device=weight.device).index_add_(0, row, merged)
    inv_sqrt = degree.pow(-0.5).masked_fill_(degree == 0, 0.0)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=weight.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=n), 0)
    index_dtype = torch.int32 if len(keys) < 2 ** 31 else torch.int64  # MKL's fast path is int32
    return torch.sparse_csr_tensor(crow.to(index_dtype), col.to(index_dtype), inv_sqrt[row] * merged * inv_sqrt[col],
                                   (n, n))


def knn_cache_key(features: torch.Tensor, k: int, weighted: bool) -> str:
    """File name of a cached graph: a checksum of the (n, d) features as aligned to the items, plus k and the style.

    The aligned matrix, not the feature file, is hashed: the same file read for another dataset (or with another
    data.item_features_missing) gives other rows and so another graph.
    """
    digest = hashlib.sha256(str((tuple(features.shape), str(features.dtype))).encode())
    digest.update(features.detach().cpu().contiguous().numpy().tobytes())
    return f"knn-{digest.hexdigest()[:20]}-k{k}-{'cosine' if weighted else 'binary'}-tiebreak.pt"


def cached_knn_graph(features: torch.Tensor, k: int, cache_dir: Union[str, Path], chunk_rows: int = 4096,
                     device: Device = None, weighted: bool = False) -> torch.Tensor:
    """knn_graph, read from `cache_dir` when built before for the same features, k and style, else built and saved."""
    path = Path(cache_dir) / knn_cache_key(features, k, weighted)
    device = torch.device(device) if device is not None else features.device
    cached = _load_cached(path)
    if cached is not None:
        return cached.to(device)
    graph = knn_graph(features, k, chunk_rows, device, weighted)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"crow": graph.crow_indices().cpu(), "col": graph.col_indices().cpu(),
                           "values": graph.values().cpu(), "size": tuple(graph.shape)})
    return graph


def _load_cached(path: Path) -> Optional[torch.Tensor]:
    """The CSR graph saved at `path`, or None when there is none or it cannot be read (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return torch.sparse_csr_tensor(saved["crow"], saved["col"], saved["values"], saved["size"])
    except (RuntimeError, OSError, KeyError, EOFError, ValueError):
        return None
