"""`tta`: wall time until LightGCN's test Recall@20 first reaches a target, paper protocol, with the curve
(`--protocol refit`: benchmarks/tta_refit.py)."""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (PAPER_RECALL20_GOWALLA, REPO, Table, environment, fmt_s, publish, repo_relative, save_figure,
                     set_threads)
from .workloads import SETTINGS, GraphrecSession

PROTOCOL = ("paper protocol: train on all of train.txt (no validation split), evaluate test.txt; the first time "
            "test Recall@20 reaches the target is reported. Not a model-selection protocol.")


def plot(curve: list[dict[str, Any]], target: float, path: Path, title: str, label: str = "lightgcn") -> str:
    """Recall@20 against wall minutes; returns a note."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([c["wall_s"] / 60 for c in curve], [c["recall@20"] for c in curve], "o-", ms=3, label=f"graphrec {label}")
    ax.axhline(target, color="gray", ls="--", label=f"target {target}")
    ax.set(xlabel="wall minutes (training + evaluation)", ylabel="test Recall@20", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The train.* keys the flags set: negatives, dynamic negative candidates and the learning-rate schedule."""
    out: dict[str, Any] = {"num_negatives": args.num_negatives, "negative_candidates": args.negative_candidates,
                           "reg": args.reg}
    if args.lr_drop_epoch is not None:
        out.update(lr_schedule="step", lr_milestones=[args.lr_drop_epoch], lr_gamma=args.lr_drop_to / args.lr)
    elif args.lr_schedule == "cosine":
        out.update(lr_schedule="cosine", lr_min=args.lr_min)
    return out


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model.* keys of --model and --model-set, parsed as `--set` is, e.g. {"name": "xsimgcl", "num_layers": 2}."""
    from graphrec.config import apply_overrides
    return apply_overrides({"name": args.model}, args.model_set)


def model_label(args: argparse.Namespace) -> str:
    """The model and its --model-set keys in words, for titles and plots."""
    return ", ".join([args.model] + list(args.model_set))


def describe(args: argparse.Namespace) -> str:
    """The training settings in words, for the table title."""
    parts = [f"lr {args.lr}"] + ([f"reg {args.reg}"] if args.reg != SETTINGS["reg"] else [])
    if args.lr_drop_epoch is not None:
        parts[0] += f", {args.lr_drop_to} from epoch {args.lr_drop_epoch}"
    elif args.lr_schedule == "cosine":
        parts[0] += f" cosine to {args.lr_min} over {args.epochs} epochs"
    if args.num_negatives > 1:
        parts.append(f"{args.num_negatives} negatives per positive")
    if args.negative_candidates > 1:
        parts.append(f"dynamic negatives (hardest of {args.negative_candidates} uniform candidates)")
    return ", ".join(parts)


def result_key(model: str) -> str:
    """The results key and file stem of a paper-protocol run: `tta` for LightGCN (the summary's row), `tta-<model>`
    for any other model, so that its curve and section sit beside LightGCN's instead of replacing them."""
    return "tta" if model == "lightgcn" else f"tta-{model}"


def run(args: argparse.Namespace) -> int:
    if args.protocol == "refit":
        from .tta_refit import run_refit
        return run_refit(args, train_settings(args), describe(args), model_settings(args))
    set_threads(args.threads)
    from graphrec.trainer import StopRequest
    quick = args.quick
    budget = (0.05 if quick else args.minutes) * 60
    if quick:
        args.epochs = min(args.epochs, 4)
    session = GraphrecSession(args.data, args.threads, quick=quick, batch_size=args.batch_size, lr=args.lr,
                              epochs=args.epochs, train_extra=train_settings(args), model_extra=model_settings(args))
    trainer, ds = session.trainer, session.dataset
    print(PROTOCOL)
    model = session.model.cfg
    print(f"data: {ds.name}, {len(ds.train)} training events, {len(ds.tests['test'])} test events; model "
          f"{args.model}, batch {args.batch_size}, lr {args.lr}, reg {args.reg}, "
          f"{getattr(model, 'num_layers', 0)} layers, dim {model.embedding_dim}; budget {fmt_s(budget)} or "
          f"{args.epochs} epochs; target {args.target}")
    curve: list[dict[str, Any]] = []
    reached = None
    train_s = eval_s = 0.0
    start = time.perf_counter()
    interrupted = False
    with StopRequest() as stop:
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            losses = trainer._train_epoch(epoch, stop)
            trainer._advance_epoch()
            train_s += time.perf_counter() - t0
            if losses is None:
                print("interrupted; writing what was measured")
                interrupted = True
                break
            wall = time.perf_counter() - start
            if (epoch + 1) % args.eval_every == 0 or wall >= budget or epoch + 1 == args.epochs:
                t0 = time.perf_counter()
                metrics = trainer.evaluate(["test"])
                eval_s += time.perf_counter() - t0
                wall = time.perf_counter() - start
                point = {"epoch": epoch + 1, "wall_s": round(wall, 2), "train_s": round(train_s, 2),
                         "eval_s": round(eval_s, 2), "loss": round(losses["loss"], 5),
                         "recall@20": round(metrics["test/recall@20"], 5), "ndcg@20": round(metrics["test/ndcg@20"], 5)}
                curve.append(point)
                print(f"epoch {epoch + 1}: {wall / 60:.2f} min, loss {losses['loss']:.4f}, test recall@20 "
                      f"{point['recall@20']:.4f}, ndcg@20 {point['ndcg@20']:.4f}", flush=True)
                if reached is None and metrics["test/recall@20"] >= args.target:  # unrounded
                    reached = point
                    if not args.keep_going:
                        break
            if wall >= budget:
                break
    write = not (quick or args.no_write)
    out_dir = REPO / "docs" if write else Path(tempfile.gettempdir()) / "graphrec-benchmarks-tta"  # overwritten
    command = result_key(args.model)
    csv_path, png_path = out_dir / f"benchmarks-{command}.csv", out_dir / f"benchmarks-{command}.png"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(curve[0]) if curve else ["epoch"])
        writer.writeheader()
        writer.writerows(curve)
    best = max((c["recall@20"] for c in curve), default=0.0)
    schedule = describe(args)
    table = Table(f"Time to test Recall@20 >= {args.target} ({ds.name}, {model_label(args)}, batch "
                  f"{args.batch_size}, {schedule})",
                  ["result", "wall time", "epochs", "training time", "evaluation time", "best Recall@20"])
    if reached:
        table.add("reached", fmt_s(reached["wall_s"]), reached["epoch"], fmt_s(reached["train_s"]),
                  fmt_s(reached["eval_s"]), f"{best:.4f}")
    else:
        last = curve[-1] if curve else {"wall_s": 0, "epoch": 0, "train_s": 0, "eval_s": 0}
        label = (f"not reached; interrupted by hand after {fmt_s(last['wall_s'])}" if interrupted
                 else f"not reached within {fmt_s(budget)} / {args.epochs} epochs")
        table.add(label, fmt_s(last["wall_s"]),
                  last["epoch"], fmt_s(last["train_s"]), fmt_s(last["eval_s"]), f"{best:.4f}")
    table.notes.append(PROTOCOL)
    table.notes.append(f"wall time counts training and the test evaluation every {args.eval_every} epoch(s), not the "
                       f"one-time setup ({fmt_s(session.setup_seconds)}).")
    table.notes.append(f"curve: {repo_relative(csv_path)}")
    table.notes.append(plot(curve, args.target, png_path, f"{ds.name}: {model_label(args)} test Recall@20 (paper "
                                                          f"protocol)", model_label(args)))
    results = {"reached_s": reached["wall_s"] if reached else None, "reached_epoch": reached["epoch"] if reached
               else None, "budget_s": budget, "best_recall": best, "target": args.target,
               "batch_size": args.batch_size, "lr": args.lr, "settings": describe(args), "model": model_label(args),
               "demo": budget < 30 * 60}
    publish(command, [table], environment(args.threads), results, write=write)
    session.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget")
    parser.add_argument("--target", type=float, default=PAPER_RECALL20_GOWALLA, help="test Recall@20 to reach")
    parser.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"])
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"])
    parser.add_argument("--model", default="lightgcn", help="registered model to train (default lightgcn), e.g. "
                                                            "xsimgcl: the contrastive issue's time to the paper target")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model.* key for --model, e.g. --model-set num_layers=2 (repeatable)")
    parser.add_argument("--epochs", type=int, default=1000, help="epoch budget (the paper trains 1000)")
    parser.add_argument("--num-negatives", type=int, default=1, help="uniform negatives per positive (train.num_negatives)")
    parser.add_argument("--negative-candidates", type=int, default=1,
                        help="dynamic negative sampling: keep the hardest of N uniform candidates (1 = uniform)")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate test every N epochs")
    parser.add_argument("--reg", type=float, default=SETTINGS["reg"], help="L2 weight (train.reg)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                        help="cosine: from --lr to --lr-min over --epochs (train.lr_schedule)")
    parser.add_argument("--lr-min", type=float, default=0.0)
    parser.add_argument("--lr-drop-epoch", type=int, default=None, help="epoch (0-based) from which lr is --lr-drop-to")
    parser.add_argument("--lr-drop-to", type=float, default=0.001)
    parser.add_argument("--keep-going", action="store_true", help="continue after the target until the budget")
    parser.add_argument("--protocol", choices=("paper", "refit"), default="paper",
                        help="paper: test Recall@20 after every epoch of a run on all of train.txt (the figure); "
                        "refit: epochs selected on a validation split, then one timed run on train + valid")
    parser.add_argument("--valid-ratio", type=float, default=0.1, help="refit: share of train held out for selection")
    parser.add_argument("--patience", type=int, default=5,
                        help="refit: stop the selection run after this many evaluations without a better valid "
                        "Recall@20 (0: run all --epochs)")
