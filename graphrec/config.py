"""YAML -> typed, validated config: defaults < file < `--set a.b=c` overrides, one-line errors with did-you-mean."""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    """How train/valid/test are made when the files do not give them."""

    method: Literal["given", "random", "loo", "temporal", "temporal_global"] = "given"
    valid_ratio: float = Field(0.1, ge=0, lt=1)
    test_ratio: float = Field(0.2, ge=0, lt=1)
    seed: Optional[int] = None


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
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    eval_every: int = Field(1, ge=1)
    patience: int = Field(10, ge=0)
    select_metric: str = "recall@20"
    grad_clip: Optional[float] = Field(None, gt=0)
    max_batches: Optional[int] = Field(None, ge=1)
    threads: Optional[int] = Field(None, ge=1)
    progress: bool = True


class EvalConfig(Section):
    """Full-ranking evaluation: metrics at several K in one pass, a bound on the score matrix held at once."""

    topk: list[int] = Field(default_factory=lambda: [10, 20])
    metrics: list[Literal["recall", "ndcg", "precision", "hit", "mrr"]] = Field(
        default_factory=lambda: ["recall", "ndcg", "precision", "hit", "mrr"])
    max_score_elements: int = Field(2 ** 25, ge=1)

    @field_validator("topk")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError("every K must be >= 1")
        return sorted(set(value))


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


def _section_fields(cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at `loc` (a path of keys) inside `cls`."""
    for key in loc[:-1]:
        field = cls.model_fields.get(str(key))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        cls = ann
    return [name for name in cls.model_fields if name != "base_dir"]


def _one_line(err: ValidationError, cls: type[BaseModel], prefix: str, source: str) -> str:
    """Turn the first pydantic error into one line naming the key and the fix."""
    first = err.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    key = ".".join((prefix,) + loc if prefix else loc)
    where = f"{source}: " if source else ""
    if first["type"] == "extra_forbidden":
        known = _section_fields(cls, loc)
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f", did you mean '{'.'.join(key.split('.')[:-1] + [close[0]])}'?" if close else \
            f"; known keys here: {', '.join(known)}"
        return f"{where}unknown key '{key}'{hint}"
    got = first.get("input")
    msg = first["msg"].replace("Input should be", "expected").replace("Value error, ", "")
    return f"{where}bad value for '{key}': {msg} (got {got!r})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split 'a.b=c' into (['a', 'b'], YAML-parsed c)."""
    if "=" not in text:
        raise GraphrecError(f"--set '{text}' is not of the form key.path=value, e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


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
    path = Path(path)
    if not path.is_file():
        hint = " (it is a folder: pass the .yaml file inside it)" if path.is_dir() else ""
        raise GraphrecError(f"config file '{path}' not found{hint}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphrecError(f"{path}{line}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise GraphrecError(f"{path}: not a text YAML file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GraphrecError(f"{path}: the top level must be a mapping of sections (data:, model:, train:, ...)")
    return data


def build_config(raw: dict, source: str = "", base_dir: str = ".") -> Config:
    """Validate a raw dict into a Config, including the model's own keys; raises GraphrecError."""
    try:
        cfg = Config(**{k: v for k, v in raw.items() if k != "base_dir"}, base_dir=base_dir)
    except ValidationError as err:
        raise GraphrecError(_one_line(err, Config, "", source)) from None
    except TypeError as err:
        raise GraphrecError(f"{source}: {err}") from None
    from .models import model_config_class  # late import: models import config
    model_cls = model_config_class(cfg.model.get("name", "lightgcn"), source)
    try:
        cfg.model = model_cls(**cfg.model).model_dump()
    except ValidationError as err:
        raise GraphrecError(_one_line(err, model_cls, "model", source)) from None
    return cfg


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a YAML experiment, apply overrides and validate it."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    return build_config(raw, source=str(path), base_dir=str(Path(path).resolve().parent))


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
    if not path.is_absolute():
        candidates.append(Path(env or Path.cwd().parent / "shared" / "data") / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    hint = "" if env else " (or set GRAPHREC_DATA to the folder that holds your datasets)"
    raise GraphrecError(f"data.path '{cfg.data.path}' not found; looked in {tried}{hint}")
