"""`scale`: synthetic graphs of growing size, each in a fresh process: ns per non-zero, epoch, peak RSS, evaluation."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from .common import (REPO, Table, available_mib, save_figure, environment, fmt_count, fmt_mib, fmt_s, parse_count,
                     positive_int, publish, run_worker)

PLOT = REPO / "docs" / "benchmarks-scale.png"


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    """ns/nnz and epoch time against the number of non-zeros; returns a note (saved or why not)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"
    ok = [r for r in rows if not r.get("error")]
    if not ok:
        return "plot skipped: no size completed"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    nnz = [r["nnz"] for r in ok]
    left.plot(nnz, [r["ns_per_nnz"] for r in ok], "o-")
    left.set(xscale="log", xlabel="adjacency non-zeros", ylabel="ns per non-zero (one training batch)",
             title="graphrec LightGCN batch cost per non-zero")
    left.set_ylim(bottom=0)
    right.plot(nnz, [r["epoch_s"] / 60 for r in ok], "o-", label="training epoch (from timed batches)")
    ev = [r for r in ok if r.get("eval_s")]
    right.plot([r["nnz"] for r in ev], [r["eval_s"] / 60 for r in ev], "s--", color="C1",
               label="full-ranking evaluation, all users")
    extra = [r for r in ev if not r.get("eval_measured")]
    right.plot([r["nnz"] for r in extra], [r["eval_s"] / 60 for r in extra], "s", color="white", mec="C1",
               label="(hollow: extrapolated from a user sample)")
    right.set(xscale="log", yscale="log", xlabel="adjacency non-zeros", ylabel="minutes", title="epoch and evaluation")
    right.legend(fontsize=8)
    from matplotlib.ticker import NullFormatter
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_minor_formatter(NullFormatter())
    return save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    sizes = [parse_count(s) for s in (args.sizes or ("30k" if args.quick else "1M,3M,10M,30M")).split(",")]
    rows: list[dict[str, Any]] = []
    last_peak, last_size = None, None
    for size in sorted(sizes):
        label = fmt_count(size)
        if last_peak is not None:
            need = last_peak * size / last_size * 1.15
            free = available_mib()
            if need > 0.85 * free:
                rows.append({"label": label, "target": size, "error": f"skipped: needs ~{fmt_mib(need)} by "
                             f"extrapolation, {fmt_mib(free)} available"})
                print(f"{label}: {rows[-1]['error']}")
                continue
        spec = {"size": size, "batches": 2 if args.quick else args.batches, "warmup": 1,
                "eval_budget_s": 0 if args.quick else args.eval_budget, "eval_probe_users": args.eval_probe}
        print(f"{label}: generating and timing in a fresh process ...", flush=True)
        result = run_worker("scale_one", spec, args.threads, timeout=args.timeout)
        result["label"] = label
        rows.append(result)
        if "error" in result:
            print(f"{label}: failed: {result['error']}")
            continue
        print(f"{label}: {result['train']:,} events, {result['nnz']:,} nnz, batch {fmt_s(result['batch_mean_s'])}, "
              f"{result['ns_per_nnz']:.1f} ns/nnz, peak {fmt_mib(result['peak_rss_mib'])}", flush=True)
        last_peak, last_size = result["peak_rss_mib"], size

    table = Table("Scaling on synthetic graphs (graphrec LightGCN, dim 64, 3 layers, ~400 batches per epoch)",
                  ["target", "users", "items", "train events", "adjacency nnz", "batch size", "batch (mean)",
                   "ns / nnz", "epoch (extrapolated)", "full-ranking eval", "eval per user: graphrec / floor",
                   "peak RSS"])
    for r in rows:
        if "error" in r:
            table.add(r["label"], "", "", "", "", "", "", "", "", "", "", r["error"])
            continue
        ev, per_user = "not run", "not run"
        if "eval_s" in r:
            ev = (f"{fmt_s(r['eval_s'])} (all {fmt_count(r['eval_users'])} users)" if r["eval_measured"] else
                  f"~{fmt_s(r['eval_s'])} (extrapolated from {r['eval_probe_users']:,} users)")
            ours, floor = r["eval_per_user_s"], r["eval_floor_per_user_s"]
            per_user = (f"{ours * 1e3:.2f} / {floor * 1e3:.2f} ms ({ours / floor:.2f}x; {r['eval_probe_users']:,} "
                        "users)")
        table.add(r["label"], f"{r['users']:,}", f"{r['items']:,}", f"{r['train']:,}", f"{r['nnz']:,}",
                  f"{r['batch_size']:,}", f"{fmt_s(r['batch_mean_s'])} ({len(r['batch_s'])} timed)",
                  f"{r['ns_per_nnz']:.1f}", fmt_s(r["epoch_s"]), ev, per_user, fmt_mib(r["peak_rss_mib"]))
    table.notes.append("Each size runs in its own process (peak RSS = ru_maxrss of that process: data generation, "
                       "adjacency, model, Adam state, training batches and evaluation). Epoch = mean batch x batches "
                       "per epoch + the per-epoch shuffle and negative sampling.")
    table.notes.append("Data: graphrec.data.synthetic.generate (12 communities, Zipf item popularity with exponent 1.1, "
                       "log-normal user degrees) with Gowalla's mean degree 27.1 and 1.37 items per user; after duplicates are "
                       "dropped and 10% per user is held out as test, ~19 training events per user remain. The item degrees are far more skewed than Gowalla's (the top item reaches ~40% of users).")
    table.notes.append(f"Evaluation: all users when a timed probe predicts <= {args.eval_budget:.0f} s, otherwise the "
                       "probe's time per user times the number of users (the score chunk bounds memory, so the peak "
                       "RSS of the probe is that of a full run). Eval per user: the probe's time per user against "
                       "the floor's on the same users and chunks, timed right after it in the same process: torch.mm "
                       "of each chunk's user rows with the item matrix, then topk(20); graphrec adds the masking of "
                       "training items, the exact tie rule, the hit lookup and the metrics.")
    write = not (args.quick or args.no_write)
    target = PLOT if write else Path(tempfile.gettempdir()) / "graphrec-benchmarks-scale.png"
    table.notes.append(plot(rows, target))
    results = {"rows": [{k: r.get(k) for k in ("label", "target", "users", "items", "train", "nnz", "batch_size",
                                               "batch_mean_s", "ns_per_nnz", "epoch_s", "eval_s", "eval_measured",
                                               "eval_per_user_s", "eval_floor_per_user_s", "eval_probe_users",
                                               "peak_rss_mib", "error")} for r in rows]}
    publish("scale", [table], environment(args.threads), results, write=write)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default=None, help="training events per graph, e.g. 1M,3M,10M,30M (default)")
    parser.add_argument("--eval-budget", type=float, default=240.0,
                        help="run the full evaluation when predicted to take at most this many seconds")
    parser.add_argument("--eval-probe", type=int, default=None,
                        help="users in the timed evaluation probe (default: 4 score chunks, at least 512)")
    parser.add_argument("--batches", type=positive_int, default=20,
                        help="timed training batches per size (the epoch is their mean x batches per epoch)")
    parser.add_argument("--timeout", type=float, default=3000.0, help="seconds per size")
