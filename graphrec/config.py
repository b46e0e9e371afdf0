"""Loading an experiment: YAML -> overrides (`--set a.b=c`) -> validated Config, errors pointing at lines or --set."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import ValidationError

from .errors import GraphrecError
from .yamltext import DuplicateKeyError, parse_yaml, read_yaml_file
from .hints import Origin, key_lines, suggest_key, validation_message
from .models import MODELS, get_model_class
from .schema import (Config, DataConfig, EvalConfig, GroupConfig, ModelConfig, Section, SplitConfig,  # noqa: F401
                     SyntheticConfig, TrackingConfig, TrainConfig)
from .data.paths import resolve_data_path  # noqa: F401 (re-exported)
from .data.field_loader import FIELD_FORMATS
from .data.registry import data_format
from .models.robust import check_dro
from .tasks import check_task

def parse_override(text: str) -> tuple[list[str], Any]:
    """Split 'a.b=c' into (['a', 'b'], YAML-parsed c)."""
    if "=" not in text:
        raise GraphrecError(f"--set '{text}' is not of the form key.path=value, e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if not all(path):
        raise GraphrecError(f"--set '{text}': '{key}' is not a key path like train.lr")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except DuplicateKeyError as exc:
        raise GraphrecError(f"--set {text}: {exc}; give each key once") from None
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of the raw config dict with every `--set a.b=c` applied."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise GraphrecError(f"--set {text}: '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, with one-line errors for a missing file, its encoding, a repeated key or bad syntax."""
    return _read_yaml_text(path)[0]


def _read_yaml_text(path: str | os.PathLike) -> tuple[dict, str]:
    """The YAML mapping of a file and its text."""
    data, text = read_yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GraphrecError(f"{path}: the top level must be a mapping of sections (data:, model:, train:, ...), "
                            f"not a {type(data).__name__}")
    return data, text


def _model_fields(raw: dict) -> Optional[list[str]]:
    """The keys of the raw config's model (for hints), or None when its name is not a model's."""
    model = raw.get("model")
    try:
        return list(get_model_class(str(model.get("name", "lightgcn"))).config_class.model_fields)
    except (AttributeError, GraphrecError):
        return None


def build_config(raw: dict, source: str = "", base_dir: str = ".", origin: Optional[Origin] = None) -> Config:
    """Validate a raw dict into a Config, including the model's own keys; raises GraphrecError."""
    origin = origin or Origin(source)
    if not isinstance(raw, dict):
        raise GraphrecError(f"{origin.where()}the config must be a mapping of sections (data:, model:, train:, ...)")
    try:
        cfg = Config(**{str(k): v for k, v in raw.items() if k != "base_dir"}, base_dir=base_dir)
    except ValidationError as err:
        raise GraphrecError(validation_message(err, Config, "", origin, _model_fields(raw))) from None
    name = cfg.model.get("name", "lightgcn")
    try:
        model_cls = get_model_class(str(name))
    except GraphrecError as err:
        raise GraphrecError(f"{origin.where(('model', 'name'))}{err}") from None
    keys = model_cls.config_class
    try:
        cfg.model = keys(**{str(k): v for k, v in cfg.model.items()}).model_dump()
    except ValidationError as err:
        raise GraphrecError(validation_message(err, keys, "model", origin, list(keys.model_fields), name,
                                               key_owners(), causes=(("model", "name"),))) from None
    check_task(cfg, model_cls, origin)
    check_dro(cfg, model_cls, origin)
    _check_consistency(cfg, origin)
    cfg._origin = origin  # later checks (the loader's) point at lines and --set too
    return cfg


def key_owners() -> dict[str, list[str]]:
    """Model key -> the models that define it (not those that inherit it from another model's keys), the model with
    the fewest keys first."""
    owners: dict[str, list[str]] = {}
    for name, cls in sorted(MODELS.items(), key=lambda item: (len(item[1].config_class.model_fields), item[0])):
        own = {k for k in cls.config_class.model_fields
               if not any(k in base.model_fields for base in cls.config_class.__mro__[1:]
                          if isinstance(base, type) and issubclass(base, ModelConfig) and base is not ModelConfig
                          and any(m.config_class is base for m in MODELS.values()))}
        for field in own:
            owners.setdefault(field, []).append(name)
    return owners


