"""YAML -> typed, validated config: defaults < file < `--set a.b=c` overrides, one-line errors with did-you-mean."""
from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import GraphrecError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class SyntheticConfig(Section):
    """The seeded generator behind the quickstart (graphrec.data.synthetic)."""

    num_users: int = Field(2000, ge=2)
    num_items: int = Field(1500, ge=2)
    num_communities: int = Field(12, ge=1)
    mean_degree: float = Field(25.0, gt=0)
    in_community: float = Field(0.8, ge=0, le=1)
    popularity_exponent: float = Field(1.1, ge=0)
    seed: int = 7


class DataConfig(Section):
    """Where the interactions come from and how they are read and filtered."""

    path: Optional[str] = None
    format: Literal["synthetic", "lightgcn", "pairs", "atomic", "csv"] = "synthetic"
    files: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, str | int] = Field(default_factory=dict)
    delimiter: Optional[str] = None
    header: bool = True
    min_rating: Optional[float] = None
    kcore: int = Field(0, ge=0)
    skip_bad_lines: bool = False
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class SplitConfig(Section):
    """How train/valid/test (and test_ood) are made when the files do not give them (graphrec.data.splits)."""

    method: Literal["given", "random", "loo", "temporal", "temporal_global", "popularity", "degree"] = Field(
        "given", description="given: the files' own splits; random / loo: IID per user; OOD kinds that add "
        "test_ood: popularity, degree, temporal (latest events per user), temporal_global (latest period); "
        "with given files an OOD kind re-splits the union of the files")
    valid_ratio: float = Field(0.1, ge=0, lt=1, description="per-user share of events to valid (OOD kinds: of "
                               "the events left after test_ood, unless valid_from: ood)")
    test_ratio: float = Field(0.2, ge=0, lt=1, description="per-user share of events to the IID test (OOD kinds: "
                              "of the events left after test_ood; degree: of every user's events)")
    test_ood_ratio: float = Field(0.1, ge=0, lt=1, description="popularity / temporal_global: share of all events "
                                  "in test_ood; temporal: per-user share of the latest events")
    alpha: float = Field(1.0, ge=0, description="popularity: test_ood events drawn w.p. proportional to "
                         "pop(item)^-alpha (0: uniform; 1: as DICE/MACR's intervened tests)")
    degree_quantile: float = Field(0.2, gt=0, lt=1, description="degree: share of users (by number of events) "
                                   "whose held-out events form test_ood")
    degree_side: Literal["low", "high"] = Field("low", description="degree: test_ood from the users with the "
                                                "fewest (low) or most (high) events")
    valid_from: Literal["iid", "ood"] = Field("iid", description="OOD kinds: valid drawn IID from the events left "
                                              "after test_ood (iid), or like test_ood (ood: popularity-weighted, "
                                              "the selected users, or the period just before test_ood)")
    seed: Optional[int] = Field(None, description="seed of the split (default: the run's seed)")


class ModelConfig(Section):
    """Keys every model has; a model adds its own by subclassing (see graphrec.models)."""

    name: str = "lightgcn"
    embedding_dim: int = Field(64, ge=1)
    init_std: float = Field(0.1, gt=0)


