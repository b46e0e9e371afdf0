"""Synthetic item features tied to the planted communities of the synthetic generator, for offline multimodal runs."""
from __future__ import annotations

import zlib
from typing import Mapping, Optional

import numpy as np

DEFAULT_DIMS = {"text": 384, "image": 4096}  # all-MiniLM-L6-v2 text, Amazon CNN image vectors


def synthetic_item_features(item_community: np.ndarray, dims: Optional[Mapping[str, int]] = None,
                            noise: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """{modality: (num_items, d) float32}: each row is its community's random centre plus `noise` times Gaussian noise.

    Centre and noise entries are N(0, 1/d), so two items of one community have an expected cosine near
    1 / (1 + noise^2) and items of different communities near 0; noise 0 gives one vector per community.
    Each modality draws from its own stream (seed, modality name), so adding a modality leaves the others unchanged.
    """
    item_community = np.asarray(item_community, dtype=np.int64)
    num_communities = int(item_community.max()) + 1 if len(item_community) else 0
    out = {}
    for name, dim in (DEFAULT_DIMS if dims is None else dims).items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        scale = np.float32(dim ** -0.5)
        centres = rng.standard_normal((num_communities, dim), dtype=np.float32) * scale
        rows = centres[item_community]
        rows += rng.standard_normal(rows.shape, dtype=np.float32) * (scale * np.float32(noise))
        out[name] = rows
    return out
