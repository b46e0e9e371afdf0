"""`graphrec analyze views RUN`: SGCL's noisy-view diagnostic on a trained contrastive run (`analyze popularity`:
graphrec/popularity_bias.py).

Views are drawn as the model's training draws them (the epoch-0 views of the run's seed); for every node with
training events and each of the two views, the cosine between the view's embedding and the clean one. A view is
noisy when that cosine is under 0.1 (the SGCL paper's definition; it calls them the bottom 20%). Test metrics are
reported for users whose lower view cosine is under 0.1 against the others, and for the bottom 20% of users by that
cosine against the rest, each group with its users' mean training degree; the Spearman correlation of users' view
cosine with their training degree says whether a low cosine marks the view or the user's degree.
"""
from __future__ import annotations

import argparse
import math
import os
import warnings
from pathlib import Path

from .errors import GraphrecError

NOISY_BELOW = 0.1
BOTTOM_SHARE = 0.2
HISTOGRAM_BINS = 40
QUANTILES = (0.05, 0.1, 0.2, 0.5, 0.8, 0.95)


def add_parser(subparsers) -> None:
    """Add `analyze views RUN [--plot PNG] [--out JSON] [--checkpoint best.pt]` and `analyze popularity RUN` to the
    graphrec command."""
    from . import popularity_bias
    analyze = subparsers.add_parser("analyze", help="diagnostics of a trained run")
    sub = analyze.add_subparsers(dest="analyze_command", required=True)
    views = sub.add_parser("views", help="cosine of each contrastive view's embedding to the clean one, the share of "
                                         "noisy views (< 0.1), and test metrics of users with noisy vs clean views")
    views.add_argument("run", help="run folder of a contrastive model (sgl, sgcl, simgcl, xsimgcl)")
    views.add_argument("--plot", metavar="PNG", help="write a histogram of the cosines (needs graphrec[plot])")
    views.add_argument("--out", metavar="JSON", help="where the numbers go (default: RUN/views.json)")
    views.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    views.set_defaults(func=run)
    popularity_bias.add_parser(sub)


