"""Paper model of row-partitioned LightGCN: the speed-up of N machines over one, from measured per-entry costs.

    python -m benchmarks.partitioned_model            # the markdown table of docs/distributed.md

Per training step with nnz adjacency entries, n nodes, d dims and L layers (2L products, forward and backward):
    T_1 = 2L c nnz d + a n d
    T_N = 2L c nnz d / N + a n d / N + 2L h_N 4d / B + (2L + 8) N lambda
c: seconds per entry per dim of one product; a: seconds per table entry of the Adam step (each rank steps only its
rows); h_N = min(n (N - 1) / N, nnz / N) halo rows per rank (a community-blind split); B: link bytes per second;
lambda: latency per collective.
"""
from __future__ import annotations

import argparse

C_PER_ENTRY_DIM = 3.7e-10  # 2.35e-8 s per entry at d = 64 on one core (docs/distributed.md, the quieter round)
ADAM_PER_ENTRY = 1.4e-9  # the fused Adam step on the 77,699 x 64 table: 7.2 ms
LATENCY = 50e-6  # assumed


def speedup(machines: int, nodes: float, per_node: float, gbit: float, dim: int = 64, layers: int = 3) -> float:
    """T_1 / T_N for a graph of `nodes` nodes with `per_node` adjacency entries each over a `gbit` Gbit/s link."""
    nnz = nodes * per_node
    compute = 2 * layers * C_PER_ENTRY_DIM * nnz * dim
    adam = ADAM_PER_ENTRY * nodes * dim
    halo = min(nodes * (machines - 1) / machines, nnz / machines)
    exchange = 2 * layers * halo * 4 * dim / (gbit * 1e9 / 8)
    return (compute + adam) / ((compute + adam) / machines + exchange + (2 * layers + 8) * machines * LATENCY)


def _cell(values: list[float]) -> str:
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v:.2f}") if high < 2 else (lambda v: f"{v:.1f}") if high < 10 else (lambda v: f"{v:.0f}")
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)} - {fmt(high)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[2, 4, 16, 64])
    args = parser.parse_args()
    print("| mean entries per node (nnz / n) | link | " + " | ".join(f"N = {m}" for m in args.machines) + " |")
    print("|---|---|" + "---|" * len(args.machines))
    for per_node, label in ((10, "10"), (23, "23 (Gowalla)"), (50, "50")):
        for gbit in (10, 100):
            cells = [_cell([speedup(m, n, per_node, gbit) for n in (1e6, 1e8)]) for m in args.machines]
            print(f"| {label} | {gbit} Gbit/s | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
