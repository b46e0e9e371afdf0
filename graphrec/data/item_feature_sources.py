"""The item features a config asks for, attached to a loaded Dataset: synthetic ones, an MMRec folder's own, and
the files of data.item_features, each aligned to graphrec's items by raw item id."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ..schema import Config
from .dataset import Dataset
from .item_features import MISSING_KEY, align_item_features, read_item_feature_set
from .paths import resolve_config_path
from .synthetic import planted_communities
from .synthetic_features import synthetic_item_features


def attach_item_features(cfg: Config, dataset: Dataset,
                         folder_features: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """Add to `dataset` the synthetic features (generated data), `folder_features` ({modality: (rows, d)} with row
    i for raw item id i, as an MMRec folder gives them) and data.item_features, which replace same-named ones.

    The resolved feature paths are written back into cfg.data.item_features, so a run folder's config.yaml names
    the files absolutely (as data.path).
    """
    data = cfg.data
    if data.format == "synthetic" and data.path is None and data.synthetic.item_features:
        s = data.synthetic
        _, item_community = planted_communities(s.num_users, s.num_items, s.num_communities, s.seed)
        generated = synthetic_item_features(item_community[dataset.item_ids], s.item_features, s.feature_noise,
                                            s.seed)
        for name, matrix in generated.items():
            dataset.add_item_features(name, matrix)
    for name, matrix in (folder_features or {}).items():
        aligned, _ = align_item_features(matrix, np.arange(len(matrix)), dataset.item_ids, data.item_features_missing,
                                         Path(dataset.source or ".") / f"{name}_feat.npy", MISSING_KEY)
        dataset.add_item_features(name, aligned)
    paths = {name: resolve_config_path(path, cfg.base_dir, f"data.item_features.{name}",
                                       "run `graphrec features` to write it, or fix the path")
             for name, path in data.item_features.items()}
    read = read_item_feature_set(paths, dataset.item_ids, data.item_features_missing, dataset.warnings)
    for name, matrix in read.items():
        dataset.add_item_features(name, matrix)
    data.item_features = {name: str(path) for name, path in paths.items()}
