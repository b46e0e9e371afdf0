"""Presets for known dataset folders: their format and which file is which split (never guessed).

coat and yahoo ship only a random-exposure test (their test_id.txt is byte-identical to test_ood.txt): it is
read as test_ood, and the loader carves their IID test from the training events (protocols.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

FRAPPE_NFM_FIELDS = {"user": [0, 584], "item": [585, 4507], "daytime": [4508, 4514], "weekday": [4515, 4521],
                     "isweekend": [4522, 4523], "homework": [4524, 4526], "weather": [4527, 4534],
                     "country": [4535, 4607], "city": [4608, 4808]}

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
    "coat": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test_ood": "test_ood.txt"},
             "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    "yahoo": {"format": "lightgcn", "files": {"train": "train.txt", "valid": "valid.txt", "test_ood": "test_ood.txt"},
              "source": "https://github.com/LehengTHU/AdvInfoNCE"},
    # Built by `graphrec data prepare frappe-nfm --from frappe-context --out <folder>/frappe-nfm` (docs/feature-based.md);
    # the field ranges follow from frappe-context's final_app.csv (feature ids contiguous per field, in this order).
    "frappe-nfm": {"format": "libfm",
                   "files": {"train": "train.libfm", "valid": "validation.libfm", "test": "test.libfm"},
                   "fields": FRAPPE_NFM_FIELDS,
                   "source": "graphrec data prepare frappe-nfm (from frappe-context, https://arxiv.org/abs/1505.03014)"},
    # NFM's MovieLens tag split (user, movie, tag one-hot on every line); the fields are inferred from the feature
    # positions: the files were not available to check declared ranges (docs/feature-based.md)
    "ml-tag": {"format": "libfm",
               "files": {"train": "ml-tag.train.libfm", "valid": "ml-tag.validation.libfm",
                         "test": "ml-tag.test.libfm"},
               "source": "https://github.com/hexiangnan/neural_factorization_machine (data/ml-tag)"},
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


def data_format(fmt: str, path: Optional[str]) -> str:
    """The format a data block reads: `fmt`, or the preset's when `fmt` is the default and `path` is a known folder."""
    preset = preset_for(Path(path).name) if path else None
    return preset["format"] if fmt == "synthetic" and preset is not None else fmt
