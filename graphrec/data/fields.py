"""Feature-field rows: one global feature id and value per field per row, for FM-style (pointwise) models."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GraphrecError

TASK_LABELS = {"classification": "{-1, 1} or {0, 1}", "regression": "finite numbers"}


@dataclass
class FieldRows:
    """Feature-field rows: (n, f) int64 global feature ids in field order, (n, f) float32 values, (n,) labels."""

    features: np.ndarray
    values: np.ndarray
    label: np.ndarray

    def take(self, index: np.ndarray) -> "FieldRows":
        """The rows selected by an integer index array or a boolean mask."""
        return FieldRows(self.features[index], self.values[index], self.label[index])

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class FieldSpace:
    """The feature ids shared by every split: (num_features,) int64 field of each feature, and the field names."""

    num_features: int
    field_of_feature: np.ndarray
    field_names: list[str]

    @property
    def num_fields(self) -> int:
        """Number of fields f (the width of FieldRows.features)."""
        return len(self.field_names)


def labels_for_task(label: np.ndarray, task: str, source: str) -> np.ndarray:
    """(n,) float32 targets: {0, 1} for 'classification' (from {-1, 1} or {0, 1}), unchanged for 'regression'."""
    label = np.asarray(label, dtype=np.float32)
    if task == "regression":
        if not np.isfinite(label).all():
            raise GraphrecError(f"{source}: a label is not a finite number; task regression needs numeric labels")
        return label
    if task != "classification":
        raise GraphrecError(f"task '{task}' has no labels here; use one of {', '.join(TASK_LABELS)}")
    seen = np.unique(label)
    if not (np.isin(seen, (-1.0, 1.0)).all() or np.isin(seen, (0.0, 1.0)).all()):
        shown = ", ".join(f"{v:g}" for v in seen[:6]) + (" ..." if len(seen) > 6 else "")
        raise GraphrecError(f"{source}: labels {{{shown}}} are not binary; task classification needs labels in "
                            f"{TASK_LABELS['classification']} (use task: regression for other labels)")
    return (label > 0).astype(np.float32)


def random_row_split(num_rows: int, ratios: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A seeded random partition of row indices by named ratios, in order; the last part takes the remainder."""
    order = rng.permutation(num_rows)
    parts, start = {}, 0
    names = list(ratios)
    for name in names[:-1]:
        size = round(ratios[name] * num_rows)
        parts[name], start = order[start:start + size], start + size
    parts[names[-1]] = order[start:]
    return parts
