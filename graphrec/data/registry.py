"""Presets for known dataset folders: their format and which file is which split (never guessed)."""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "gowalla": {"format": "lightgcn", "files": {"train": "train.txt", "test": "test.txt"},
                "source": "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/gowalla"},
    "yelp2018": {"format": "lightgcn", "files": {"train": "train.txt", "test": "test.txt"},
                 "source": "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/yelp2018"},
    "amazon-book": {"format": "lightgcn", "files": {"train": "train.txt", "test": "test.txt"},
                    "source": "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/amazon-book"},
    "ood-yelp2018": {"format": "pairs", "files": {"train": "train.txt", "valid": "valid_iid.txt",
                                                  "test": "test_iid.txt", "test_ood": "test.txt"},
                     "positive_labels": [1], "source": "https://github.com/user683/DRGO"},
    "ood-food": {"format": "pairs", "files": {"train": "train.txt", "valid": "valid_iid.txt",
                                              "test": "test_iid.txt", "test_ood": "test.txt"},
                 "positive_labels": [1], "source": "https://github.com/user683/DRGO"},
    "coat": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test": "test_ood.txt"},
             "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    "yahoo": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test": "test_ood.txt"},
              "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    "ml-latest-small": {"format": "csv", "files": {"all": "ratings.csv"}, "header": False,
                        "columns": {"user": "0", "item": "1", "rating": "2", "timestamp": "3"},
                        "source": "https://grouplens.org/datasets/movielens/"},
}


def preset_for(folder_name: str) -> dict[str, Any] | None:
    """The preset of a known dataset folder name, or None."""
    return PRESETS.get(folder_name)
