"""`knn`: the cosine kNN item-item graph of synthetic item features (graphrec.graph.knn), wall and CPU time and peak
RSS in a fresh process; and `graphrec features text` throughput (items/s) when its offline encoder is installed."""
from __future__ import annotations

import argparse
import time
from typing import Any

from .common import Table, environment, fmt_mib, fmt_s, peak_rss_mib, publish, run_worker, set_threads


def knn_worker(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Build knn_graph of (items, dim) seeded Gaussian features in this process: seconds, CPU seconds, peak RSS."""
    import torch

    from graphrec.graph.knn import knn_graph
    features = torch.randn(spec["items"], spec["dim"], generator=torch.Generator().manual_seed(0))
    cpu, wall = time.process_time(), time.perf_counter()
    graph = knn_graph(features, spec["k"], chunk_rows=spec["chunk_rows"])
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "edges": int(graph.values().numel()), "peak_rss_mib": peak_rss_mib()}


def text_worker(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Encode `texts` short synthetic titles with graphrec's text encoder: items per second (wall and CPU)."""
    from graphrec.errors import GraphrecError
    from graphrec.features_cmd import embed_texts, load_text_encoder
    try:
        encoder = load_text_encoder("cpu")
    except GraphrecError as error:
        return {"error": str(error)}
    words = ["baby", "soft", "cotton", "blanket", "bottle", "organic", "stroller", "travel", "toy", "set"]
    texts = [" ".join(words[(i * j + j) % len(words)] for j in range(1, 9)) + f" {i}" for i in range(spec["texts"])]
    embed_texts(texts[:spec["batch_size"]], encoder, spec["batch_size"])  # warm-up: model load and first call
    cpu, wall = time.process_time(), time.perf_counter()
    embed_texts(texts, encoder, spec["batch_size"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "items_per_s": spec["texts"] / wall, "items_per_cpu_s": spec["texts"] / cpu}


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    items = 2000 if args.quick else args.items
    spec = {"items": items, "dim": args.dim, "k": args.k, "chunk_rows": args.chunk_rows}
    print(f"kNN graph of {items} items x {args.dim}-d, k = {args.k}, fresh process ...", flush=True)
    knn = run_worker("knn_graph", spec, args.threads)
    table = Table("Cosine kNN item graph (graphrec.graph.knn.knn_graph, fresh process; peak RSS includes Python, torch "
                  "and the features)", ["what", "wall", "CPU", "peak RSS", "work"])
    if "error" in knn:
        table.add("kNN graph", "not measured", "", "", knn["error"])
    else:
        table.add("kNN graph", fmt_s(knn["wall_s"]), fmt_s(knn["cpu_s"]), fmt_mib(knn["peak_rss_mib"]),
                  f"{items:,} items x {args.dim}-d, k {args.k}, chunk {args.chunk_rows}: {knn['edges']:,} edges")
    texts = args.texts
    text: dict[str, Any] = {"error": "skipped (--quick: loading the encoder takes ~20 s)" if args.quick else
                            "skipped (--no-text)"}
    if not (args.no_text or args.quick):
        print(f"graphrec features text on {texts} synthetic titles, fresh process ...", flush=True)
        text = run_worker("text_features", {"texts": texts, "batch_size": 128}, args.threads)
    if "error" in text:
        table.add("graphrec features text", "not measured", "", "", text["error"])
    else:
        table.add("graphrec features text", fmt_s(text["wall_s"]), fmt_s(text["cpu_s"]), "",
                  f"{texts:,} titles (8 words), batch 128: {text['items_per_s']:.0f} items/s wall, "
                  f"{text['items_per_cpu_s']:.0f} items/CPU-s")
    publish("knn", [table], environment(args.threads), {"knn": knn, "text": text},
            write=not (args.quick or args.no_write))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=100_000, help="synthetic items (default 100,000)")
    parser.add_argument("--dim", type=int, default=384, help="feature dimension (default 384)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per item (default 10)")
    parser.add_argument("--chunk-rows", type=int, default=4096, help="knn_graph's chunk_rows (default 4096)")
    parser.add_argument("--texts", type=int, default=1000, help="titles for the text-feature throughput")
    parser.add_argument("--no-text", action="store_true", help="skip the text-feature throughput")
