"""Row-partitioned LightGCN propagation over torch.distributed (train.distributed: partitioned).

Each of W ranks owns a set of nodes (`owner`), holds only its rows of D^-1/2 A D^-1/2, and propagates only its
rows' embeddings; a layer reads the columns of its row block, so before each product it receives the halo (the
rows of those columns that other ranks own) in one all_to_all. Every exchange is an autograd Function whose
backward sends the rows' gradients back to their owners (the reverse all_to_all) and adds them there, so the
forward and the gradient of the ego table's owned rows are those of single-process LightGCN, up to float32
summation order. See docs/distributed.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist


def balanced_owner(degree: torch.Tensor, num_users: int, world_size: int) -> torch.Tensor:
    """(num_nodes,) rank of each node: users, then items, each cut into `world_size` contiguous ranges holding about
    equal numbers of edges (at least one node each), so every rank gets ~1/W of the adjacency's entries."""
    owners = []
    for side in (degree[:num_users], degree[num_users:]):
        before = torch.cumsum(side.double(), 0) - side.double()  # edges of the nodes ahead of each node
        targets = before[-1].new_tensor([side.sum().item() * r / world_size for r in range(1, world_size)])
        cuts = torch.searchsorted(before, targets).tolist()  # the first node of ranks 1..W-1
        for r in range(len(cuts)):  # strictly increasing, leaving a node for every later rank
            cuts[r] = min(max(cuts[r], cuts[r - 1] + 1 if r else 1), len(side) - (world_size - 1 - r))
        owners.append(torch.searchsorted(side.new_tensor(cuts), torch.arange(len(side), device=side.device),
                                         right=True))
    return torch.cat(owners)


def label_propagation_owner(rows: torch.Tensor, cols: torch.Tensor, degree: torch.Tensor, start: torch.Tensor,
                            world_size: int, iterations: int = 20, slack: float = 0.05, seed: int = 0) -> torch.Tensor:
    """(num_nodes,) rank of each node after balanced label propagation over the symmetric edge list (rows, cols).

    From `start`, each round a seeded half of the nodes that have more neighbours on another rank than on their own
    ask to move there. Each rank admits askers, largest gain first, while its edge load after the round (admitted
    arrivals minus admitted departures) stays within (1 + slack) of an equal share: admitting fewer arrivals can
    only cancel departures elsewhere, so the admitted set is shrunk to its fixed point. A round that would leave a
    rank without nodes is dropped and ends the search.
    """
    num_nodes = len(degree)
    device = rows.device
    generator = torch.Generator().manual_seed(seed)
    adjacency = _csr(rows, cols, torch.ones(len(rows), device=device), (num_nodes, num_nodes))
    load_of, owner = degree.double(), start.clone()
    capacity = (1 + slack) * load_of.sum() / world_size
    ranks = torch.arange(world_size, device=device)
    for _ in range(iterations):
        member = torch.zeros(num_nodes, world_size, device=device).scatter_(1, owner[:, None], 1.0)
        counts = adjacency @ member  # (n, W) neighbours on each rank
        gain = counts.max(1).values - counts.gather(1, owner[:, None]).squeeze(1)
        if not (gain > 0).any():
            break
        draw = torch.rand(num_nodes, generator=generator).to(device) < 0.5
        movers = torch.nonzero((gain > 0) & draw).squeeze(1)
        target = counts.argmax(1)[movers]
        ranked = torch.argsort(target * (gain.max() + 1) - gain[movers], stable=True)  # by target, best gain first
        movers, target = movers[ranked], target[ranked]
        source, weight = owner[movers], load_of[movers]
        taken = torch.cumsum(weight, 0)  # load admitted within each target's run, in gain order
        taken -= torch.cat([taken.new_zeros(1), taken])[torch.searchsorted(target, ranks)][target]
        room = capacity - torch.zeros(world_size, dtype=torch.float64, device=device).index_add_(0, owner, load_of)
        admitted = torch.ones(len(movers), dtype=torch.bool, device=device)
        while True:
            leaving = torch.zeros(world_size, dtype=torch.float64, device=device).index_add_(
                0, source[admitted], weight[admitted])
            kept = admitted & (taken <= (room + leaving)[target])
            if torch.equal(kept, admitted):
                break
            admitted = kept
        moved = owner.clone()
        moved[movers[admitted]] = target[admitted]
        if torch.bincount(moved, minlength=world_size).min() == 0:
            break
        owner = moved
    return owner


