"""From a config's data and split blocks to a Dataset: read, filter, remap ids, split, check."""
from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path

import numpy as np

from ..hints import blame
from ..schema import Config, DataConfig
from .paths import resolve_data_path
from ..errors import GraphrecError, WarningLog
from . import field_loader, formats, splits, synthetic
from .dataset import Dataset, Interactions
from .item_feature_sources import attach_item_features
from .mmrec import SPLIT_NAMES, read_mmrec
from .registry import preset_for


def with_preset(data: DataConfig, folder: Path) -> DataConfig:
    """data with format/files/columns (...) filled from the registry when the folder is a known one and no files are
    set; keys the config sets to other than their defaults keep their values (a run folder's config.yaml writes
    every key, at its default where the preset filled it in)."""
    preset = preset_for(folder.name)
    if preset is None or data.files:
        return data
    default = DataConfig()
    fields = {k: v for k, v in preset.items() if k in DataConfig.model_fields and k != "format"
              and (k not in data.model_fields_set or getattr(data, k) == getattr(default, k))}
    if data.format == "synthetic" or data.format == preset["format"]:
        fields["format"] = preset["format"]
    return data.model_copy(update=fields)


def read_table(data: DataConfig, path: Path, warnings: WarningLog) -> Interactions:
    """One file read with the reader of data.format."""
    skip = data.skip_bad_lines
    if data.format == "lightgcn":
        return formats.read_lightgcn(path, skip, warnings)
    if data.format == "pairs":
        return formats.read_pairs(path, skip, warnings, data.delimiter)
    columns = {k: str(v) for k, v in data.columns.items()}
    if data.format == "atomic":
        return formats.read_atomic(path, columns, skip, warnings)
    return formats.read_csv(path, columns, data.delimiter, data.header, skip, warnings)


def _check_file(folder: Path, key: str, fname: str) -> None:
    """One-line error naming data.files.<key> when its file is missing or is a folder."""
    path = folder / fname
    if path.is_file():
        return
    if path.is_dir():
        raise GraphrecError(f"data.files.{key} '{path}' is a folder; name a file inside it")
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    close = difflib.get_close_matches(fname, names, n=1, cutoff=0.8)
    hint = (f"; did you mean '{close[0]}'?" if close else
            f"; the folder has: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}" if names else
            "; the folder is empty")
    raise GraphrecError(f"data file '{path}' not found (data.files.{key}){hint}")


def _filter_ratings(name: str, table: Interactions, min_rating: float | None) -> Interactions:
    """Keep events rated at least min_rating (implicit feedback)."""
    if min_rating is None:
        return table
    if table.rating is None:
        raise GraphrecError(f"data.min_rating is set but {name} has no rating column; "
                            "set data.columns.rating (or a label column) or remove data.min_rating")
    keep = table.rating >= min_rating
    if not keep.any():
        raise GraphrecError(f"{name}: every rating is below data.min_rating={min_rating:g} "
                            f"(the highest is {table.rating.max():g}); lower data.min_rating")
    return table.take(keep)


