"""Interactions and Dataset: int64 user/item arrays, optional ratings and timestamps, id maps both ways."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import scipy.sparse as sp

from ..errors import WarningLog
from .fields import FieldRows, FieldSpace


def _ids(values) -> np.ndarray:
    """An id column as int64, or as it is when it holds raw string ids."""
    values = np.asarray(values)
    return values if values.dtype.kind in "OUS" else values.astype(np.int64, copy=False)


@dataclass
class Interactions:
    """A set of (user, item) events with optional rating and timestamp, all arrays of length n.

    Ids are int64 once remapped; as read from a file (before remapping) they may be strings.
    """

    user: np.ndarray
    item: np.ndarray
    rating: Optional[np.ndarray] = None
    timestamp: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.user, self.item = _ids(self.user), _ids(self.item)

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
class FieldData:
    """Feature-field rows (libFM-style) per split ('train', 'valid', 'test', ...) over one feature space."""

    space: FieldSpace
    rows: dict[str, FieldRows]


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
    item_features: dict[str, np.ndarray | sp.csr_matrix] = field(default_factory=dict)
    fields: Optional[FieldData] = None
    warnings: WarningLog = field(default_factory=WarningLog)
    source: Optional[str] = None  # the resolved data folder (None for generated data)

    def with_valid_in_train(self) -> "Dataset":
        """The refit protocol's data: train + valid as the training set, no validation split."""
        merged = replace(self, train=self.train.concat(self.valid) if self.valid is not None else self.train,
                         valid=None)
        if self.fields is not None and "valid" in self.fields.rows:
            rows = dict(self.fields.rows)
            valid = rows.pop("valid")
            train = rows["train"]
            rows["train"] = FieldRows(np.concatenate([train.features, valid.features]),
                                      np.concatenate([train.values, valid.values]),
                                      np.concatenate([train.label, valid.label]))
            merged = replace(merged, fields=FieldData(self.fields.space, rows))
        return merged

    def add_item_features(self, modality: str, matrix: np.ndarray | sp.csr_matrix) -> None:
        """Attach a (num_items, d) dense or multi-hot feature matrix, rows in the dataset's item order."""
        if matrix.shape[0] != self.num_items:
            raise ValueError(f"item features '{modality}' have {matrix.shape[0]} rows for {self.num_items} items")
        self.item_features[modality] = matrix

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