class TrainConfig(Section):
    """The training loop: BPR batches, optimizer, early stopping, checkpoints."""

    epochs: int = Field(1000, ge=0)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(0.001, gt=0)
    reg: float = Field(1e-4, ge=0)
    num_negatives: int = Field(1, ge=1)
    negative_candidates: int = Field(1, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_min: float = Field(0.0, ge=0)
    lr_milestones: list[int] = Field(default_factory=list)
    lr_gamma: float = Field(0.1, gt=0)
    eval_every: int = Field(1, ge=1)
    patience: int = Field(10, ge=0)
    select_metric: str = "recall@20"
    grad_clip: Optional[float] = Field(None, gt=0)
    max_batches: Optional[int] = Field(None, ge=1)
    threads: Optional[int] = Field(None, ge=1)
    progress: bool = True


class EvalConfig(Section):
    """Full-ranking evaluation: metrics at several K in one pass, a bound on the score matrix held at once."""

    topk: list[int] = Field(default_factory=lambda: [10, 20], description="the K of every metric@K")
    metrics: list[Literal["recall", "ndcg", "precision", "hit", "mrr", "coverage", "arp",
                          "recall_head", "recall_mid", "recall_tail", "ndcg_head", "ndcg_mid", "ndcg_tail"]] = Field(
        default_factory=lambda: ["recall", "ndcg", "precision", "hit", "mrr"],
        description="per-user means, except coverage (distinct items in all top-K lists / items); arp: mean "
        "train popularity of the top-K items; recall/ndcg_<group>: only the group's relevant items and hits "
        "count, over the users with relevant items in the group")
    head_share: float = Field(0.2, gt=0, lt=1, description="the most popular share of items (by train events) "
                              "that forms the head group")
    tail_share: float = Field(0.5, gt=0, lt=1, description="the least popular share of items that forms the tail "
                              "group; the items between head and tail are mid")
    max_score_elements: int = Field(2 ** 25, ge=1, description="most users x items scores held at once")

    @field_validator("topk")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError("every K must be >= 1")
        return sorted(set(value))

    @model_validator(mode="after")
    def _groups_fit(self) -> "EvalConfig":
        if self.head_share + self.tail_share > 1:
            raise ValueError(f"eval.head_share + eval.tail_share = {self.head_share:g} + {self.tail_share:g} is "
                             "above 1; make head and tail disjoint (e.g. 0.2 and 0.5)")
        return self


class TrackingConfig(Section):
    """Where metrics go besides log.jsonl: W&B online, offline or disabled."""

    mode: Literal["disabled", "offline", "online"] = "disabled"
    project: str = "graphrec"
    entity: Optional[str] = None


class Config(Section):
    """A whole experiment."""

    name: str = "run"
    seed: int = 2020
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "lightgcn"})
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    base_dir: str = Field(".", exclude=True)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not value.strip() or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("name becomes the run folder's name: use a non-empty name without '/'")
        return value


# Names other tools use for graphrec's keys: only ever used to suggest the right key, never accepted,
# so that each setting has one spelling.
ALIASES: dict[str, dict[str, str]] = {
    "": {"out_dir": "output_dir", "output": "output_dir", "runs_dir": "output_dir", "save_dir": "output_dir",
         "random_seed": "seed", "gpu": "device", "experiment": "name", "run_name": "name", "dataset": "data",
         "optim": "train", "training": "train", "evaluation": "eval", "wandb": "tracking", "splits": "split"},
    "data": {"dataset": "path", "dir": "path", "data_path": "path", "data_dir": "path", "sep": "delimiter",
             "separator": "delimiter", "field_separator": "delimiter", "min_rate": "min_rating",
             "threshold": "min_rating", "rating_threshold": "min_rating", "k_core": "kcore", "core": "kcore",
             "skip_bad": "skip_bad_lines", "fields": "columns", "has_header": "header", "type": "format"},
    "split": {"type": "method", "strategy": "method", "valid": "valid_ratio", "test": "test_ratio",
              "val_ratio": "valid_ratio", "validation_ratio": "valid_ratio"},
    "train": {"learning_rate": "lr", "learningrate": "lr", "weight_decay": "reg", "decay": "reg", "l2": "reg",
              "l2_reg": "reg", "reg_weight": "reg", "regs": "reg", "lambda": "reg", "epoch": "epochs",
              "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "max_epoch": "epochs",
              "train_batch_size": "batch_size", "batch": "batch_size", "bs": "batch_size",
              "neg_num": "num_negatives", "negatives": "num_negatives", "num_neg": "num_negatives",
              "neg_samples": "num_negatives", "train_neg_sample_num": "num_negatives",
              "candidate_num": "negative_candidates", "dns_candidates": "negative_candidates",
              "candidates": "negative_candidates",
              "scheduler": "lr_schedule", "lr_scheduler": "lr_schedule", "schedule": "lr_schedule",
              "eta_min": "lr_min", "min_lr": "lr_min", "milestones": "lr_milestones", "gamma": "lr_gamma",
              "stopping_step": "patience", "early_stop": "patience", "early_stopping": "patience",
              "eval_step": "eval_every", "eval_interval": "eval_every", "valid_metric": "select_metric",
              "metric": "select_metric", "clip_grad_norm": "grad_clip", "max_grad_norm": "grad_clip",
              "optim": "optimizer", "num_threads": "threads", "tqdm": "progress"},
    "eval": {"k": "topk", "topks": "topk", "top_k": "topk", "ks": "topk", "metric": "metrics",
             "eval_batch_size": "max_score_elements", "chunk_size": "max_score_elements"},
    "model": {"n_layers": "num_layers", "layers": "num_layers", "layer": "num_layers", "n_layer": "num_layers",
              "embedding_size": "embedding_dim", "emb_dim": "embedding_dim", "embed_dim": "embedding_dim",
              "dim": "embedding_dim", "latent_dim": "embedding_dim", "emb_size": "embedding_dim",
              "recdim": "embedding_dim", "model": "name", "type": "name", "model_name": "name"},
    "tracking": {"wandb_mode": "mode", "wandb_project": "project", "wandb_entity": "entity"},
}