def _positive_pairs(name: str, table: Interactions, data: DataConfig, warnings: WarningLog,
                    cfg: Config) -> Interactions:
    """The events of a pairs file whose label marks a positive: data.positive_labels, or (unset) labels all 1.

    A label column that says anything else while data.positive_labels is unset is refused, so that rows labelled
    0 or -1 are never trained as positives (data.min_rating reads the column as a rating instead).
    """
    if data.format != "pairs" or data.min_rating is not None:
        return table
    wanted = data.positive_labels
    if table.rating is None:
        if wanted is not None:
            raise GraphrecError(f"{blame(cfg, ('data', 'positive_labels'))}data.positive_labels is set but {name} has "
                                "no label column (`user item` per line); remove data.positive_labels")
        return table
    keep = np.isin(table.rating, np.asarray(wanted if wanted is not None else [1.0], dtype=np.float32))
    if wanted is None and not keep.all():
        values, counts = np.unique(table.rating[~keep], return_counts=True)
        shown = ", ".join(f"{v:g} on {c} line(s)" for v, c in zip(values[:3], counts[:3]))
        more = ", ..." if len(values) > 3 else ""
        raise GraphrecError(f"{name}: the label column holds values other than 1 ({shown}{more}); set "
                            "data.positive_labels to the labels of positive events (e.g. [1]) to drop the others, "
                            "or data.min_rating to read the column as a rating")
    if not keep.any():
        raise GraphrecError(f"{blame(cfg, ('data', 'positive_labels'))}{name}: no line has a label in "
                            f"data.positive_labels {wanted}; check the labels the file uses")
    warnings.warn(f"dropped_labels_{Path(name).name}", int((~keep).sum()),
                  f"{name}: dropped {int((~keep).sum())} line(s) whose label is not in data.positive_labels {wanted}")
    return table.take(keep)


def _kcore(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of events kept by iterative k-core filtering (users and items with >= k events)."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        _, u_inv, u_cnt = np.unique(users[keep], return_inverse=True, return_counts=True)
        _, i_inv, i_cnt = np.unique(items[keep], return_inverse=True, return_counts=True)
        ok = (u_cnt[u_inv] >= k) & (i_cnt[i_inv] >= k)
        if ok.all():
            return keep
        keep[np.flatnonzero(keep)[~ok]] = False


def _apply_kcore(tables: dict[str, Interactions], k: int) -> dict[str, Interactions]:
    """k-core filter the 'all' (or 'train') table; other tables keep only events of surviving users and items."""
    base = "all" if "all" in tables else "train"
    t = tables[base]
    as_key = lambda a: a.astype(str) if a.dtype == object else a  # noqa: E731
    keep = _kcore(as_key(t.user), as_key(t.item), k)
    if not keep.any():
        raise GraphrecError(f"data.kcore={k} removes every event; lower it")
    kept = t.take(keep)
    return {key: kept if key == base else
            other.take(np.isin(other.user, kept.user) & np.isin(other.item, kept.item))
            for key, other in tables.items()}


def _remap(tables: dict[str, Interactions]) -> tuple[dict[str, Interactions], np.ndarray, np.ndarray]:
    """Contiguous ids (sorted raw ids) over the union of all tables; returns splits and raw-id arrays."""
    def ids(attr: str) -> np.ndarray:
        parts = [getattr(t, attr) for t in tables.values()]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(str) for p in parts]
        return np.unique(np.concatenate(parts))
    user_ids, item_ids = ids("user"), ids("item")
    out = {}
    for name, t in tables.items():
        u = t.user.astype(str) if user_ids.dtype.kind == "U" else t.user
        i = t.item.astype(str) if item_ids.dtype.kind == "U" else t.item
        out[name] = Interactions(np.searchsorted(user_ids, u), np.searchsorted(item_ids, i), t.rating, t.timestamp)
    return out, user_ids, item_ids


def _dedupe(name: str, data: Interactions, num_items: int, warnings: WarningLog) -> Interactions:
    """Drop repeated (user, item) events, keeping the first, with a warning."""
    _, first = np.unique(data.keys(num_items), return_index=True)
    if len(first) < len(data):
        warnings.warn(f"duplicates_{name}", len(data) - len(first),
                      f"{name}: dropped {len(data) - len(first)} duplicate (user, item) event(s)")
        data = data.take(np.sort(first))
    return data