@dataclass
class ExchangePlan:
    """One all_to_all of rows: this rank sends its local rows `send_index` (grouped by destination, `send_counts`
    per rank) and receives `recv_counts` rows per source rank; `request_order` puts the received rows back in
    the order they were requested."""

    send_index: torch.Tensor
    send_counts: list[int]
    recv_counts: list[int]
    request_order: torch.Tensor


class _Exchange(torch.autograd.Function):
    """(n_r, d) local rows -> (sum(recv_counts), d) rows received from their owners, grouped by source rank;
    backward returns each received row's gradient to its owner, added up at the sent rows."""

    @staticmethod
    def forward(ctx, local, plan):  # type: ignore[override]
        ctx.plan, ctx.num_local = plan, local.shape[0]
        received = local.new_empty((sum(plan.recv_counts), local.shape[1]))
        dist.all_to_all_single(received, local.index_select(0, plan.send_index), plan.recv_counts, plan.send_counts)
        return received

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        plan = ctx.plan
        returned = grad.new_empty((len(plan.send_index), grad.shape[1]))
        dist.all_to_all_single(returned, grad.contiguous(), plan.send_counts, plan.recv_counts)
        local_grad = grad.new_zeros((ctx.num_local, grad.shape[1])).index_add_(0, plan.send_index, returned)
        return local_grad, None


class _BlockProduct(torch.autograd.Function):
    """(n_r, d) = block @ ext for the CSR row block (n_r, m); backward block^T @ grad with the stored transpose."""

    @staticmethod
    def forward(ctx, ext, block, block_t):  # type: ignore[override]
        ctx.block_t = block_t
        out = ext.new_empty((block.shape[0], ext.shape[1]))
        return torch.addmm(out, block, ext, beta=0.0, out=out)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        grad = grad.contiguous()
        out = grad.new_empty((ctx.block_t.shape[0], grad.shape[1]))
        return torch.addmm(out, ctx.block_t, grad, beta=0.0, out=out), None, None


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """CSR (shape) with int32 indices (MKL's fast path) from COO entries without duplicates."""
    order = torch.argsort(rows * shape[1] + cols)
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    return torch.sparse_csr_tensor(crow.to(torch.int32), cols[order].to(torch.int32), values[order], shape)