def _section_fields(cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at `loc` (a path of keys) inside `cls`."""
    for key in loc[:-1]:
        field = cls.model_fields.get(str(key))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        cls = ann
    return [name for name in cls.model_fields if name != "base_dir"]


def _all_sections(model_fields: list[str]) -> dict[str, list[str]]:
    """Every section path ('' for the top level) -> its keys, with the current model's keys under 'model'."""
    out: dict[str, list[str]] = {}

    def walk(cls: type[BaseModel], prefix: str) -> None:
        out[prefix] = [n for n in cls.model_fields if n != "base_dir"]
        for name, field in cls.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}.{name}" if prefix else name)
    walk(Config, "")
    out["model"] = model_fields
    return out


def suggest_key(section: str, word: str, known: list[str], model_fields: Optional[list[str]] = None) -> str:
    """A did-you-mean for an unknown key `word` in `section` ('' = top level, 'train', 'data.synthetic', ...)."""
    join = lambda sec, key: f"{sec}.{key}" if sec else key  # noqa: E731
    aliases = {a: t for a, t in ALIASES.get(section.split(".")[0] if section else "", {}).items() if t in known}
    low = word.lower()
    if low in known:
        return f", did you mean '{join(section, low)}'?"
    if low in aliases:
        return f", did you mean '{join(section, aliases[low])}'?"
    close = difflib.get_close_matches(low, known + list(aliases), n=1, cutoff=0.6)
    if close:
        return f", did you mean '{join(section, aliases.get(close[0], close[0]))}'?"
    # The key may belong to another section (`lr` at the top level, `topk` under data).
    for other, keys in _all_sections(model_fields or []).items():
        if other == section:
            continue
        other_aliases = ALIASES.get(other.split(".")[0] if other else "", {})
        target = low if low in keys else other_aliases.get(low)
        if target in keys and (other or target not in ("data", "model")):
            return f", did you mean '{join(other, target)}' (it belongs in the {other or 'top'} section)?"
    return f"; known keys here: {', '.join(known)}"


class Origin:
    """Where each key of a raw config came from (a YAML line or a --set), to point error messages at it."""

    def __init__(self, source: str = "", lines: Optional[dict[tuple, int]] = None,
                 overrides: Optional[dict[tuple, str]] = None) -> None:
        self.source, self.lines, self.overrides = source, lines or {}, overrides or {}

    def where(self, path: tuple = ()) -> str:
        """'FILE line N: ' or '--set a.b=c: ' for the key path (or its closest enclosing key), else 'FILE: '."""
        path = tuple(str(p) for p in path)
        for n in range(len(path), 0, -1):
            if path[:n] in self.overrides:
                return f"--set {self.overrides[path[:n]]}: "
            if path[:n] in self.lines:
                return f"{self.source} line {self.lines[path[:n]]}: "
        return f"{self.source}: " if self.source else ""


