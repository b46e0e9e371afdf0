"""`memory`: peak RSS of training and of evaluation, each in a fresh process (graphrec, PyG, RecBole)."""
from __future__ import annotations

import argparse
from typing import Any

from .common import Table, environment, fmt_mib, fmt_s, publish, run_worker, set_threads


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    quick = args.quick
    spec = {"data": args.data, "quick": quick}
    batches = 20 if quick else args.batches
    print(f"graphrec training, {batches} batches, fresh process ...", flush=True)
    g_train = run_worker("train_memory", {**spec, "batches": batches}, args.threads)
    print("graphrec evaluation, fresh process ...", flush=True)
    g_eval = run_worker("eval_memory", spec, args.threads)
    pyg_batches = 2 if quick else args.pyg_batches
    print(f"PyG training, {pyg_batches} batches, fresh process ...", flush=True)
    pyg = run_worker("pyg_memory", {**spec, "batches": pyg_batches}, args.threads)
    rb_train: dict[str, Any] = {"error": "skipped (--quick)" if quick else "skipped (--no-recbole)"}
    rb_eval = dict(rb_train)
    if not quick and not args.no_recbole:
        import contextlib
        import io
        from .workloads import GraphrecSession
        with contextlib.redirect_stdout(io.StringIO()):
            session = GraphrecSession(args.data, args.threads)
        dataset = session.dataset
        session.close()
        from .recbole_ref import recbole
        print("RecBole training (20 batches) and evaluation, each in a fresh process ...", flush=True)
        rb_train = recbole(dataset, args.threads, extra=["--no-eval", "--batches", "20"])
        rb_eval = recbole(dataset, args.threads, extra=["--no-train"])

    table = Table("Peak resident memory (ru_maxrss of a fresh process; includes Python, torch and the data)",
                  ["what", "peak RSS", "RSS after setup", "work", "time"])

    def add(name: str, r: dict[str, Any], work: str, seconds_key: str) -> None:
        if "error" in r:
            table.add(name, "not measured", "", r["error"], "")
        else:
            table.add(name, fmt_mib(r["peak_rss_mib"]), fmt_mib(r.get("rss_after_setup_mib")), work,
                      fmt_s(r.get(seconds_key)))

    add("graphrec training", g_train, f"{g_train.get('batches')} batches (one epoch = "
        f"{g_train.get('batches_per_epoch')})", "train_s")
    add("graphrec evaluation", g_eval, f"propagation + ranking of {g_eval.get('users')} test users", "eval_s")
    add("PyG LightGCN training (standard loop)", pyg, f"{pyg.get('batches')} batches", "train_s")
    if "error" in rb_train:
        add("RecBole training", rb_train, "", "")
        add("RecBole evaluation", rb_eval, "", "")
    else:
        table.add(f"RecBole {rb_train.get('recbole')} training", fmt_mib(rb_train["peak_rss_mib"]), "",
                  f"{rb_train.get('timed_batches', 0)} timed + 3 warm-up batches", fmt_s(sum(rb_train.get("batch_s", []))))
        if "error" in rb_eval:
            add("RecBole evaluation", rb_eval, "", "")
        else:
            table.add(f"RecBole {rb_eval.get('recbole')} evaluation", fmt_mib(rb_eval["peak_rss_mib"]), "",
                      f"full sort of all test users ({rb_eval.get('eval_users_per_batch')} per batch)",
                      fmt_s(rb_eval.get("eval_s")))
    table.notes.append("graphrec's evaluator holds at most eval.max_score_elements (2^25) scores at once: "
                       f"largest chunk {g_eval.get('largest_chunk_elements', 'n/a')} elements.")
    table.notes.append("RecBole's processes include its data preparation (pandas) and its dok_matrix adjacency build.")
    results = {"graphrec_train": g_train, "graphrec_eval": g_eval, "pyg_train": pyg, "recbole_train":
               {k: rb_train.get(k) for k in ("peak_rss_mib", "error")}, "recbole_eval":
               {k: rb_eval.get(k) for k in ("peak_rss_mib", "error")}}
    for r in results.values():
        r.pop("traceback", None)
    env = environment(args.threads, rb_train.get("recbole"))
    publish("memory", [table], env, results, write=not (quick or args.no_write))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, default=396, help="graphrec training batches (396 = one Gowalla epoch)")
    parser.add_argument("--pyg-batches", type=int, default=5)
    parser.add_argument("--no-recbole", action="store_true")
