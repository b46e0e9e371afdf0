"""The MMRec layout: `<name>.inter` (userID itemID x_label) and per-modality `*_feat.npy` in item-id order."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import GraphrecError
from .item_features import load_feature_npy

SPLIT_NAMES = ("train", "valid", "test")  # x_label 0, 1, 2
FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}


@dataclass
class MMRecData:
    """Raw events of an MMRec folder, (n,) user / item / split (0 train, 1 valid, 2 test), and its features.

    `features[modality]` is (rows, d) float32 with row i for MMRec item id i; align it to graphrec's items with
    `align_item_features(matrix, np.arange(rows), dataset.item_ids, ...)`.
    """

    user: np.ndarray
    item: np.ndarray
    split: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) raw id arrays of the split 'train', 'valid' or 'test'."""
        keep = self.split == SPLIT_NAMES.index(name)
        return self.user[keep], self.item[keep]


def read_mmrec(folder: Union[str, Path], name: str) -> MMRecData:
    """Read `<folder>/<name>.inter` and whichever of image_feat.npy / text_feat.npy the folder holds."""
    folder = Path(folder)
    inter = folder / f"{name}.inter"
    if not inter.is_file():
        raise GraphrecError(f"MMRec file '{inter}' not found; data.path must be the folder holding {name}.inter")
    user, item, split = _read_inter(inter)
    features = {}
    for modality, fname in FEATURE_FILES.items():
        if (folder / fname).is_file():
            features[modality] = _read_feature_npy(folder / fname, int(item.max()) + 1)
    return MMRecData(user, item, split, features)


def _read_inter(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n,) int64 user, item and x_label columns of an .inter file with the untyped header userID itemID x_label."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines:
        raise GraphrecError(f"{path}: the file is empty")
    header = [h.split(":")[0] for h in lines[0].split()]
    missing = [c for c in ("userID", "itemID", "x_label") if c not in header]
    if missing:
        raise GraphrecError(f"{path} line 1: the header {header} lacks {missing}; MMRec .inter files start with "
                            "`userID itemID x_label`")
    width = len(header)
    cols = [header.index(c) for c in ("userID", "itemID", "x_label")]
    if any(len(line.split()) not in (0, width) for line in lines[1:]):
        _raise_bad_line(path, lines, width, cols)
    tokens = np.asarray("\n".join(lines[1:]).split()).reshape(-1, width)
    try:
        user, item, split = (tokens[:, c].astype(np.int64) for c in cols)
    except ValueError:
        _raise_bad_line(path, lines, width, cols)
    if (user < 0).any() or (item < 0).any() or (split < 0).any():
        _raise_bad_line(path, lines, width, cols)
    if len(user) == 0:
        raise GraphrecError(f"{path}: no interaction below the header")
    bad = ~np.isin(split, (0, 1, 2))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise GraphrecError(f"{path} line {row + 2}: x_label {split[row]} is not 0 (train), 1 (valid) or 2 (test)")
    return user, item, split


def _raise_bad_line(path: Path, lines: list[str], width: int, cols: list[int]) -> None:
    """Name the first body line that lacks `width` columns or holds a non-integer id or label."""
    for lineno, line in enumerate(lines[1:], 2):
        tokens = line.split()
        if tokens and (len(tokens) != width or not all(tokens[c].isdigit() for c in cols)):
            raise GraphrecError(f"{path} line {lineno}: expected {width} columns like the header, with "
                                f"non-negative integer userID, itemID and x_label; found {line.strip()[:60]!r}")


def _read_feature_npy(path: Path, num_items: int) -> np.ndarray:
    """(rows, d) float32 matrix of an MMRec feature file, which must cover item ids 0..num_items-1."""
    matrix = load_feature_npy(path)
    if matrix.shape[0] < num_items:
        raise GraphrecError(f"{path}: {matrix.shape[0]} rows but the .inter file uses item ids up to "
                            f"{num_items - 1}; the feature file belongs to another dataset version")
    return matrix
