"""GEM pieces: the feature co-occurrence graph, per-epoch neighbour sampling, and the high-order embedding g(.)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data.fields import FieldRows, FieldSpace
from ..errors import GraphrecError
from .base import tensors_state_key


def feature_cooccurrence_graph(rows: FieldRows, space: FieldSpace) -> sp.csr_matrix:
    """(num_features, num_features) symmetric counts of two features of different fields in one positive row.

    Only rows with label > 0 count (pass training rows: validation and test would leak, negatives are noise);
    a feature whose value is 0 is absent from its row.
    """
    positive = rows.take(rows.label > 0)
    left, right = np.triu_indices(space.num_fields, k=1)
    present = positive.values != 0
    both = present[:, left] & present[:, right]
    src, dst = positive.features[:, left][both], positive.features[:, right][both]
    counts = np.ones(2 * len(src), dtype=np.float32)
    graph = sp.coo_matrix((counts, (np.concatenate([src, dst]), np.concatenate([dst, src]))),
                          shape=(space.num_features, space.num_features))
    return graph.tocsr()  # duplicates summed into counts


@dataclass
class Block:
    """One hop of a sampled subgraph; its dst nodes are the first num_dst of its src nodes."""

    src_nodes: torch.Tensor  # (n_src,) global feature ids
    num_dst: int
    neighbors: torch.Tensor  # (num_dst, fanout) positions into src_nodes
    mask: torch.Tensor  # (num_dst, fanout) bool, False for a dst node without neighbours


class NeighborSampler(nn.Module):
    """Per-epoch neighbour samples: `fanouts[h]` neighbours (with replacement) of every node for hop h + 1.

    `resample(generator)` draws, for each hop, a fixed-size sample of every node's neighbours (uniform, or in
    proportion to the co-occurrence counts when `weighted`); `sample(seeds)` reads it, so a batch's subgraph
    is a pure function of the draw. The draw is a persistent buffer (saved with the parameters, so a checkpoint
    evaluates with the neighbours it was trained on); the graph itself is kept as non-persistent buffers.
    """

    def __init__(self, graph: sp.csr_matrix, fanouts: list[int], weighted: bool = False) -> None:
        super().__init__()
        graph = sp.csr_matrix(graph)
        if any(f < 1 for f in fanouts):
            raise GraphrecError(f"gem.fanouts {fanouts}: every hop needs at least 1 neighbour")
        self.fanouts = list(fanouts)
        weights = graph.data.astype(np.float64) if weighted else np.ones(graph.nnz)
        self.register_buffer("indptr", torch.from_numpy(graph.indptr.astype(np.int64)), persistent=False)
        self.register_buffer("indices", torch.from_numpy(np.append(graph.indices, 0).astype(np.int64)),
                             persistent=False)  # one pad entry: a node without neighbours reads it, masked
        self.register_buffer("has_neighbors", torch.from_numpy(np.diff(graph.indptr) > 0), persistent=False)
        cumulative = np.concatenate([[0.0], np.cumsum(weights)])
        row_sums = np.repeat(cumulative[graph.indptr[1:]] - cumulative[graph.indptr[:-1]], np.diff(graph.indptr))
        self.register_buffer("cumulative", torch.from_numpy(cumulative), persistent=False)
        self.register_buffer("mean_weights", torch.from_numpy((weights / row_sums).astype(np.float32)),
                             persistent=False)  # an entry's weight in its row's neighbour mean
        for hop, fanout in enumerate(self.fanouts):
            self.register_buffer(f"draw{hop}", torch.zeros(graph.shape[0], fanout, dtype=torch.int64))
        self.resample(torch.Generator().manual_seed(0))

    def neighbors(self, nodes: torch.Tensor, fanout: int, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(len(nodes), fanout) freshly drawn neighbour ids (a node without any gets itself) and the bool mask of
        nodes that have neighbours."""
        start, end = self.indptr[nodes], self.indptr[nodes + 1]
        low, high = self.cumulative[start], self.cumulative[end]
        draw = torch.rand(len(nodes), fanout, generator=generator, dtype=torch.float64, device=nodes.device)
        target = low.unsqueeze(1) + draw * (high - low).unsqueeze(1)
        pos = torch.searchsorted(self.cumulative[1:], target, right=True)
        pos = torch.minimum(torch.maximum(pos, start.unsqueeze(1)), (end - 1).clamp(min=start).unsqueeze(1))
        has = (end > start).unsqueeze(1).expand(-1, fanout)
        return torch.where(has, self.indices[pos], nodes.unsqueeze(1)), has

    def mean_adjacency(self) -> torch.Tensor:
        """(n, n) sparse CSR whose row a averages a's neighbours with the sampling's weights: counts / row sum
        (weighted) or 1 / degree; a row without neighbours is empty. Wraps the buffers, computes nothing."""
        n = len(self.has_neighbors)
        return torch.sparse_csr_tensor(self.indptr, self.indices[:-1], self.mean_weights, size=(n, n))

    @torch.no_grad()
    def resample(self, generator: torch.Generator) -> None:
        """Redraw every node's neighbours for every hop (once per epoch); a node without any keeps itself."""
        nodes = torch.arange(len(self.has_neighbors), device=self.indptr.device)
        for hop, fanout in enumerate(self.fanouts):
            getattr(self, f"draw{hop}").copy_(self.neighbors(nodes, fanout, generator)[0])

    def sample(self, seeds: torch.Tensor, generator: Optional[torch.Generator] = None) -> list[Block]:
        """Blocks from the outermost hop to the seeds (blocks[-1] has the seeds as dst); seeds must be unique.

        Neighbours come from the epoch's draw, or, given a generator, are drawn afresh for this call's nodes.
        """
        blocks = []
        frontier = seeds
        for hop, fanout in enumerate(self.fanouts):
            has = self.has_neighbors[frontier].unsqueeze(1).expand(-1, fanout)
            sampled = (getattr(self, f"draw{hop}")[frontier] if generator is None
                       else self.neighbors(frontier, fanout, generator)[0])
            new = torch.unique(sampled)
            src = torch.cat([frontier, new[~torch.isin(new, frontier)]])
            ordered, order = torch.sort(src)
            blocks.append(Block(src, len(frontier), order[torch.searchsorted(ordered, sampled)], has))
            frontier = src
        return blocks[::-1]


