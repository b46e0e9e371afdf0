"""The symmetric-normalized bipartite adjacency D^-1/2 A D^-1/2 as a torch CSR tensor, built once, kept on device."""
from __future__ import annotations

from functools import cached_property
from typing import Optional

import torch


def csr_row_entries(crow: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(rows),) entry counts and (total,) positions in col/values of the CSR rows `rows`, in order."""
    counts = crow[rows + 1] - crow[rows]
    starts = torch.repeat_interleave(crow[rows] - torch.cumsum(counts, 0) + counts, counts)
    return counts, starts + torch.arange(len(starts), device=rows.device)


class NormalizedAdjacency:
    """D^-1/2 A D^-1/2 of the user-item graph, (num_users + num_items)^2; users first, then items.

    Holds the CSR tensor (for torch.sparse.mm); the int64 COO rows and columns the edge-wise backends read are
    built on first use, so the default backend keeps 8 bytes an entry (int32 column, float32 value) instead of 24.
    The matrix is symmetric, which the propagation's backward pass relies on.
    """

    def __init__(self, users: torch.Tensor, items: torch.Tensor, num_users: int, num_items: int,
                 entries: Optional[tuple[torch.Tensor, torch.Tensor]] = None):
        """`entries`: the (row, col) node ids of the users' and items' edges both ways, already in CSR order
        (`keep_edges` passes them; otherwise they are built and sorted here)."""
        self.num_users, self.num_items = num_users, num_items
        self.num_nodes = num_users + num_items
        self.users, self.items = users, items
        self._entry_edges: Optional[torch.Tensor] = None
        device = users.device
        if entries is None:
            order = self._csr_order()
            rows = torch.cat([users, items + num_users])
            cols = torch.cat([items + num_users, users])
            entries = rows[order], cols[order]
        row, col = entries
        counts = torch.bincount(row, minlength=self.num_nodes)
        degree = counts.to(torch.float32)
        inv_sqrt = degree.pow(-0.5).masked_fill_(degree == 0, 0.0)
        self.values = inv_sqrt[row] * inv_sqrt[col]
        crow = torch.zeros(self.num_nodes + 1, dtype=torch.int64, device=device)
        crow[1:] = torch.cumsum(counts, 0)
        self.crow = crow
        self.index_dtype = torch.int32 if row.numel() < 2 ** 31 else torch.int64  # MKL's fast path is int32
        self.csr = torch.sparse_csr_tensor(crow.to(self.index_dtype), col.to(self.index_dtype), self.values,
                                           (self.num_nodes, self.num_nodes))
        self.degree = degree

    @cached_property
    def row(self) -> torch.Tensor:
        """(nnz,) int64 row of every stored entry, in CSR order (built on first use)."""
        return torch.repeat_interleave(torch.arange(self.num_nodes, device=self.crow.device), self.crow.diff(),
                                       output_size=self.nnz)

    @cached_property
    def col(self) -> torch.Tensor:
        """(nnz,) int64 column of every stored entry, in CSR order (built on first use)."""
        return self.csr.col_indices().to(torch.int64)

    def _csr_order(self) -> torch.Tensor:
        """(2E,) order of the entries [user -> item edges, item -> user edges] by (row, col)."""
        rows = torch.cat([self.users, self.items + self.num_users])
        cols = torch.cat([self.items + self.num_users, self.users])
        return torch.argsort(rows * self.num_nodes + cols)

    def keep_edges(self, keep: torch.Tensor) -> "NormalizedAdjacency":
        """The renormalized adjacency of the edges where (E,) bool `keep` holds, filtered from this CSR's entries
        in order (no sort: the entry -> edge map is built once, on the first call)."""
        if self._entry_edges is None:
            self._entry_edges = self._csr_order() % len(self.users)
        kept = keep[self._entry_edges]
        return NormalizedAdjacency(self.users[keep], self.items[keep], self.num_users, self.num_items,
                                   entries=(self.row[kept], self.col[kept]))

    @classmethod
    def from_numpy(cls, users, items, num_users: int, num_items: int,
                   device: torch.device | str = "cpu") -> "NormalizedAdjacency":
        """Build from int arrays of the training events (duplicates must already be removed)."""
        return cls(torch.as_tensor(users, dtype=torch.int64, device=device),
                   torch.as_tensor(items, dtype=torch.int64, device=device), num_users, num_items)

    @property
    def nnz(self) -> int:
        """Number of stored entries (twice the number of training edges)."""
        return int(self.values.numel())

    def drop_edges(self, drop_rate: float, generator: Optional[torch.Generator] = None) -> "NormalizedAdjacency":
        """A renormalized adjacency of a random subgraph keeping each user-item edge with prob 1 - drop_rate."""
        return self.keep_edges(torch.rand(self.users.shape, generator=generator, device=self.users.device) >= drop_rate)

    def row_block(self, nodes: torch.Tensor) -> torch.Tensor:
        """CSR tensor (len(nodes), num_nodes) holding the rows `nodes` of the adjacency."""
        counts, take = csr_row_entries(self.crow, nodes)
        new_crow = torch.zeros(len(nodes) + 1, dtype=self.index_dtype, device=nodes.device)
        new_crow[1:] = torch.cumsum(counts, 0)
        return torch.sparse_csr_tensor(new_crow, self.col[take].to(self.index_dtype), self.values[take],
                                       (len(nodes), self.num_nodes))

    def to(self, device: torch.device | str) -> "NormalizedAdjacency":
        """The same adjacency on another device."""
        return NormalizedAdjacency(self.users.to(device), self.items.to(device), self.num_users, self.num_items)


def random_walk_adjacency(adj: NormalizedAdjacency, self_loops: bool = True) -> torch.Tensor:
    """(num_nodes, num_nodes) CSR D^-1 (A + I) (or D^-1 A) of the same user-item graph as `adj`; not symmetric.

    IDSF's structure graph (its official code): each node averages itself and its neighbours.
    """
    n = adj.num_nodes
    loops = torch.arange(n, device=adj.row.device) if self_loops else adj.row[:0]
    row, col = torch.cat([adj.row, loops]), torch.cat([adj.col, loops])
    degree = adj.degree + float(self_loops)
    values = degree.clamp_min(1.0).reciprocal()[row]
    return torch.sparse_coo_tensor(torch.stack([row, col]), values, (n, n)).coalesce().to_sparse_csr()
