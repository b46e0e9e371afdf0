"""How much of the adjacency a training batch's L-hop neighbourhood covers: the bound on "propagate only where the
batch's rows need it" (the scale issue's candidate for cache-aware propagation).

    python -m benchmarks.neighbourhood --data ../shared/data/gowalla      # batch 2048
    python -m benchmarks.neighbourhood --sizes 1M,10M                      # synthetic graphs, ~400 batches an epoch

LightGCN's loss needs layer L only at the batch's rows S_L (users, positives, negatives; graphrec already computes
the last layer there alone), layer L-1 at S_{L-1} = S_L + their neighbours, and so on. Layer k restricted to S_k
costs nnz(A[S_k, :]) instead of nnz(A). Prints, per layer k = L..1, |S_k| and nnz(A[S_k, :]) as shares of the
graph, for a few seeded batches (one uniform negative per positive).
"""
from __future__ import annotations

import argparse

import torch

from graphrec.graph.adjacency import NormalizedAdjacency, csr_row_entries

from .common import parse_count


def coverage(crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor, layers: int) -> list[tuple[float, float]]:
    """[(share of nodes in S_k, share of adjacency entries in the rows S_k)] for k = layers..1 from S_L = rows."""
    num_nodes, degree = len(crow) - 1, crow[1:] - crow[:-1]
    needed = torch.zeros(num_nodes, dtype=torch.bool)
    needed[rows] = True
    out = []
    for _ in range(layers):
        nodes = needed.nonzero().squeeze(1)
        out.append((len(nodes) / num_nodes, float(degree[nodes].sum()) / len(col)))
        needed[col[csr_row_entries(crow, nodes)[1]]] = True
    return out


def dataset_for(name: str):
    """A LightGCN-format folder, or a synthetic graph of that many training events (benchmarks.workers)."""
    if any(ch.isdigit() for ch in name) and "/" not in name:
        from .workers import synthetic_dataset
        return synthetic_dataset(parse_count(name)), None
    from graphrec.config import build_config
    from graphrec.data.loader import load_dataset
    cfg = build_config({"name": "nbhd", "data": {"path": name}, "model": {"name": "lightgcn"},
                        "output_dir": "unused"}, source="benchmark")
    return load_dataset(cfg), 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a LightGCN-format folder (batch 2048)")
    parser.add_argument("--sizes", default="1M", help="synthetic training events, e.g. 1M,10M (batch = train / 400)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    print("| graph | nodes | adjacency entries | batch | " +
          " | ".join(f"S_{k}: nodes, entries" for k in range(args.layers, 0, -1)) + " |")
    print("|---|---|---|---|" + "---|" * args.layers)
    for name in [args.data] if args.data else args.sizes.split(","):
        dataset, batch = dataset_for(name)
        users, items = torch.from_numpy(dataset.train.user).long(), torch.from_numpy(dataset.train.item).long()
        adj = NormalizedAdjacency(users, items, dataset.num_users, dataset.num_items)
        batch = batch or -(-len(users) // 400)
        generator = torch.Generator().manual_seed(0)
        shares = []
        for _ in range(args.batches):
            pick = torch.randint(len(users), (batch,), generator=generator)
            negatives = torch.randint(dataset.num_items, (batch,), generator=generator)
            rows = torch.cat([users[pick], dataset.num_users + items[pick], dataset.num_users + negatives]).unique()
            shares.append(coverage(adj.crow, adj.col, rows, args.layers))
        mean = [(sum(s[k][0] for s in shares) / len(shares), sum(s[k][1] for s in shares) / len(shares))
                for k in range(args.layers)]
        print(f"| {name} | {adj.num_nodes:,} | {len(adj.col):,} | {batch:,} | " +
              " | ".join(f"{n:.1%}, {e:.1%}" for n, e in mean) + " |")


if __name__ == "__main__":
    main()