def check_split_keys(cfg: Config, files: dict[str, str]) -> None:
    """Refuse split keys that would do nothing with these files (the split method, or a ratio it does not read).

    With given files (no 'all'), the files are the splits: split.method must stay 'given' unless it is one of
    splits.RESPLIT_METHODS, which re-split the union of the files; test_ratio is unused, and valid_ratio too when a
    valid file is given. With one set of events (data.files.all or synthetic), loo reads neither ratio.
    """
    split = cfg.split
    defaults = {name: field.default for name, field in type(split).model_fields.items()}
    given = bool(files) and "all" not in files
    unused = []
    if given and split.method != "given" and split.method not in splits.RESPLIT_METHODS:
        raise GraphrecError(f"{blame(cfg, ('split', 'method'))}split.method {split.method} has no effect: data.files "
                            f"gives the splits ({', '.join(files)}); remove split.method, or name one file as "
                            "data.files: {all: FILE} to split it")
    if given and split.method == "given":
        unused = ["test_ratio"] + (["valid_ratio"] if "valid" in files else [])
    if split.method == "loo":
        unused = ["valid_ratio", "test_ratio"]
    for key in unused:
        if getattr(split, key) != defaults[key]:
            why = ("leave-one-out takes one event per user" if split.method == "loo" else
                   "the data gives a valid file" if key == "valid_ratio" else "the data gives its test file")
            raise GraphrecError(f"{blame(cfg, ('split', key))}split.{key} {getattr(split, key):g} has no effect: "
                                f"{why}; remove it")


def _check_valid_carved(cfg: Config, train: Interactions, valid: Interactions) -> None:
    """Refuse a positive split.valid_ratio (or loo) that carved no validation event: the run would silently use the
    paper protocol. valid_ratio: 0 asks for that protocol on purpose."""
    if len(valid) or (cfg.split.method != "loo" and cfg.split.valid_ratio == 0):
        return
    events = np.bincount(train.user).max(initial=0) if len(train) else 0
    if cfg.split.method == "loo":
        raise GraphrecError(f"{blame(cfg, ('split', 'method'))}split.method loo carves no validation event: no user "
                            "has 3 or more events; use split.method random, or data with longer histories")
    ratio = cfg.split.valid_ratio
    raise GraphrecError(f"{blame(cfg, ('split', 'valid_ratio'))}split.valid_ratio {ratio:g} carves no validation "
                        f"event: no user has the {math.ceil(1 / ratio)} training events that floor(events x "
                        f"{ratio:g}) >= 1 needs (the most is {events}); raise split.valid_ratio, or set it to 0 to "
                        "train without validation (the paper protocol)")


def _split_all(cfg: Config, data: Interactions) -> dict[str, Interactions]:
    """train, valid, test (and test_ood for OOD methods) from a single set of events with the configured split.

    A part that is empty although its ratio asks for events is an error; one whose ratio is 0 is left out.
    """
    split = cfg.split
    method, seed = split.method, split.seed if split.seed is not None else cfg.seed
    if method == "given":
        raise GraphrecError("the data is one file (data.files.all or synthetic), so it needs a split: "
                            "set split.method to random, loo, temporal or temporal_global")
    if method in ("temporal", "temporal_global") and data.timestamp is None:
        raise GraphrecError(f"split.method {method} needs timestamps, which data.format {cfg.data.format} does not "
                            "give; use split.method: random or loo, or data.format csv/atomic with "
                            "data.columns.timestamp")
    parts = splits.split_events(data, method, seed, **split.model_dump(exclude={"method", "seed"}))
    asked = {} if method == "loo" else {"test_ood": "degree_quantile" if method == "degree" else "test_ood_ratio",
                                        "test": "test_ratio", "valid": "valid_ratio"}
    for name, key in asked.items():
        if name in parts and len(parts[name]) == 0 and getattr(split, key) > 0:
            raise GraphrecError(f"split.method {method} leaves {name} empty with split.{key}={getattr(split, key):g} "
                                f"on {len(data)} events; raise split.{key}")
    return {name: part for name, part in parts.items() if name == "train" or len(part) or name not in asked}