def _key_lines(text: str) -> dict[tuple, int]:
    """Line number (1-based) of every mapping key path in a YAML text, e.g. ('train', 'lr') -> 12."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[tuple, int] = {}

    def walk(node, prefix: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    path = prefix + (str(key_node.value),)
                    out.setdefault(path, key_node.start_mark.line + 1)
                    walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                out.setdefault(prefix + (str(index),), item.start_mark.line + 1)
                walk(item, prefix + (str(index),))
    walk(root, ())
    return out


def _key_text(path: tuple) -> str:
    """('eval', 'metrics', 1) -> 'eval.metrics[1]'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(err: ValidationError, cls: type[BaseModel], prefix: str, origin: Origin,
              model_fields: Optional[list[str]] = None, model_name: str = "") -> str:
    """Turn the first pydantic error into one line naming the key (and its YAML line) and the fix."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    path = ((prefix,) if prefix else ()) + loc
    key = _key_text(path)
    where = origin.where(path)
    if first["type"] == "extra_forbidden":
        known = _section_fields(cls, tuple(str(p) for p in loc))
        section = ".".join(str(p) for p in path[:-1])
        hint = suggest_key(section, str(path[-1]), known, model_fields)
        if prefix == "model" and hint.startswith(";"):
            from .models import MODELS
            owners = [name for name, m in sorted(MODELS.items()) if str(path[-1]) in m.config_class.model_fields]
            hint = f"; model {model_name} has no such key (its keys: {', '.join(known)})" + (
                f"; '{path[-1]}' is a key of model {', '.join(owners)}" if owners else "")
        return f"{where}unknown key '{key}'{hint}"
    got = first.get("input")
    msg = first["msg"].replace("Input should be", "expected").replace("Value error, ", "")
    hint = ""
    if first["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", str(first.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(got), choices, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
    if first["type"] in ("model_type", "dict_type") and not isinstance(got, dict):
        hint = f"; '{key}' is a section: write it as a mapping of keys, e.g. {key}: {{...}}"
    shown = got if not isinstance(got, (dict, list)) or len(repr(got)) < 80 else type(got).__name__
    where_key = f"'{key}'" if key else "the config"
    return f"{where}bad value for {where_key}: {msg} (got {shown!r}){hint}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split 'a.b=c' into (['a', 'b'], YAML-parsed c)."""
    if "=" not in text:
        raise GraphrecError(f"--set '{text}' is not of the form key.path=value, e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    path = [part.strip() for part in key.strip().split(".")]
    if not all(path):
        raise GraphrecError(f"--set '{text}': '{key}' is not a key path like train.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
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
    """Read a YAML mapping, with one-line errors for a missing file or bad syntax."""
    return _read_yaml_text(path)[0]


def _read_yaml_text(path: str | os.PathLike) -> tuple[dict, str]:
    """The YAML mapping of a file and its text."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            inside = sorted(p.name for p in path.glob("*.yaml"))[:4]
            hint = f"pass a .yaml file inside it ({', '.join(inside)})" if inside else "pass a .yaml file"
            raise GraphrecError(f"config file '{path}' is a folder, not a YAML file; {hint}")
        raise GraphrecError(f"config file '{path}' not found; check the path (e.g. experiments/quickstart.yaml)")
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem = f"{problem} ({context} that starts on line {context_mark.line + 1})"
        elif context and context not in problem:
            problem = f"{problem} ({context})"
        raise GraphrecError(f"{path}{line}: invalid YAML: {problem}; check the indentation and the "
                            "'key: value' syntax there") from None
    except UnicodeDecodeError:
        raise GraphrecError(f"{path}: not a text YAML file") from None
    except OSError as exc:
        raise GraphrecError(f"{path}: cannot read the config ({exc.strerror})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GraphrecError(f"{path}: the top level must be a mapping of sections (data:, model:, train:, ...), "
                            f"not a {type(data).__name__}")
    return data, text


def build_config(raw: dict, source: str = "", base_dir: str = ".", origin: Optional[Origin] = None) -> Config:
    """Validate a raw dict into a Config, including the model's own keys; raises GraphrecError."""
    origin = origin or Origin(source)
    if not isinstance(raw, dict):
        raise GraphrecError(f"{origin.where()}the config must be a mapping of sections (data:, model:, train:, ...)")
    try:
        cfg = Config(**{str(k): v for k, v in raw.items() if k != "base_dir"}, base_dir=base_dir)
    except ValidationError as err:
        raise GraphrecError(_one_line(err, Config, "", origin)) from None
    from .models import MODELS, model_config_class  # late import: models import config
    name = cfg.model.get("name", "lightgcn")
    if not isinstance(name, str) or name not in MODELS:
        try:
            model_config_class(str(name))
        except GraphrecError as err:
            raise GraphrecError(f"{origin.where(('model', 'name'))}{err}") from None
    model_cls = model_config_class(name)
    try:
        cfg.model = model_cls(**{str(k): v for k, v in cfg.model.items()}).model_dump()
    except ValidationError as err:
        raise GraphrecError(_one_line(err, model_cls, "model", origin, list(model_cls.model_fields),
                                      name)) from None
    _check_consistency(cfg, origin)
    return cfg


def _check_consistency(cfg: Config, origin: Origin) -> None:
    """Checks across keys that pydantic's per-field validation cannot express."""
    data, split, train = cfg.data, cfg.split, cfg.train
    if split.method in ("random", "temporal", "temporal_global") and split.valid_ratio + split.test_ratio >= 1:
        raise GraphrecError(f"{origin.where(('split', 'test_ratio'))}split.valid_ratio + split.test_ratio = "
                            f"{split.valid_ratio:g} + {split.test_ratio:g} leaves no training events; "
                            "make their sum less than 1 (e.g. valid_ratio: 0.1, test_ratio: 0.2)")
    computed = [f"{m}@{k}" for k in cfg.eval.topk for m in cfg.eval.metrics]
    if train.select_metric not in computed:
        name, _, k = train.select_metric.partition("@")
        fix = (f"add {k} to eval.topk" if name in cfg.eval.metrics and k.isdigit()
               else f"choose one of {', '.join(computed)}")
        raise GraphrecError(f"{origin.where(('train', 'select_metric'))}train.select_metric "
                            f"'{train.select_metric}' is not computed by eval.metrics x eval.topk; {fix}")
    roles = ["user", "item", "rating", "timestamp"]
    for role in data.columns:
        if role not in roles:
            raise GraphrecError(f"{origin.where(('data', 'columns', role))}unknown key 'data.columns.{role}'"
                                f"{suggest_key('data.columns', role, roles)}")
    if data.format == "csv" and not {"user", "item"} <= set(data.columns):
        example = "{user: 0, item: 1, rating: 2}" if not data.header else "{user: userId, item: movieId}"
        raise GraphrecError(f"{origin.where(('data', 'format'))}data.format csv needs data.columns naming the user "
                            f"and item columns, e.g. data.columns: {example} (column numbers with data.header: "
                            "false)")
    if data.format == "csv" and not data.header:
        for role, column in data.columns.items():
            if isinstance(column, str) and not column.strip().isdigit():
                raise GraphrecError(f"{origin.where(('data', 'columns', role))}data.header is false, so "
                                    f"data.columns.{role} must be a column number (0 = first), not {column!r}")
    for role, column in data.columns.items():
        if isinstance(column, int) and column < 0:
            raise GraphrecError(f"{origin.where(('data', 'columns', role))}data.columns.{role} is {column}; "
                                "column numbers start at 0")
    if data.delimiter is not None and (data.delimiter == "" or
                                       (data.format in ("csv", "atomic") and len(data.delimiter) != 1)):
        raise GraphrecError(f"{origin.where(('data', 'delimiter'))}data.delimiter must be one character for "
                            f"format {data.format} (e.g. ',' or '\\t'), not {data.delimiter!r}")
    if data.format != "synthetic" and data.path is None:
        raise GraphrecError(f"{origin.where(('data', 'format'))}data.format is {data.format} but data.path is "
                            "not set; add data.path (a folder or file, relative to the YAML or $GRAPHREC_DATA)")
    if data.format == "synthetic" and data.path is None and split.method == "given":
        raise GraphrecError(f"{origin.where(('split', 'method'))}synthetic data is one set of events, so it "
                            "needs split.method: random, loo, temporal or temporal_global")


def config_from_file(path: str | os.PathLike, overrides: list[str] | None = None,
                     base_dir: Optional[str] = None) -> Config:
    """Read a YAML experiment, apply `--set` overrides and validate it, pointing errors at lines or overrides."""
    raw, text = _read_yaml_text(path)
    raw = apply_overrides(raw, overrides or [])
    override_paths = {tuple(parse_override(o)[0]): o for o in overrides or []}
    origin = Origin(str(path), _key_lines(text), override_paths)
    return build_config(raw, source=str(path), base_dir=base_dir or str(Path(path).resolve().parent), origin=origin)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a YAML experiment, apply overrides and validate it."""
    return config_from_file(path, overrides)


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what config.yaml in a run folder holds)."""
    return cfg.model_dump(exclude={"base_dir"})


def resolve_data_path(cfg: Config) -> Optional[Path]:
    """data.path as: absolute; else relative to the YAML file or the working folder; else under $GRAPHREC_DATA
    (default ../shared/data)."""
    if cfg.data.path is None:
        return None
    path = Path(os.path.expanduser(cfg.data.path))
    candidates = [path] if path.is_absolute() else [Path(cfg.base_dir) / path, Path.cwd() / path]
    env = os.environ.get("GRAPHREC_DATA")
    data_root = Path(env) if env else Path.cwd().parent / "shared" / "data"
    if not path.is_absolute():
        candidates.append(data_root / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = ", ".join(dict.fromkeys(str(c.resolve()) for c in candidates))
    known = sorted(p.name for p in data_root.iterdir()) if data_root.is_dir() else []
    close = difflib.get_close_matches(str(path), known, n=1, cutoff=0.75)
    hint = (f"did you mean '{close[0]}'?" if close else
            "give a path relative to the YAML file, an absolute one, or a folder under $GRAPHREC_DATA"
            + ("" if env else " (GRAPHREC_DATA is not set)"))
    raise GraphrecError(f"data.path '{cfg.data.path}' not found (looked in {tried}); {hint}")
