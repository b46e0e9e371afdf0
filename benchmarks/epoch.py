"""`epoch`: one LightGCN training epoch on a dataset: graphrec vs PyG vs RecBole vs the SpMM floor."""
from __future__ import annotations

import argparse
import math
import time
from typing import Any

from .common import Table, Timing, environment, fmt_count, fmt_s, fmt_x, publish, set_threads
from .workloads import SETTINGS, GraphrecSession, PygLoop, SpmmFloor, interleaved, plain_normalized_csr


class BatchStream:
    """Endless graphrec batches: a new shuffled, freshly sampled epoch when one runs out."""

    def __init__(self, session: GraphrecSession):
        self.session = session
        self.iterator = session.batches()

    def next(self):
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = self.session.batches()
            return next(self.iterator)


def measure_graphrec_and_floor(session: GraphrecSession, rounds: int, per_round: int, warmup: int,
                               full: bool) -> dict[str, Any]:
    """graphrec batches and floor batches in alternating rounds, plus the per-epoch sampling overhead."""
    ds = session.dataset
    csr = plain_normalized_csr(ds.train.user, ds.train.item, ds.num_users, ds.num_items)
    floor = SpmmFloor(csr, SETTINGS["embedding_dim"], SETTINGS["num_layers"])
    stream = BatchStream(session)
    for _ in range(warmup):
        session.step(stream.next())
    floor.batch()
    timings = interleaved({"graphrec": (lambda: session.step(stream.next()), per_round),
                           "floor": (floor.batch, max(1, per_round // 2))}, rounds)
    overhead = Timing()
    for _ in range(3):
        overhead.add(session.epoch_overhead())
    out = {"graphrec": timings["graphrec"], "floor": timings["floor"], "overhead": overhead,
           "floor_nnz": int(csr.values().numel()), "floor_index_dtype": str(csr.crow_indices().dtype)}
    if full:
        start = time.perf_counter()
        for batch in session.batches():
            session.step(batch)
        out["graphrec_full_epoch_s"] = time.perf_counter() - start
    return out


def measure_pyg(session: GraphrecSession, warmup: int, batches: int, sparse_adj: bool, full: bool) -> dict[str, Any]:
    """PyG LightGCN in the example's loop; per-batch Timing (and a full epoch with --full)."""
    ds = session.dataset
    loop = PygLoop.build(ds.train.user, ds.train.item, ds.num_users, ds.num_items, sparse_adj=sparse_adj)
    loader = loop.loader()
    timing = Timing()
    for i in range(warmup + batches):
        index = next(loader, None)
        if index is None:
            loader = loop.loader()
            index = next(loader)
        start = time.perf_counter()
        loop.step(index)
        if i >= warmup:
            timing.add(time.perf_counter() - start)
    out: dict[str, Any] = {"timing": timing}
    if full:
        start = time.perf_counter()
        for index in loop.loader():
            loop.step(index)
        out["full_epoch_s"] = time.perf_counter() - start
    return out


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    quick = args.quick
    session = GraphrecSession(args.data, args.threads, quick=quick)
    ds = session.dataset
    n_batches = session.num_batches
    print(f"data: {ds.name}: {ds.num_users} users, {ds.num_items} items, {len(ds.train)} training events, "
          f"{n_batches} batches of {SETTINGS['batch_size']} per epoch; setup {session.setup_seconds:.1f} s")

    rounds, per_round = (2, 3) if quick else (args.rounds, 5)
    print(f"timing graphrec and the SpMM floor in {rounds} alternating rounds ...")
    gr = measure_graphrec_and_floor(session, rounds, per_round, warmup=2 if quick else 5, full=args.full)
    pyg_batches = 3 if quick else args.pyg_batches
    print(f"timing PyG LightGCN (edge_index) over {pyg_batches} batches ...")
    pyg = measure_pyg(session, 1 if quick else 2, pyg_batches, sparse_adj=False, full=args.full and not quick)
    pyg_sparse = None
    if not quick:
        print("timing PyG LightGCN (torch.sparse CSR adj_t) over 10 batches ...")
        pyg_sparse = measure_pyg(session, 2, 10, sparse_adj=True, full=False)
    rb: dict[str, Any] = {"error": "skipped (--quick)"} if quick else (
        {"error": "skipped (--no-recbole)"} if args.no_recbole else None)
    if rb is None:
        from .recbole_ref import recbole
        extra = ["--batches", str(args.recbole_batches), "--warmup", "3"] + (["--full"] if args.full else [])
        rb = recbole(ds, args.threads, extra=extra)

    g_batch = gr["graphrec"].mean
    g_epoch = gr["overhead"].median + g_batch * n_batches
    rows: list[dict[str, Any]] = [{
        "name": "graphrec LightGCN (Trainer: model.loss + backward + fused Adam)", "key": "graphrec",
        "batch": gr["graphrec"], "epoch": g_epoch, "epoch_how": f"{n_batches} x mean + {fmt_s(gr['overhead'].median)} "
        "sampling", "full": gr.get("graphrec_full_epoch_s")}]
    rows.append({"name": "PyG 2.x LightGCN, standard loop (edge_index)", "key": "pyg", "batch": pyg["timing"],
                 "epoch": pyg["timing"].mean * n_batches, "epoch_how": f"{n_batches} x mean",
                 "full": pyg.get("full_epoch_s")})
    if pyg_sparse is not None:
        rows.append({"name": "PyG 2.x LightGCN, torch.sparse CSR adj_t (not the example's loop)",
                     "key": "pyg_sparse", "batch": pyg_sparse["timing"],
                     "epoch": pyg_sparse["timing"].mean * n_batches, "epoch_how": f"{n_batches} x mean"})
    rb_note = None
    if "error" in rb:
        rb_note = f"RecBole: not measured: {rb['error']}"
        print(rb_note)
    else:
        t = Timing(rb["batch_s"])
        rows.append({"name": f"RecBole {rb['recbole']} LightGCN (its dataloader + calculate_loss + backward + Adam)",
                     "key": "recbole", "batch": t, "epoch": t.mean * rb["batches_per_epoch"],
                     "epoch_how": f"{rb['batches_per_epoch']} x mean", "full": rb.get("full_epoch_s")})
    rows.append({"name": "SpMM floor: 3 fwd + 3 bwd torch.sparse.mm (int64 CSR, dataset order)", "key": "floor",
                 "batch": gr["floor"], "epoch": gr["floor"].mean * n_batches, "epoch_how": f"{n_batches} x mean"})

    table = Table(f"LightGCN training epoch, {ds.name} ({fmt_count(len(ds.train))} events, batch "
                  f"{SETTINGS['batch_size']}, dim {SETTINGS['embedding_dim']}, {SETTINGS['num_layers']} layers)",
                  ["implementation", "per batch (mean)", "median", "timed batches", "epoch", "how",
                   "graphrec / this", "this / graphrec"])
    for row in rows:
        b = row["batch"]
        ratio = g_epoch / row["epoch"] if row["epoch"] else math.nan
        epoch_txt = fmt_s(row["epoch"]) + (f" (full epoch measured: {fmt_s(row['full'])})" if row.get("full") else "")
        table.add(row["name"], fmt_s(b.mean), fmt_s(b.median), b.n, epoch_txt, row["epoch_how"],
                  "1x" if row["key"] == "graphrec" else fmt_x(ratio),
                  "1x" if row["key"] == "graphrec" else fmt_x(1 / ratio))
    table.notes.append(f"graphrec and the floor were timed in {rounds} alternating rounds in the same process; PyG "
                       "right after; RecBole in its own virtualenv (subprocess) right after that.")
    table.notes.append("graphrec's Trainer applies its glibc allocator tuning process-wide, so PyG and the floor "
                       "(same process) run with it too; RecBole (own process) runs without it.")
    table.notes.append(f"floor CSR: {gr['floor_nnz']:,} non-zeros, {gr['floor_index_dtype']} indices, built with "
                       "coalesce().to_sparse_csr() in the dataset's own node order (users then items).")
    table.notes.append("graphrec's fused propagation needs fewer full products than the floor (the last forward layer "
                       "only at the batch's rows, backward by Horner's scheme), so it can beat the naive floor.")
    if rb_note:
        table.notes.append(rb_note)
    setup = Table("One-time setup (not in the epoch times)", ["implementation", "what", "seconds"])
    setup.add("graphrec", "read data, build normalized CSR, model, sampler, evaluator (Trainer())",
              f"{session.setup_seconds:.1f}")
    if "error" not in rb:
        setup.add("RecBole", "create_dataset + data_preparation", f"{rb['data_prep_s']:.1f}")
        setup.add("RecBole", "LightGCN(config, dataset) incl. dok_matrix adjacency + Trainer()",
                  f"{rb['model_build_s']:.1f}")
    results = {r["key"]: {"batch_mean_s": r["batch"].mean, "batch_median_s": r["batch"].median,
                          "timed_batches": r["batch"].n, "epoch_s": r["epoch"], "full_epoch_s": r.get("full")}
               for r in rows}
    results["dataset"] = {"name": ds.name, "train": len(ds.train), "batches_per_epoch": n_batches}
    if "error" in rb:
        results["recbole_error"] = rb["error"]
    env = environment(args.threads, None if "error" in rb else rb.get("recbole"))
    publish("epoch", [table, setup], env, results, write=not (args.quick or args.no_write))
    session.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=6, help="alternating graphrec/floor rounds (5 batches each)")
    parser.add_argument("--pyg-batches", type=int, default=20)
    parser.add_argument("--recbole-batches", type=int, default=20)
    parser.add_argument("--no-recbole", action="store_true")
    parser.add_argument("--full", action="store_true", help="also time whole epochs (graphrec, PyG, RecBole)")