class GraphSageMean(nn.Module):
    """g(.): `num_layers` hops over sampled blocks from the base (n, d) table, computed for the seeds only.

    'sage': h_a <- W [h_a || mean of sampled neighbours' h_b] with ReLU between layers (none after the last,
    so g(a) can take any sign like v_a); output h^(L). 'mean' (weightless, LightGCN-style ablation):
    h_a <- mean of sampled neighbours (h_a itself when it has none); output the mean of layers 0..L.
    """

    def __init__(self, dim: int, num_layers: int, aggregator: Literal["sage", "mean"] = "sage") -> None:
        super().__init__()
        if aggregator not in ("sage", "mean"):
            raise GraphrecError(f"gem.aggregator '{aggregator}' is unknown; use sage or mean")
        self.num_layers, self.aggregator = num_layers, aggregator
        # no bias (spec: h = sigma(W [h || mean])): a default bias of +-1/sqrt(2d) against rows of std ~0.01 made every
        # g(.) nearly the same vector at the start (cosine 0.99) and the FM term ~+6 on every row
        self.layers = nn.ModuleList(nn.Linear(2 * dim, dim, bias=False)
                                    for _ in range(num_layers if aggregator == "sage" else 0))

    def forward(self, table: torch.Tensor, seeds: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        """(len(seeds), d) high-order embeddings of the seeds from the (n, d) table and the sampler's blocks."""
        if len(blocks) != self.num_layers:
            raise ValueError(f"{len(blocks)} sampled hops for {self.num_layers} layers")
        h = table[blocks[0].src_nodes] if blocks else table[seeds]
        per_layer = [h[:len(seeds)]]
        for depth, block in enumerate(blocks):
            mask = block.mask.unsqueeze(-1).to(h.dtype)
            neighbor_mean = (h[block.neighbors] * mask).sum(1) / mask.sum(1).clamp(min=1)
            h = self._layer(depth, h[:block.num_dst], neighbor_mean, block.mask[:, 0])
            per_layer.append(h[:len(seeds)])
        return self._output(h, per_layer)

    def full(self, table: torch.Tensor, mean_adjacency: torch.Tensor, has_neighbors: torch.Tensor) -> torch.Tensor:
        """(n, d) g(.) of every node over all its neighbours: (n, n) sparse row-normalized adjacency, (n,) bool."""
        h, per_layer = table, [table]
        for depth in range(self.num_layers):
            h = self._layer(depth, h, torch.sparse.mm(mean_adjacency, h), has_neighbors)
            per_layer.append(h)
        return self._output(h, per_layer)

    def _layer(self, depth: int, own: torch.Tensor, neighbor_mean: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        """(m, d) layer `depth` of m nodes from their (m, d) own and neighbour-mean rows; (m,) bool has neighbours."""
        if self.aggregator == "mean":
            return torch.where(has.unsqueeze(1), neighbor_mean, own)
        h = self.layers[depth](torch.cat([own, neighbor_mean], dim=1))
        return torch.relu(h) if depth < self.num_layers - 1 else h

    def _output(self, last: torch.Tensor, per_layer: list[torch.Tensor]) -> torch.Tensor:
        """g(.): the last layer (sage) or the mean of layers 0..L (mean)."""
        return last if self.aggregator == "sage" else torch.stack(per_layer).mean(0)


class GemEmbedding(nn.Module):
    """GEM's embedding provider: (b, f, d) high-order g(i) for a batch's features, to pass as FieldEmbedding vectors.

    Call `resample(generator)` at each epoch start to redraw the neighbours; training reads that draw (or, with
    `redraw='batch'`, draws a batch's neighbours afresh at every step, GraphSAGE's usual form). Evaluation
    (eval mode) reads the same draw (`eval_neighbors='draw'`) or every neighbour (`'all'`: the mean over the whole
    neighbourhood, weighted like the sampling, so predictions do not depend on the last draw); the full g(.) table
    is computed once per state of the parameters.
    """

    def __init__(self, graph: sp.csr_matrix, dim: int, fanouts: list[int], num_layers: int,
                 aggregator: Literal["sage", "mean"] = "sage", weighted: bool = False,
                 eval_neighbors: Literal["draw", "all"] = "draw", redraw: Literal["epoch", "batch"] = "epoch",
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        if len(fanouts) != num_layers:
            raise GraphrecError(f"gem.fanouts {list(fanouts)} has {len(fanouts)} entries but gem.layers is "
                                f"{num_layers}; give one fanout per layer")
        self.sampler = NeighborSampler(graph, fanouts, weighted)
        self.encoder = GraphSageMean(dim, num_layers, aggregator)
        self.eval_neighbors, self.redraw = eval_neighbors, redraw
        if redraw == "batch":  # seeded from the run's global generator; checkpointed with the model's generators
            self.batch_gen = torch.Generator(device=device).manual_seed(int(torch.randint(2 ** 62, (1,))))
        self._full_cache: Optional[tuple[tuple, torch.Tensor]] = None

    def resample(self, generator: torch.Generator) -> None:
        """Redraw the sampled neighbours of every feature (once per epoch, from the trainer's view generator)."""
        self.sampler.resample(generator)

    def forward(self, table: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(b, f, d) g(.) of the (b, f) feature ids from the (n, d) table, over the draw (or every neighbour)."""
        if not self.training and self.eval_neighbors == "all":
            return self.full(table)[features]
        seeds, inverse = torch.unique(features, return_inverse=True)
        fresh = self.batch_gen if self.training and self.redraw == "batch" else None
        return self.encoder(table, seeds, self.sampler.sample(seeds, fresh))[inverse]

    def full(self, table: torch.Tensor) -> torch.Tensor:
        """(n, d) g(.) of every feature over all its neighbours from the (n, d) table; under no_grad cached until
        the table or a weight of g(.) changes."""
        if torch.is_grad_enabled():
            return self._full(table)
        key = tensors_state_key([table, *self.encoder.parameters()])
        if self._full_cache is None or self._full_cache[0] != key:
            self._full_cache = (key, self._full(table))
        return self._full_cache[1]

    def _full(self, table: torch.Tensor) -> torch.Tensor:
        """(n, d) g(.) of every feature over the sampler's mean adjacency."""
        return self.encoder.full(table, self.sampler.mean_adjacency(), self.sampler.has_neighbors)

