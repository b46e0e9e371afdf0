"""Presets for known dataset folders: their format and which file is which split (never guessed).

coat and yahoo ship only a random-exposure test (their test_id.txt is byte-identical to test_ood.txt): it is
read as test_ood, and the loader carves their IID test from the training events (protocols.md)."""
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
                     "source": "https://github.com/user683/DRGO"},
    "ood-food": {"format": "pairs", "files": {"train": "train.txt", "valid": "valid_iid.txt",
                                              "test": "test_iid.txt", "test_ood": "test.txt"},
                 "source": "https://github.com/user683/DRGO"},
    "coat": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test_ood": "test_ood.txt"},
             "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    "yahoo": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test_ood": "test_ood.txt"},
              "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    "ml-latest-small": {"format": "csv", "files": {"all": "ratings.csv"}, "header": False,
                        "columns": {"user": "0", "item": "1", "rating": "2", "timestamp": "3"},
                        "source": "https://grouplens.org/datasets/movielens/"},
    # interactions only (no features can be had here); its ids are not MMRec's: never pair it with MMRec features
    "baby": {"format": "mmrec", "files": {"inter": "baby.inter"},
             "source": "https://github.com/enoche/MMRec (the LATTICE-layout JSON split, converted to baby.inter)"},
}


def preset_for(folder_name: str) -> dict[str, Any] | None:
    """The preset of a known dataset folder name, or None."""
    return PRESETS.get(folder_name)
