"""How far each split is from train: divergences of item, user and time distributions, popularity concentration,
head/tail and cold shares. Printed by `graphrec split`, written as shift.json into run folders.

Distributions are smoothed by adding SMOOTHING to every probability and renormalizing; logarithms are base 2,
so the Jensen-Shannon divergence lies in [0, 1] (0: same distribution, 1: disjoint supports).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .dataset import Dataset, Interactions

SMOOTHING = 1e-6
TIME_BINS = 20


def popularity_groups(item_counts: np.ndarray, head_share: float = 0.2, tail_share: float = 0.5) -> np.ndarray:
    """(num_items,) int8 group of each item by its train count: 0 head (the most popular head_share of items),
    2 tail (the least popular tail_share), 1 mid; ties in count go to the lower item id first (more popular)."""
    num_items = len(item_counts)
    order = np.lexsort((np.arange(num_items), -np.asarray(item_counts)))
    group = np.ones(num_items, dtype=np.int8)
    group[order[:int(round(head_share * num_items))]] = 0
    n_tail = int(round(tail_share * num_items))
    if n_tail:
        group[order[num_items - n_tail:]] = 2
    return group


def _smoothed(counts: np.ndarray) -> np.ndarray:
    """A distribution from counts, with SMOOTHING added to every probability."""
    p = counts / max(float(counts.sum()), 1.0)
    return (p + SMOOTHING) / (1.0 + SMOOTHING * len(p))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(p || q) in bits between the smoothed distributions of two count vectors of the same length."""
    p, q = _smoothed(p_counts), _smoothed(q_counts)
    return float(np.sum(p * np.log2(p / q)))


def js_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (in [0, 1]) between the smoothed distributions of two count vectors."""
    p, q = _smoothed(p_counts), _smoothed(q_counts)
    m = (p + q) / 2
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of counts over all entries (0: all equal; near 1: all mass on one entry)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * total))


def _time_bins(parts: list[Interactions]) -> Optional[np.ndarray]:
    """TIME_BINS equal-width bin edges over the time range of all parts, or None when one has no timestamps."""
    if any(p.timestamp is None for p in parts):
        return None
    times = [p.timestamp for p in parts if len(p)]
    low, high = min(float(t.min()) for t in times), max(float(t.max()) for t in times)
    return np.linspace(low, high if high > low else low + 1.0, TIME_BINS + 1)


def shift_summary(train: Interactions, splits: dict[str, Interactions], num_items: int,
                  head_share: float = 0.2, tail_share: float = 0.5) -> dict:
    """Per split (and train): events, users, items; item_js / item_kl (KL(split || train)), user_js and, with
    timestamps, time_js / time_kl against train; popularity Gini over all items; shares of events on the
    head / tail items by train popularity and on users / items without train events."""
    num_users = int(max([train.user.max(initial=-1)] + [s.user.max(initial=-1) for s in splits.values()])) + 1
    train_items = np.bincount(train.item, minlength=num_items)
    train_users = np.bincount(train.user, minlength=num_users)
    group = popularity_groups(train_items, head_share, tail_share)
    edges = _time_bins([train, *splits.values()])
    train_time = np.histogram(train.timestamp, edges)[0] if edges is not None else None
    rows = {}
    for name, part in {"train": train, **splits}.items():
        items = np.bincount(part.item, minlength=num_items)
        users = np.bincount(part.user, minlength=num_users)
        n = max(len(part), 1)
        row = {"events": len(part), "users": int((users > 0).sum()), "items": int((items > 0).sum()),
               "item_js": js_divergence(items, train_items), "item_kl": kl_divergence(items, train_items),
               "user_js": js_divergence(users, train_users), "gini": gini(items),
               "head_share": float((group[part.item] == 0).sum() / n),
               "tail_share": float((group[part.item] == 2).sum() / n),
               "cold_user_share": float((train_users[part.user] == 0).sum() / n),
               "cold_item_share": float((train_items[part.item] == 0).sum() / n)}
        if edges is not None:
            times = np.histogram(part.timestamp, edges)[0]
            row.update(time_js=js_divergence(times, train_time), time_kl=kl_divergence(times, train_time))
        rows[name] = row
    return {"num_items": num_items, "head_share": head_share, "tail_share": tail_share,
            "smoothing": SMOOTHING, "log_base": 2, "splits": rows}


_COLUMNS = [("events", "events", "d"), ("users", "users", "d"), ("item_js", "item JS", ".4f"),
            ("item_kl", "item KL", ".3f"), ("user_js", "user JS", ".4f"), ("time_js", "time JS", ".4f"),
            ("gini", "gini", ".3f"), ("head_share", "head%", "%"), ("tail_share", "tail%", "%"),
            ("cold_user_share", "cold u%", "%"), ("cold_item_share", "cold i%", "%")]


def format_shift(summary: dict) -> str:
    """The shift summary as a text table: one row per split, divergences against train."""
    rows = summary["splits"]
    columns = [c for c in _COLUMNS if any(c[0] in row for row in rows.values())]
    width = max(8, *(len(name) for name in rows))
    cell = lambda value, fmt: (f"{100 * value:.1f}" if fmt == "%" else format(value, fmt))  # noqa: E731
    lines = [f"{'split':<{width}} " + " ".join(f"{title:>9}" for _, title, _ in columns)]
    for name, row in rows.items():
        lines.append(f"{name:<{width}} " + " ".join(f"{cell(row[key], fmt) if key in row else '-':>9}"
                                                    for key, _, fmt in columns))
    lines.append(f"JS and KL(split || train) in bits against train; head = top {summary['head_share']:.0%} and "
                 f"tail = bottom {summary['tail_share']:.0%} of items by train events")
    return "\n".join(lines)


def write_shift(dataset: Dataset, run_dir: str | os.PathLike, head_share: float = 0.2, tail_share: float = 0.5) -> dict:
    """Write the shift summary of a dataset's splits against its train as run_dir/shift.json (atomically)."""
    from ..atomic import atomic_write_json
    summary = shift_summary(dataset.train, dataset.eval_splits(), dataset.num_items, head_share, tail_share)
    atomic_write_json(Path(run_dir) / "shift.json", summary)
    return summary
