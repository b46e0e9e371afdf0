"""Feature-field rows (libFM-style data): one global feature id and value per field, and a label per row."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GraphrecError


@dataclass
class FieldRows:
    """Rows of features: features (n, f) int64 global ids in field order, values (n, f) float32, label (n,) float32."""

    features: np.ndarray
    values: np.ndarray
    label: np.ndarray

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float32)
        self.label = np.asarray(self.label, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, index: np.ndarray) -> "FieldRows":
        """The rows selected by a boolean mask or an index array."""
        return FieldRows(self.features[index], self.values[index], self.label[index])


@dataclass
class FieldSpace:
    """The feature index space: num_features ids, each belonging to one of the named fields."""

    num_features: int
    field_of_feature: np.ndarray
    field_names: list[str] = field(default_factory=list)

    @property
    def num_fields(self) -> int:
        """Number of fields."""
        return len(self.field_names) if self.field_names else int(self.field_of_feature.max(initial=-1)) + 1


def labels_for_task(label: np.ndarray, task: str, source: str = "labels") -> np.ndarray:
    """(n,) labels as a task reads them: classification maps {-1, 1} or {0, 1} to {0, 1}; regression keeps them."""
    if task != "classification":
        return label
    values = set(np.unique(label).tolist())
    if not values <= {-1.0, 0.0, 1.0} or {-1.0, 0.0} <= values:
        shown = ", ".join(f"{v:g}" for v in sorted(values)[:5])
        raise GraphrecError(f"{source}: task classification needs labels in {{0, 1}} or {{-1, 1}}, found {shown}; "
                            "use task: regression for graded labels")
    return (label > 0).astype(np.float32)