class PartitionedGraph:
    """This rank's rows of D^-1/2 A D^-1/2 of the user-item graph (users first), the halo they read, and the
    exchanges that make row-partitioned LightGCN exact. Building it is collective: every rank must build it."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, num_users: int, num_items: int, rank: int,
                 world_size: int, partitioner: str = "ranges"):
        self.rank, self.world_size = rank, world_size
        self.num_users, self.num_nodes = num_users, num_users + num_items
        device = users.device
        rows, cols = torch.cat([users, items + num_users]), torch.cat([items + num_users, users])
        degree = torch.bincount(rows, minlength=self.num_nodes)
        inv_sqrt = degree.to(torch.float32).pow(-0.5).masked_fill_(degree == 0, 0.0)
        self.owner = balanced_owner(degree, num_users, world_size)
        if partitioner == "label_propagation":
            self.owner = label_propagation_owner(rows, cols, degree, self.owner, world_size)
            dist.broadcast(self.owner, src=0)  # one partition for all ranks, whatever their float summation order
        self.by_owner = torch.argsort(self.owner, stable=True)  # nodes grouped by rank: rank r's nodes in order
        self.owned_counts = torch.bincount(self.owner, minlength=world_size).tolist()
        self.rank_nodes = torch.split(self.by_owner, self.owned_counts)  # each rank's nodes, in id order
        self.owned = self.rank_nodes[rank]
        position = torch.empty_like(self.by_owner)  # each node's place in by_owner, minus its owner's start
        position[self.by_owner] = torch.arange(self.num_nodes, device=device)
        starts = torch.cumsum(torch.tensor([0] + self.owned_counts[:-1], device=device), 0)
        self.local_of = position - starts[self.owner]  # node -> its row in its owner's block
        mine = self.owner[rows] == rank
        rows, cols = rows[mine], cols[mine]
        halo = torch.unique(cols[self.owner[cols] != rank])
        self.halo = self.plan(halo)
        received = halo[torch.argsort(self.owner[halo], stable=True)]  # the halo in the order it arrives
        ext_of = self.local_of.clone()  # column -> position in [owned rows; halo rows as received]
        ext_of[received] = len(self.owned) + torch.arange(len(halo), device=device)
        values = inv_sqrt[rows] * inv_sqrt[cols]
        shape = (len(self.owned), len(self.owned) + len(halo))
        self.block = _csr(self.local_of[rows], ext_of[cols], values, shape)
        self.block_t = _csr(ext_of[cols], self.local_of[rows], values, shape[::-1])
        self.nnz = len(values)

    def plan(self, nodes: torch.Tensor) -> ExchangePlan:
        """The exchange that brings the rows of global `nodes` (any owners, repeats allowed) here (collective)."""
        owners = self.owner[nodes]
        grouped = torch.argsort(owners, stable=True)
        recv = torch.bincount(owners, minlength=self.world_size)
        send = torch.empty_like(recv)
        dist.all_to_all_single(send, recv)
        send_counts, recv_counts = send.tolist(), recv.tolist()
        wanted = nodes.new_empty(sum(send_counts))
        dist.all_to_all_single(wanted, nodes[grouped], send_counts, recv_counts)
        return ExchangePlan(self.local_of[wanted], send_counts, recv_counts, torch.argsort(grouped))

    def propagate(self, x0: torch.Tensor, layer_weights: Sequence[float]) -> torch.Tensor:
        """(n_r, d) sum_k w_k (A^k x)[owned rows] from the owned ego rows x0 (n_r, d); one halo exchange per layer."""
        out, h = x0 * layer_weights[0], x0
        for weight in layer_weights[1:]:
            ext = torch.cat([h, _Exchange.apply(h, self.halo)])
            h = _BlockProduct.apply(ext, self.block, self.block_t)
            out = torch.add(out, h, alpha=weight)
        return out

    def fetch(self, local: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """(len(nodes), d) rows of global `nodes` from every rank's (n_r, d) `local` block (collective,
        differentiable: each row's gradient returns to its owner)."""
        plan = self.plan(nodes)
        return _Exchange.apply(local, plan).index_select(0, plan.request_order)

    def gather(self, local: torch.Tensor, items_only: bool = False) -> torch.Tensor:
        """(num_nodes, d) table assembled from every rank's (n_r, d) block, or with `items_only` the (num_items, d)
        item rows alone (collective, not differentiable)."""
        keep = [nodes[nodes >= self.num_users] for nodes in self.rank_nodes] if items_only else self.rank_nodes
        mine = keep[self.rank]
        sent = local if not items_only else local[len(self.owned) - len(mine):]  # owned ids are sorted: items last
        padded = local.new_zeros((max(len(k) for k in keep), local.shape[1]))
        padded[:len(sent)] = sent
        blocks = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(blocks, padded)
        rows = torch.cat([b[:len(k)] for b, k in zip(blocks, keep)])
        where = torch.cat(keep) - (self.num_users if items_only else 0)
        return rows.new_empty((self.num_nodes - (self.num_users if items_only else 0), rows.shape[1])
                              ).index_copy_(0, where, rows)

    def scorer(self, local: torch.Tensor):
        """users (m,) this rank owns -> (m, num_items) dot-product scores, from this rank's (n_r, d) final rows and
        every rank's item rows (one all-gather of the items only; collective)."""
        items_t = self.gather(local, items_only=True).t().contiguous()
        return lambda users: local[self.local_of[users.to(self.local_of.device)]] @ items_t

    def halo_rows(self) -> int:
        """Rows this rank receives per layer (its edge cut's distinct remote endpoints)."""
        return sum(self.halo.recv_counts)
