"""`graphrec analyze popularity RUN`: how far a trained ranking model scores items by their training popularity.

For each user with training events, the Spearman correlation between the model's scores of all items and the items'
training degrees (ties take their average rank; training items are not masked, so this reads the model, not the
evaluation). A model that ranks by popularity reads 1, one that ignores it ~0. For models with embeddings, also how
much the item embeddings share one direction: the mean cosine of each item's embedding to the items' mean embedding
(a shared vector propagated by a degree-normalized graph scores pairs by their degrees).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import GraphrecError

USER_CHUNK = 256  # (256, num_items) float64 scores and their ranks at a time
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def add_parser(sub) -> None:
    """Add `analyze popularity RUN [--out JSON] [--checkpoint best.pt]` under `graphrec analyze`."""
    popularity = sub.add_parser("popularity", help="per-user Spearman correlation of a ranking model's item scores "
                                                   "with training popularity, and the item embeddings' shared direction")
    popularity.add_argument("run", help="run folder of a ranking model")
    popularity.add_argument("--out", metavar="JSON", help="where the numbers go (default: RUN/popularity.json)")
    popularity.add_argument("--checkpoint", default="best.pt", help="best.pt (default) or last.pt")
    popularity.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute, print and write the popularity statistics of one run; user mistakes raise GraphrecError first."""
    from .analyze import check_writable
    from .atomic import atomic_write_json
    from .cli import _check_run_folder
    from .config import config_from_file

    run_dir = Path(args.run)
    _check_run_folder(run_dir, args.checkpoint)
    cfg = config_from_file(run_dir / "config.yaml", base_dir=str(run_dir))  # resolves cfg.task from the model
    if cfg.task != "ranking":
        raise GraphrecError(f"run '{run_dir}' trained {cfg.model['name']} on a pointwise task; analyze popularity "
                            "needs a ranking run (a model that scores every item for a user)")
    out = Path(args.out) if args.out else run_dir / "popularity.json"
    check_writable([out])
    report = popularity_report(run_dir, args.checkpoint)
    print(summary_text(report))
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


def popularity_report(run_dir: Path, checkpoint: str) -> dict:
    """popularity.json's content: quantiles and mean of the per-user Spearman correlations, and the anisotropy."""
    import torch

    from .trainer import load_run

    cfg, dataset, model, _ = load_run(run_dir, checkpoint)
    train = dataset.train
    degree = torch.bincount(torch.as_tensor(train.item), minlength=dataset.num_items).double()
    users = torch.unique(torch.as_tensor(train.user))
    degree_ranks = average_ranks(degree.unsqueeze(0))[0]
    scorer = model.scorer()
    with torch.no_grad():
        correlations = torch.cat([rank_correlation(scorer(chunk).double().cpu(), degree_ranks)
                                  for chunk in users.split(USER_CHUNK)])
    report = {"run": str(run_dir), "model": cfg.model["name"], "checkpoint": checkpoint, "users": len(users),
              "spearman_mean": float(correlations.nanmean()),
              "spearman_quantiles": dict(zip(map(str, QUANTILES), torch.nanquantile(
                  correlations, correlations.new_tensor(QUANTILES)).tolist())),
              "item_anisotropy": None}
    if hasattr(model, "embeddings"):
        with torch.no_grad():
            report["item_anisotropy"] = anisotropy(model.embeddings()[1].double().cpu())
    return report


def average_ranks(values):
    """(m, n) ranks 0..n-1 of each row's values, tied values sharing their mean rank."""
    import torch
    m, n = values.shape
    ordered, order = values.sort(dim=1)
    new_run = torch.ones_like(ordered, dtype=torch.bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run_id = new_run.cumsum(1) - 1 + torch.arange(m).unsqueeze(1) * n          # (m, n) ids unique across rows
    position = torch.arange(n, dtype=values.dtype).expand(m, n)
    mean_position = torch.zeros(m * n, dtype=values.dtype).scatter_reduce(
        0, run_id.flatten(), position.flatten(), "mean", include_self=False)
    return torch.empty_like(values).scatter_(1, order, mean_position[run_id])


def rank_correlation(scores, reference_ranks):
    """(m,) Spearman correlations of each row of (m, n) scores with a reference whose (n,) average ranks are given
    (computed once for all rows); nan for a constant row."""
    a = average_ranks(scores)
    a = a - a.mean(1, keepdim=True)
    b = reference_ranks - reference_ranks.mean()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm())


def anisotropy(item_embeddings) -> float:
    """Mean cosine of each (n, d) item embedding to the items' mean embedding: ~0 spread out, 1 one direction."""
    import torch.nn.functional as F
    mean = F.normalize(item_embeddings.mean(0), dim=0)
    return float((F.normalize(item_embeddings, dim=1) @ mean).mean())


def summary_text(report: dict) -> str:
    """One line for the terminal."""
    q = report["spearman_quantiles"]
    line = (f"{report['model']}: Spearman(item scores, training popularity) over {report['users']} users: median "
            f"{q['0.5']:.3f} (quartiles {q['0.25']:.3f}-{q['0.75']:.3f}, mean {report['spearman_mean']:.3f})")
    if report["item_anisotropy"] is not None:
        line += f"; item embeddings' mean cosine to their mean direction {report['item_anisotropy']:.3f}"
    return line
