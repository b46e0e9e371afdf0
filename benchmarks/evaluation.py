"""`eval`: full-ranking evaluation of all test users: graphrec's Evaluator vs RecBole vs a dense reference."""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from .common import Table, Timing, environment, fmt_count, fmt_s, fmt_x, publish, set_threads
from graphrec.models.base import dot_scorer

from .workloads import GraphrecSession, dense_reference_metrics, per_user_lists

TOL = 1e-6


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    session = GraphrecSession(args.data, args.threads, quick=args.quick)
    ds, model = session.dataset, session.model
    evaluator = session.trainer.evaluators["test"]
    train_batches = 5 if args.quick else (args.train_batches or session.num_batches)
    start = time.perf_counter()
    for batch, _ in zip(session.batches(), range(train_batches)):  # move off the initial embeddings
        session.step(batch)
    print(f"trained {train_batches} batches in {time.perf_counter() - start:.1f} s")
    n_users = len(evaluator.users)
    print(f"data: {ds.name}: {n_users} test users x {ds.num_items} items; model trained {train_batches} batches")

    repeats = 1 if args.quick else args.repeats
    prop, rank = Timing(), Timing()
    for _ in range(repeats):
        model.train()  # drop the cached embeddings so the propagation is timed too
        model.eval()
        start = time.perf_counter()
        user_emb, item_emb = model.embeddings()
        prop.add(time.perf_counter() - start)
        start = time.perf_counter()
        full = evaluator.evaluate(dot_scorer(user_emb, item_emb))
        rank.add(time.perf_counter() - start)
    g_metrics = full.means()

    rng = np.random.default_rng(0)
    subset_n = min(n_users, 300 if args.quick else args.subset)
    subset = np.sort(rng.choice(evaluator.users.cpu().numpy(), subset_n, replace=False))
    subset_rows = torch.from_numpy(subset).to(evaluator.device)
    seen = per_user_lists(evaluator.seen_crow.cpu().numpy(), evaluator.seen_col.cpu().numpy(), subset)
    truth = per_user_lists(evaluator.truth_crow.cpu().numpy(), evaluator.truth_col.cpu().numpy(), subset)
    start = time.perf_counter()
    ref = dense_reference_metrics(user_emb, item_emb, subset, seen, truth, 20)
    ref_s = time.perf_counter() - start
    ours_sub = evaluator.evaluate(dot_scorer(user_emb, item_emb), subset_rows).means()
    diffs = {k: abs(ours_sub[k] - ref[k]) for k in ref}
    worst = max(diffs, key=diffs.get)
    # the same check with many exactly tied scores (embeddings rounded to quarter units: exact float sums),
    # so the tie rule (lower item id first) is exercised, not only the ordering of distinct scores
    scale = 4.0 / float(torch.cat([user_emb, item_emb]).abs().max())
    tied_u, tied_i = (user_emb * scale).round() / 4, (item_emb * scale).round() / 4
    tied_ref = dense_reference_metrics(tied_u, tied_i, subset, seen, truth, 20)
    tied_ours = evaluator.evaluate(dot_scorer(tied_u, tied_i), subset_rows).means()
    tied_diff = max(abs(tied_ours[k] - tied_ref[k]) for k in tied_ref)
    match = diffs[worst] <= TOL and tied_diff <= TOL

    rb: dict[str, Any]
    if args.quick:
        rb = {"error": "skipped (--quick)"}
    elif args.no_recbole:
        rb = {"error": "skipped (--no-recbole)"}
    else:
        from .recbole_ref import recbole
        rb = recbole(ds, args.threads, extra=["--no-train"])
        if args.recbole_default_eval and "error" not in rb:
            print("RecBole again with its default eval_batch_size 4096 (one user per batch on this data) ...")
            rb_default = recbole(ds, args.threads, extra=["--no-train", "--eval-batch-size", "4096"])
            rb["default_eval_s"] = rb_default.get("eval_s")

    g_total = prop.median + rank.median
    table = Table(f"Full-ranking evaluation, {ds.name}: all {fmt_count(n_users)} test users x "
                  f"{fmt_count(ds.num_items)} items, train items masked, Recall/NDCG/Precision/Hit/MRR@20",
                  ["implementation", "time", "users scored", "graphrec / this", "this / graphrec"])
    table.add("graphrec Evaluator (ranking only, embeddings given)", fmt_s(rank.median), n_users, "", "")
    table.add("graphrec propagation + Evaluator", fmt_s(g_total), n_users, "1x", "1x")
    if "error" in rb:
        table.notes.append(f"RecBole: not measured: {rb['error']}")
        print(f"RecBole: not measured: {rb['error']}")
    else:
        table.add(f"RecBole {rb['recbole']} Trainer.evaluate (full sort, incl. propagation, "
                  f"{rb['eval_users_per_batch']} users per batch)", fmt_s(rb["eval_s"]), n_users,
                  fmt_x(g_total / rb["eval_s"]), fmt_x(rb["eval_s"] / g_total))
        if rb.get("default_eval_s"):
            table.add(f"RecBole {rb['recbole']} with its default eval_batch_size 4096", fmt_s(rb["default_eval_s"]),
                      n_users, fmt_x(g_total / rb["default_eval_s"]), fmt_x(rb["default_eval_s"] / g_total))
    per_user_ref = ref_s / subset_n
    table.add(f"dense reference (score row + stable argsort per user), measured on {subset_n} users, "
              "extrapolated", fmt_s(per_user_ref * n_users), f"{subset_n} (extrapolated to {n_users})",
              fmt_x(g_total / (per_user_ref * n_users)), fmt_x(per_user_ref * n_users / g_total))
    table.notes.append(f"graphrec times are the median of {repeats} run(s); propagation {fmt_s(prop.median)}, ranking "
                       f"{fmt_s(rank.median)}, {evaluator.chunk_users} users per chunk.")
    table.notes.append(f"metrics on the {subset_n}-user subset, graphrec vs dense reference: largest difference "
                       f"{diffs[worst]:.2e} ({worst}) -> {'IDENTICAL within 1e-6' if match else 'MISMATCH'}; "
                       + ", ".join(f"{k}={ours_sub[k]:.4f}" for k in sorted(ours_sub)))
    table.notes.append(f"same check with exactly tied scores (embeddings rounded to quarter units): largest "
                       f"difference {tied_diff:.2e} -> {'IDENTICAL' if tied_diff <= TOL else 'MISMATCH'}.")
    table.notes.append("graphrec all users: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(g_metrics.items())))
    if "error" not in rb and rb.get("metrics"):
        table.notes.append("RecBole all users (its own, differently initialised untrained model, so different "
                           "values): " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(rb["metrics"].items())))
    results = {"graphrec": {"ranking_s": rank.median, "propagation_s": prop.median, "with_propagation_s": g_total,
                            "users": n_users},
               "reference": {"per_user_s": per_user_ref, "extrapolated_s": per_user_ref * n_users,
                             "subset": subset_n, "max_diff": diffs[worst], "tied_max_diff": tied_diff,
                             "match": match}}
    if "error" not in rb:
        results["recbole"] = {"eval_s": rb["eval_s"], "users_per_batch": rb["eval_users_per_batch"],
                              "default_eval_s": rb.get("default_eval_s")}
    else:
        results["recbole_error"] = rb["error"]
    env = environment(args.threads, None if "error" in rb else rb.get("recbole"))
    publish("eval", [table], env, results, write=not (args.quick or args.no_write))
    session.close()
    if not match:
        print(f"FAILED: graphrec's metrics differ from the dense reference by {diffs[worst]:.3g} on {worst}")
        return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subset", type=int, default=2000, help="users for the dense reference and the check")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-batches", type=int, default=None,
                        help="training batches before evaluating (default: one epoch, so metrics are not trivial)")
    parser.add_argument("--no-recbole", action="store_true")
    parser.add_argument("--no-recbole-default-eval", dest="recbole_default_eval", action="store_false",
                        help="skip the second RecBole run with its default eval_batch_size (one user per batch)")