def _check_consistency(cfg: Config, origin: Origin) -> None:
    """Checks across keys that pydantic's per-field validation cannot express."""
    data, split = cfg.data, cfg.split
    if split.method not in ("given", "loo") and split.valid_ratio + split.test_ratio >= 1:
        where = origin.where(("split", "test_ratio"), ("split", "valid_ratio"), ("split", "method"))
        raise GraphrecError(f"{where}split.valid_ratio + split.test_ratio = "
                            f"{split.valid_ratio:g} + {split.test_ratio:g} leaves no training events; "
                            "make their sum less than 1 (e.g. valid_ratio: 0.1, test_ratio: 0.2)")
    roles = ["user", "item", "rating", "timestamp"]
    for role in data.columns:
        if role not in roles:
            raise GraphrecError(f"{origin.where(('data', 'columns', role))}unknown key 'data.columns.{role}'"
                                f"{suggest_key('data.columns', role, roles)}")
    if data.format == "csv" and not {"user", "item"} <= set(data.columns):
        example = "{user: 0, item: 1, rating: 2}" if not data.header else "{user: userId, item: movieId}"
        raise GraphrecError(f"{origin.where(('data', 'format'), ('data', 'columns'))}data.format csv needs "
                            f"data.columns naming the user and item columns, e.g. data.columns: {example} (column "
                            "numbers with data.header: false)")
    if data.format == "csv" and not data.header:
        for role, column in data.columns.items():
            if isinstance(column, str) and not column.strip().isdigit():
                raise GraphrecError(f"{origin.where(('data', 'columns', role), ('data', 'header'))}data.header is "
                                    f"false, so data.columns.{role} must be a column number (0 = first), not "
                                    f"{column!r}")
    if data.format == "csv_fields":
        _check_csv_fields(data, origin)
    named: dict[str, str] = {}
    for role, column in data.columns.items():
        other = named.setdefault(str(column).strip(), role)
        if other != role:
            raise GraphrecError(f"{origin.where(('data', 'columns', role), ('data', 'columns', other))}data.columns."
                                f"{other} and data.columns.{role} name the same column {column!r}; give each its "
                                "own column")
        if isinstance(column, int) and column < 0:
            raise GraphrecError(f"{origin.where(('data', 'columns', role))}data.columns.{role} is {column}; "
                                "column numbers start at 0")
    if data.delimiter is not None and re.fullmatch(r"(\\[tnr0\\])+", data.delimiter):
        raise GraphrecError(f"{origin.where(('data', 'delimiter'))}data.delimiter is the {len(data.delimiter)} "
                            f"characters {data.delimiter!r}, a backslash kept as typed: YAML reads escapes only in "
                            'double quotes, so write delimiter: "\\t" (use double quotes in YAML) for a tab')
    if data.positive_labels is not None and (data.min_rating is not None or not data.positive_labels):
        why = ("is empty: list the label values of positive events, e.g. [1]" if not data.positive_labels else
               "and data.min_rating both choose rows by the same label column; keep one of them")
        raise GraphrecError(f"{origin.where(('data', 'positive_labels'), ('data', 'min_rating'))}"
                            f"data.positive_labels {why}")
    if data.delimiter is not None and (data.delimiter == "" or
                                       (data.format in ("csv", "atomic") and len(data.delimiter) != 1)):
        raise GraphrecError(f"{origin.where(('data', 'delimiter'), ('data', 'format'))}data.delimiter must be one "
                            f"character for format {data.format} (e.g. ',', or \"\\t\" in double quotes for a tab), "
                            f"not {data.delimiter!r}")
    _check_rows_or_events(cfg, origin)
    if data.format not in ("synthetic", "synthetic_fields") and data.path is None:
        raise GraphrecError(f"{origin.where(('data', 'format'), ('data', 'path'))}data.format is {data.format} "
                            "but data.path is not set; add data.path (a folder or file, relative to the YAML or "
                            "$GRAPHREC_DATA)")
    if data.format == "synthetic" and data.path is None and split.method == "given":
        raise GraphrecError(f"{origin.where(('split', 'method'), ('data',))}synthetic data is one set of events, "
                            "so it needs split.method: random, loo, temporal, temporal_global, popularity or degree")
    if data.format == "synthetic_fields" and split.method != "random":
        raise GraphrecError(f"{origin.where(('split', 'method'))}synthetic_fields data is one set of rows, so it "
                            "needs split.method: random (with split.valid_ratio and split.test_ratio)")