def run(args: argparse.Namespace) -> int:
    """Compute, print and write the view statistics of one run; user mistakes raise GraphrecError before any write."""
    from . import report as report_module
    from .atomic import atomic_write_json
    from .cli import _check_run_folder
    from .config import config_from_file
    from .models import get_model_class
    from .models.contrastive import ContrastiveLightGCN

    run_dir = Path(args.run)
    _check_run_folder(run_dir, args.checkpoint)
    cfg = config_from_file(run_dir / "config.yaml", base_dir=str(run_dir))
    name = cfg.model["name"]
    if not issubclass(get_model_class(name), ContrastiveLightGCN):
        raise GraphrecError(f"run '{run_dir}' trained model {name}, which has no contrastive views; analyze views "
                            "needs a run of sgl, sgcl, simgcl or xsimgcl")
    out = Path(args.out) if args.out else run_dir / "views.json"
    check_writable([out] + ([Path(args.plot)] if args.plot else []))
    pyplot = report_module.pyplot() if args.plot else None
    report = view_report(run_dir, args.checkpoint)
    print(summary_text(report))
    atomic_write_json(out, report)
    if pyplot is not None:
        plot_histogram(pyplot, report, Path(args.plot))
    print(f"wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def check_writable(paths: list[Path]) -> None:
    """One-line error for an output path whose folder does not exist, before any work."""
    for path in paths:
        if not path.parent.is_dir():
            raise GraphrecError(f"cannot write '{path}': folder '{path.parent}' does not exist; create it or pass "
                                "another path")


def view_report(run_dir: Path, checkpoint: str) -> dict:
    """views.json's content: cosine summaries of users, items and all nodes, a histogram, and per-group test metrics."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from .trainer import load_run

    cfg, dataset, model, evaluators = load_run(run_dir, checkpoint)
    device = model.embedding.device
    with torch.no_grad():
        model.on_epoch_start(0, torch.Generator(device=device).manual_seed(cfg.seed + 1))  # the trainer's epoch 0
        views = torch.stack(model.view_embeddings())                                     # (2, num_nodes, d)
        cosine = F.cosine_similarity(views, model.propagate().unsqueeze(0), dim=-1)      # (2, num_nodes)
    trained = model.graph.degree > 0
    users = torch.zeros_like(trained)
    users[:model.num_users] = True
    groups = {"all": trained, "users": trained & users, "items": trained & ~users}
    report = {"run": str(run_dir), "model": cfg.model["name"], "checkpoint": checkpoint, "views_per_node": 2,
              "metric": cfg.train.select_metric,
              "noisy_below": NOISY_BELOW, "bottom_share": BOTTOM_SHARE,
              "cosine": {group: cosine_summary(cosine[:, mask].flatten()) for group, mask in groups.items()}}
    counts, edges = np.histogram(cosine[:, trained].cpu().numpy(), bins=HISTOGRAM_BINS, range=(-1.0, 1.0))
    report["histogram"] = {"edges": edges.tolist(), "users": np.histogram(
        cosine[:, groups["users"]].cpu().numpy(), bins=edges)[0].tolist(), "items": np.histogram(
        cosine[:, groups["items"]].cpu().numpy(), bins=edges)[0].tolist(), "all": counts.tolist()}
    user_cosine = cosine[:, :model.num_users].min(0).values                              # a user's noisier view
    user_degree = model.graph.degree[:model.num_users]
    trained_users = trained[:model.num_users]
    report["users_cosine_degree_spearman"] = spearman(user_cosine[trained_users], user_degree[trained_users])
    scorer = model.scorer()
    report["test"] = {split: group_metrics(evaluator, scorer, user_cosine, user_degree)
                      for split, evaluator in evaluators.items() if split != "valid"}
    return report


def spearman(x, y) -> float | None:
    """Spearman rank correlation of two (n,) tensors, ties at their mean rank; None under two values or for a constant
    one."""
    from scipy.stats import spearmanr
    if len(x) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                                  # constant input: nan
        rho = float(spearmanr(x.cpu().numpy(), y.cpu().numpy())[0])
    return None if math.isnan(rho) else rho


def cosine_summary(cosine) -> dict:
    """Count, mean, share under NOISY_BELOW, the BOTTOM_SHARE cutoff and quantiles of (n,) view cosines."""
    import torch
    values = cosine.double()
    quantiles = torch.quantile(values, values.new_tensor(QUANTILES)).tolist() if len(values) else []
    return {"views": int(len(values)), "mean": float(values.mean()) if len(values) else None,
            "share_noisy": float((values < NOISY_BELOW).double().mean()) if len(values) else None,
            "bottom_cutoff": quantiles[QUANTILES.index(BOTTOM_SHARE)] if quantiles else None,
            "quantiles": dict(zip(map(str, QUANTILES), quantiles))}


def group_metrics(evaluator, scorer, user_cosine, user_degree) -> dict:
    """Test metrics and mean training degree of an evaluator's users split by their lower view cosine: noisy
    (< NOISY_BELOW) vs clean, and the bottom BOTTOM_SHARE of users vs the rest; user_cosine and user_degree are
    (num_users,)."""
    import torch
    users = evaluator.users
    cos = user_cosine[users]
    cutoff = float(torch.quantile(cos.double(), BOTTOM_SHARE)) if len(cos) else 0.0
    masks = {"noisy": cos < NOISY_BELOW, "clean": cos >= NOISY_BELOW,
             "bottom": cos <= cutoff, "rest": cos > cutoff}
    out: dict = {"bottom_cutoff": cutoff}
    for group, mask in masks.items():
        result = evaluator.evaluate(scorer, users[mask]) if bool(mask.any()) else None
        out[group] = {"users": int(mask.sum()), **(result.means() if result is not None else {})}
        if result is not None:
            out[group]["mean_degree"] = float(user_degree[users[mask]].double().mean())
    return out


def summary_text(report: dict) -> str:
    """A few lines for the terminal: noisy shares and, per test split, recall of the user groups."""
    share = {g: report["cosine"][g]["share_noisy"] for g in ("all", "users", "items")}
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines = [f"{report['model']} views (2 per node): cosine to the clean embedding < {NOISY_BELOW}: {pct(share['all'])}"
             f" (users {pct(share['users'])}, items {pct(share['items'])}); bottom {BOTTOM_SHARE:.0%} below "
             f"{report['cosine']['all']['bottom_cutoff']:.4f}"]
    rho = report["users_cosine_degree_spearman"]
    lines.append(f"users' view cosine vs training degree: Spearman {'n/a' if rho is None else f'{rho:+.3f}'}")
    key = report["metric"]

    def show(group: dict) -> str:
        """'0.1745 (29858 users, mean degree 24.9)', or '- (0 users)' for a group without test users."""
        if key not in group:
            return f"- ({group['users']} users)"
        return f"{group[key]:.4f} ({group['users']} users, mean degree {group['mean_degree']:.1f})"

    for split, groups in report["test"].items():
        lines.append(f"{split} {key}: noisy {show(groups['noisy'])} vs clean {show(groups['clean'])}; bottom "
                     f"{BOTTOM_SHARE:.0%} {show(groups['bottom'])} vs rest {show(groups['rest'])}")
    return "\n".join(lines)


def plot_histogram(pyplot, report: dict, path: Path) -> None:
    """Write the users' and items' cosine histograms with the 0.1 line to `path`, atomically."""
    hist = report["histogram"]
    fig, ax = pyplot.subplots(figsize=(6, 3.5))
    for group in ("users", "items"):
        ax.stairs(hist[group], hist["edges"], label=f"{group} ({report['cosine'][group]['views']} views)")
    ax.axvline(NOISY_BELOW, color="k", linestyle="--", linewidth=1, label=f"noisy below {NOISY_BELOW}")
    ax.set(xlabel="cosine(view embedding, clean embedding)", ylabel="views",
           title=f"{report['model']}: {report['run']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(partial)
    pyplot.close(fig)
    os.replace(partial, path)