def _resplit_given(cfg: Config, mapped: dict[str, Interactions], num_items: int,
                   warnings: WarningLog) -> dict[str, Interactions]:
    """The union of the given files split again by the explicit OOD split.method, with a warning saying so."""
    first, *others = mapped.values()
    union = functools.reduce(Interactions.concat, others, first)
    warnings.warn("resplit_given_files", 1, f"split.method {cfg.split.method} re-splits the union of the given "
                  f"files ({', '.join(mapped)}); set split.method: given to use them as they are")
    return _split_all(cfg, _dedupe("given files", union, num_items, warnings))


def _check(ds: Dataset) -> None:
    """One warning line each for the data problems that do not stop a run."""
    w = ds.warnings
    train_users = np.bincount(ds.train.user, minlength=ds.num_users) > 0
    train_items = np.bincount(ds.train.item, minlength=ds.num_items) > 0
    train_keys = np.unique(ds.train.keys(ds.num_items))
    for name, split in ds.eval_splits().items():
        if len(split) == 0:
            continue
        no_train = ~train_users[split.user]
        w.warn(f"{name}_users_without_train", len(np.unique(split.user[no_train])),
               f"{name}: {len(np.unique(split.user[no_train]))} user(s) have no training events "
               "(skipped in evaluation)")
        unseen = np.unique(split.item[~train_items[split.item]])
        w.warn(f"{name}_items_unseen", len(unseen), f"{name}: {len(unseen)} item(s) never occur in training")
        overlap = int(np.isin(split.keys(ds.num_items), train_keys).sum())
        w.warn(f"{name}_pairs_in_train", overlap, f"{name}: {overlap} pair(s) also occur in train "
               "(masked as seen items, so they can never count as hits)")
        w.warn(f"{name}_users_without_events", int(train_users.sum()) - len(np.unique(split.user)),
               f"{name}: {int(train_users.sum()) - len(np.unique(split.user))} training user(s) have no "
               f"{name} events (not evaluated on {name})")


def _read_mmrec_tables(data: DataConfig, folder: Path) -> tuple[dict[str, Interactions], dict[str, np.ndarray]]:
    """train/valid/test events of an MMRec folder (`<folder name>.inter`, or the one file data.files names) and its
    image/text features (row i = raw item id i)."""
    if len(data.files) > 1:
        raise GraphrecError(f"data.format mmrec reads one .inter file; data.files names {sorted(data.files)}: "
                            "keep one entry, e.g. {inter: baby.inter}")
    inter = Path(next(iter(data.files.values()))).stem if data.files else folder.name
    read = read_mmrec(folder, inter)
    tables = {}
    for part in SPLIT_NAMES:
        users, items = read.part(part)
        if len(users):
            tables[part] = _filter_ratings(f"{folder / inter}.inter", Interactions(users, items), data.min_rating)
    return tables, read.features


