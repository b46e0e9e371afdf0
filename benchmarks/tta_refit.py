"""`tta --protocol refit`: select the epoch count on a validation split, then time one run on train + valid to its
test Recall@20; the selection's cost is reported beside it."""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from typing import Any, Optional

from .common import Table, environment, fmt_s, publish, set_threads

PROTOCOL = ("refit protocol (graphrec train --refit): a selection run trains on train minus a validation split carved "
            "from it and keeps the epoch with the best valid Recall@20; the refit run trains the same settings on "
            "train + valid for that many epochs and is evaluated once on test. Wall time = the refit run's training "
            "plus its final test evaluation (and its checkpoint writes), not its one-time setup.")


def timed_fit(cfg) -> tuple[Any, dict[str, Any], float, float]:
    """(trainer, metrics, setup seconds, fit seconds) of one graphrec run; data warnings are not printed."""
    from graphrec.trainer import Trainer
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # data warnings: printed once by `graphrec data info`
        trainer = Trainer(cfg)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    metrics = trainer.fit()
    return trainer, metrics, setup, time.perf_counter() - start


def run_refit(args: argparse.Namespace, settings: dict[str, Any], schedule: str,
              model: Optional[dict[str, Any]] = None) -> int:
    """Selection run on train/valid, refit run on train + valid; prints (and unless --quick stores) the table."""
    set_threads(args.threads)
    from graphrec.cli import refit_config
    from .workloads import graphrec_config
    epochs = min(args.epochs, 4) if args.quick else args.epochs
    tmp = tempfile.mkdtemp(prefix="graphrec-bench-refit-")
    try:
        cfg = graphrec_config(args.data, args.threads, tmp, args.quick, batch_size=args.batch_size, lr=args.lr,
                              epochs=epochs, valid_ratio=args.valid_ratio, model_extra=model,
                              train_extra={**settings, "eval_every": args.eval_every, "patience": args.patience})
        print(PROTOCOL)
        print(f"selection: up to {epochs} epochs, valid every {args.eval_every}, patience {args.patience}, valid "
              f"ratio {args.valid_ratio}; batch {args.batch_size}, {schedule}; target {args.target}", flush=True)
        selection, chosen, chosen_setup, chosen_s = timed_fit(cfg)
        refit, final, refit_setup, refit_s = timed_fit(refit_config(selection.run_dir, []))
        name = selection.dataset.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    recall = final["test/recall@20"]
    reached = recall >= args.target
    label = (model or {}).get("name", "lightgcn")
    table = Table(f"Refit time to test Recall@20 >= {args.target} ({name}, {label}, batch {args.batch_size}, "
                  f"{schedule})", ["run", "result", "wall time", "epochs", "training time", "evaluation time",
                                    "test Recall@20", "valid Recall@20"])
    table.add("refit (train + valid)", "reached" if reached else "not reached", fmt_s(refit_s), final["epochs_run"],
              fmt_s(final["train_seconds"]), fmt_s(final["eval_seconds"]), f"{recall:.4f}", "-")
    table.add("selection (train, valid)", f"best epoch {chosen['best_epoch'] + 1}", fmt_s(chosen_s),
              chosen["epochs_run"], fmt_s(chosen["train_seconds"]), fmt_s(chosen["eval_seconds"]),
              f"{chosen['test/recall@20']:.4f}", f"{chosen['valid/recall@20']:.4f}")
    table.notes.append(PROTOCOL)
    table.notes.append(f"the selection's cost is paid once per setting tried; total {fmt_s(chosen_s + refit_s)} for "
                       f"this one setting. Setup (data, graph) not counted: {fmt_s(chosen_setup)} selection, "
                       f"{fmt_s(refit_setup)} refit.")
    table.notes.append("the `paper` protocol (tta without --protocol) is the figure beside this one: test-tuned, "
                       "not a model-selection protocol.")
    results = {"refit_s": refit_s, "refit_epochs": final["epochs_run"], "refit_train_s": final["train_seconds"],
               "refit_eval_s": final["eval_seconds"], "test_recall": recall, "reached": reached,
               "selection_s": chosen_s, "selection_epochs": chosen["epochs_run"], "best_epoch": chosen["best_epoch"],
               "valid_recall": chosen["valid/recall@20"], "target": args.target, "batch_size": args.batch_size,
               "lr": args.lr, "settings": schedule, "valid_ratio": args.valid_ratio}
    publish("tta-refit", [table], environment(args.threads), results, write=not (args.quick or args.no_write))
    return 0
