"""Interactions and Dataset: int64 user/item arrays, optional ratings and timestamps, id maps both ways."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp

from ..errors import WarningLog


@dataclass
class Interactions:
    """A set of (user, item) events with optional rating and timestamp, all arrays of length n."""

    user: np.ndarray
    item: np.ndarray
    rating: Optional[np.ndarray] = None
    timestamp: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def take(self, index: np.ndarray) -> "Interactions":
        """The events selected by a boolean mask or an index array."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Interactions(self.user[index], self.item[index], pick(self.rating), pick(self.timestamp))

    def keys(self, num_items: int) -> np.ndarray:
        """One int64 key per event, user * num_items + item."""
        return self.user * num_items + self.item

    def concat(self, other: "Interactions") -> "Interactions":
        """This set followed by `other` (optional columns kept only if both have them)."""
        join = lambda a, b: None if a is None or b is None else np.concatenate([a, b])  # noqa: E731
        return Interactions(np.concatenate([self.user, other.user]), np.concatenate([self.item, other.item]),
                            join(self.rating, other.rating), join(self.timestamp, other.timestamp))


@dataclass
class Dataset:
    """Users and items with contiguous ids and the train / valid / named test splits over them."""

    name: str
    num_users: int
    num_items: int
    train: Interactions
    valid: Optional[Interactions]
    tests: dict[str, Interactions]
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: WarningLog = field(default_factory=WarningLog)

    def eval_splits(self) -> dict[str, Interactions]:
        """Every split that can be evaluated: 'valid' (if any) then the tests in file order."""
        out = {"valid": self.valid} if self.valid is not None and len(self.valid) else {}
        out.update(self.tests)
        return out

    def matrix(self, interactions: Interactions) -> sp.csr_matrix:
        """(num_users, num_items) binary CSR matrix of the given events."""
        data = np.ones(len(interactions), dtype=np.float32)
        mat = sp.csr_matrix((data, (interactions.user, interactions.item)), shape=(self.num_users, self.num_items))
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat

    def summary(self) -> dict[str, float]:
        """Counts, density and degree statistics of the training graph and the size of every split."""
        user_deg = np.bincount(self.train.user, minlength=self.num_users)
        item_deg = np.bincount(self.train.item, minlength=self.num_items)
        out: dict[str, float] = {
            "users": self.num_users, "items": self.num_items, "train": len(self.train),
            "density": len(self.train) / max(1, self.num_users * self.num_items),
            "user_degree_mean": float(user_deg.mean()), "user_degree_median": float(np.median(user_deg)),
            "user_degree_max": int(user_deg.max(initial=0)), "item_degree_mean": float(item_deg.mean()),
            "item_degree_median": float(np.median(item_deg)), "item_degree_max": int(item_deg.max(initial=0)),
            "users_without_train": int((user_deg == 0).sum()), "items_without_train": int((item_deg == 0).sum()),
        }
        for name, split in self.eval_splits().items():
            out[name] = len(split)
        return out