def _check_csv_fields(data: DataConfig, origin: Origin) -> None:
    """Format csv_fields: a header that names the columns, at least one field column and one role per column."""
    spec = data.csv_fields
    if not data.header:
        raise GraphrecError(f"{origin.where(('data', 'header'))}data.format csv_fields reads columns by name; set "
                            "data.header: true (the file's first line must name its columns)")
    if not spec.categorical and not spec.numeric:
        raise GraphrecError(f"{origin.where(('data', 'csv_fields'), ('data', 'format'))}data.format csv_fields needs "
                            "the columns that are fields, e.g. data.csv_fields: {categorical: [user, item], numeric: "
                            "[age], label: rating}")
    roles: dict[str, str] = {}
    for column, role in ([(c, "categorical") for c in spec.categorical] + [(c, "numeric") for c in spec.numeric]
                         + [(spec.label, "label")]):
        if column in roles:
            raise GraphrecError(f"{origin.where(('data', 'csv_fields'))}data.csv_fields names column '{column}' "
                                f"twice ({roles[column]} and {role}); give each column one role")
        roles[column] = role


def _check_rows_or_events(cfg: Config, origin: Origin) -> None:
    """Feature rows (libfm, synthetic_fields) go with pointwise tasks, user-item events with ranking."""
    fmt = data_format(cfg.data.format, cfg.data.path)
    rows = fmt in FIELD_FORMATS
    if cfg.task == "ranking" and rows:
        raise GraphrecError(f"{origin.where(('model', 'name'))}data.format {fmt} holds feature rows for regression "
                            f"or classification, but model {cfg.model['name']} ranks items (task ranking); use a "
                            "pointwise model (fm, nfm, deepfm, afm) or user-item data")
    if cfg.task != "ranking" and not rows and (cfg.data.path is None or fmt != "synthetic"):
        raise GraphrecError(f"{origin.where(('data', 'format'))}task {cfg.task} needs feature rows, but "
                            f"data.format {fmt} gives user-item events; use data.format libfm, csv_fields or "
                            "synthetic_fields")


def config_from_file(path: str | os.PathLike, overrides: list[str] | None = None,
                     base_dir: Optional[str] = None) -> Config:
    """Read a YAML experiment, apply `--set` overrides and validate it, pointing errors at lines or overrides."""
    raw, text = _read_yaml_text(path)
    if not raw and not overrides:
        raise GraphrecError(f"{path}: the config is empty (no keys); write at least its data: and model: sections, "
                            "e.g. copy experiments/quickstart.yaml")
    raw = apply_overrides(raw, overrides or [])
    origin = override_origin(str(path), overrides or [], key_lines(text))
    return build_config(raw, source=str(path), base_dir=base_dir or str(Path(path).resolve().parent), origin=origin)


def override_origin(source: str, overrides: list[str], lines: Optional[dict[tuple, int]] = None) -> Origin:
    """The Origin of a config read from `source` (its key lines, if any) with these `--set` overrides applied."""
    return Origin(source, lines, [(tuple(parse_override(o)[0]), o) for o in overrides])


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a YAML experiment, apply overrides and validate it."""
    return config_from_file(path, overrides)


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what config.yaml in a run folder holds)."""
    return cfg.model_dump(exclude={"base_dir"})