def load_dataset(cfg: Config) -> Dataset:
    """Read (or generate), filter, remap, split and check the data a config describes."""
    warnings = WarningLog()
    data = cfg.data
    if data.format == "synthetic_fields":
        return field_loader.synthetic_field_dataset(cfg)
    folder_features: dict[str, np.ndarray] = {}  # an MMRec folder's own features, row i = raw item id i
    if data.format == "synthetic" and data.path is None:
        check_split_keys(cfg, {})
        s = data.synthetic
        events = synthetic.generate(s.num_users, s.num_items, s.num_communities, s.mean_degree,
                                    s.in_community, s.popularity_exponent, s.seed)
        tables = {"all": Interactions(events.user, events.item, None, events.timestamp)}
        name, source = "synthetic", None
    else:
        folder = resolve_data_path(cfg)
        if folder is None:
            raise GraphrecError(f"data.format is {data.format} but data.path is not set")
        if folder.is_file():
            data = data.model_copy(update={"files": data.files or {"all": folder.name}})
            folder = folder.parent
        data = with_preset(data, folder)
        if data.format == "synthetic":
            raise GraphrecError(f"data.path '{folder}' is not a known dataset folder; set data.format "
                                "(lightgcn, pairs, atomic, csv, libfm, csv_fields, mmrec) and data.files")
        if data.format == "mmrec":
            tables, folder_features = _read_mmrec_tables(data, folder)
        else:
            if not data.files:
                listing = ", ".join(sorted(p.name for p in folder.iterdir())[:8])
                raise GraphrecError(f"{folder}: set data.files, e.g. {{train: train.txt, test: test.txt}} "
                                    f"(the folder has: {listing})")
            if "all" in data.files and len(data.files) > 1:
                raise GraphrecError("data.files: 'all' (one file to split) cannot be combined with other files")
            if "all" not in data.files and "train" not in data.files:
                raise GraphrecError(f"data.files needs a 'train' file (or 'all' to split one file); got "
                                    f"{sorted(data.files)}")
            if data.positive_labels is not None and data.format != "pairs":
                raise GraphrecError(f"{blame(cfg, ('data', 'positive_labels'))}data.positive_labels applies to "
                                    f"format pairs (its label column), not {data.format}; use data.min_rating for a "
                                    "rating column")
            check_split_keys(cfg, data.files)
            for key, fname in data.files.items():
                _check_file(folder, key, fname)
            if data.format == "libfm":
                return field_loader.libfm_dataset(cfg, data, folder, warnings)
            if data.format == "csv_fields":
                return field_loader.csv_fields_dataset(cfg, data, folder, warnings)
            tables = {key: _filter_ratings(f"{folder / fname}", _positive_pairs(
                          f"{folder / fname}", read_table(data, folder / fname, warnings), data, warnings, cfg),
                          data.min_rating)
                      for key, fname in data.files.items()}
        name = folder.name
        source = str(folder)
    if data.kcore > 1:
        tables = _apply_kcore(tables, data.kcore)
    mapped, user_ids, item_ids = _remap(tables)
    num_users, num_items = len(user_ids), len(item_ids)
    mapped = {k: _dedupe(k, v, num_items, warnings) for k, v in mapped.items()}
    if "all" in mapped or cfg.split.method in splits.OOD_METHODS:
        parts = (_split_all(cfg, mapped.pop("all")) if "all" in mapped else
                 _resplit_given(cfg, mapped, num_items, warnings))
        train, valid = parts.pop("train"), parts.pop("valid", None)
        tests = parts
        if valid is not None:
            _check_valid_carved(cfg, train, valid)
    else:
        train, valid = mapped.pop("train"), mapped.pop("valid", None)
        tests = mapped
        seed = cfg.split.seed if cfg.split.seed is not None else cfg.seed
        if "test_ood" in tests and "test" not in tests:  # only an OOD test: an IID one carved from train
            train, test = splits.carve_validation(train, cfg.split.test_ratio, splits.child_seed(seed, 2))
            tests = {"test": test, **tests}
        if valid is None:
            train, valid = splits.carve_validation(train, cfg.split.valid_ratio, seed)
            _check_valid_carved(cfg, train, valid)
    if len(train) == 0:
        raise GraphrecError("the split leaves the training set empty; lower split.test_ratio/valid_ratio "
                            "or data.kcore, or check data.files.train")
    ds = Dataset(name, num_users, num_items, train, valid, tests, user_ids, item_ids, warnings=warnings, source=source)
    attach_item_features(cfg, ds, folder_features)
    _check(ds)
    return ds


def apply_protocol(cfg: Config, dataset: Dataset) -> Dataset:
    """The data as the config's protocol trains on it: `refit` folds the validation split into train."""
    if cfg.protocol != "refit":
        return dataset
    has_valid = (dataset.valid is not None and len(dataset.valid) > 0) or (
        dataset.fields is not None and "valid" in dataset.fields.rows)
    if not has_valid:
        raise GraphrecError("protocol: refit folds the validation split into train, but this data has none; use "
                            "protocol: validation (with split.valid_ratio > 0 or a valid file)")
    return dataset.with_valid_in_train()
