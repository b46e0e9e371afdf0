"""The config schema: one pydantic section per block of an experiment YAML, every key with its one-line description.

docs/config.md is generated from these descriptions (graphrec.config_docs); a test fails when they drift.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import numpy as np
from pydantic.fields import FieldInfo
from pydantic import (AfterValidator, create_model, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo,
                      field_validator, model_validator)

TASKS = ("ranking", "regression", "classification")

# What the libraries downstream accept: ids, counts and sizes become int64 tensors and arrays; a seed goes to
# np.random.seed (at most 2**32 - 1) and torch.Generator.manual_seed (seed + 1 is used too, far inside its range).
INT64 = np.iinfo(np.int64)
FLOAT32 = np.finfo(np.float32)  # rates, weights and scales meet float32 parameters
# its bounds as Python floats: comparing a float to a numpy float32 casts it down, with an overflow warning
FLOAT32_TINY, FLOAT32_MAX = float(FLOAT32.smallest_subnormal), float(FLOAT32.max)
SEED_MAX = int(np.iinfo(np.uint32).max)
# A run folder is claimed as '.<name>-YYYYmmdd-HHMMSS-NNNN.partial': it must fit one file name (255 bytes).
RUN_NAME_MAX_BYTES = 255 - len(".-20260101-000000-9999.partial")
# Characters W&B refuses in a project or entity name (it raises on them only after the run folder exists).
WANDB_FORBIDDEN = "/\\#?%:"


def _seed_range(value: int) -> int:
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"a seed is within [0, {SEED_MAX}], the range numpy's and torch's generators both accept")
    return value


Seed = Annotated[int, AfterValidator(_seed_range)]


def all_or_count(value: Any, minimum: int) -> bool:
    """Whether a key's raw value is 'all' or a whole number (not a bool) of at least `minimum`."""
    return value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= minimum)


def _library_limits(value: Any) -> None:
    """Raise ValueError for an int outside int64, a float float32 cannot hold (it would overflow, or become 0), or a
    string holding a NUL byte, anywhere inside `value`."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT64.min <= value <= INT64.max:
        raise ValueError(f"{value} is outside the 64-bit integer range numpy and torch compute with "
                         f"([-2**63, 2**63 - 1])")
    if isinstance(value, float) and not (value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX):
        raise ValueError(f"{value:g} is outside the float32 range torch trains in (a magnitude between "
                         f"{FLOAT32_TINY:.1e} and {FLOAT32_MAX:.1e}, or 0)")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("the text holds a NUL byte (\\x00); remove it")
    if isinstance(value, (list, tuple)):
        for item in value:
            _library_limits(item)
    if isinstance(value, dict):
        for key, item in value.items():
            _library_limits(key)
            _library_limits(item)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked on assignment; floats are finite
    and fit float32, integers fit int64 and text holds no NUL byte, as numpy, torch and the file system require."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _within_library_limits(cls, value: Any, info: ValidationInfo) -> Any:
        if not (cls.__name__ == "Config" and info.field_name == "model"):  # the model's own section checks its keys
            _library_limits(value)
        return value


class SyntheticConfig(Section):
    """The seeded generator behind the quickstart (graphrec.data.synthetic)."""

    num_users: int = Field(2000, ge=2, description="users of the generated data")
    num_items: int = Field(1500, ge=2, description="items of the generated data")
    num_communities: int = Field(12, ge=1, description="planted communities (users prefer their community's items)")
    mean_degree: float = Field(25.0, gt=0, description="mean events per user")
    in_community: float = Field(0.8, ge=0, le=1, description="share of a user's events inside its community")
    popularity_exponent: float = Field(1.1, ge=0, description="power-law exponent of item popularity")
    seed: Seed = Field(7, description="generator seed (independent of the run's seed)")
    item_features: dict[str, int] = Field(default_factory=dict, description="modality -> dimension of item "
                                          "features drawn around a random centre per planted community, e.g. "
                                          "{text: 384, image: 4096} (none by default)")
    feature_noise: float = Field(1.0, ge=0, description="noise of the synthetic item features: within-community "
                                 "cosine about 1 / (1 + noise^2), across communities about 0")

    @field_validator("item_features")
    @classmethod
    def _positive_dims(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [name for name, dim in value.items() if dim < 1]
        if bad:
            raise ValueError(f"item_features.{bad[0]} is {value[bad[0]]}; give each modality a dimension >= 1")
        return value


class SyntheticFieldsConfig(Section):
    """Seeded feature-field rows with a planted FM (graphrec.data.synthetic.generate_field_rows), for tests and demos."""

    rows: int = Field(4000, ge=10, description="rows generated (then split by split.valid_ratio / test_ratio)")
    field_sizes: list[int] = Field(default_factory=lambda: [40, 60, 7, 3], min_length=2,
                                   description="number of feature values of each field (one feature per field a row)")
    rank: int = Field(4, ge=1, description="dimension of the planted FM's embeddings")
    labels: Literal["binary", "real"] = Field("binary", description="binary: labels 1 / -1 drawn from "
                                                                     "sigmoid(planted score); real: score + noise")
    noise: float = Field(0.1, ge=0, description="real labels: standard deviation of the Gaussian noise")
    seed: Seed = Field(7, description="generator seed (independent of the run's seed)")


class CsvFieldsConfig(Section):
    """Format csv_fields: which named CSV columns are fields and which is the label (graphrec.data.csv_fields)."""

    categorical: list[str] = Field(default_factory=list, description="columns whose values become features, one "
                                   "field each; the feature ids come from the values of the train file")
    numeric: list[str] = Field(default_factory=list, description="columns of numbers: one field each, holding one "
                               "feature whose value is the number")
    label: str = Field("label", description="the column of numeric labels (task classification: {-1, 1} or {0, 1})")
    unseen: Literal["unknown", "error"] = Field(
        "unknown", description="a categorical value that the train file lacks: the field's own unknown feature "
                               "(which no training row holds), or an error")


class DataConfig(Section):
    """Where the interactions come from and how they are read and filtered."""

    path: Optional[str] = Field(None, description="dataset folder or file; absolute, relative to the YAML or the "
                                                  "working folder, or under $GRAPHREC_DATA")
    format: Literal["synthetic", "lightgcn", "pairs", "atomic", "csv", "libfm", "csv_fields", "synthetic_fields",
                    "mmrec"] = Field(
        "synthetic", description="file format: synthetic, lightgcn (user item item ...), pairs, atomic (.inter), csv, "
                                 "mmrec (<folder>.inter with x_label 0/1/2 = train/valid/test, and image_feat.npy / "
                                 "text_feat.npy as the image and text item features when present); feature rows: "
                                 "libfm (label idx:val ...), csv_fields (named columns, data.csv_fields), "
                                 "synthetic_fields")
    files: dict[str, str] = Field(default_factory=dict, description="split name -> file, e.g. {train: train.txt, "
                                                                    "test: test.txt}, or {all: file} to split one file")
    columns: dict[str, str | int] = Field(default_factory=dict, description="csv/atomic columns {user, item, "
                                                                             "rating, timestamp}: names or numbers")
    delimiter: Optional[str] = Field(None, description="field separator (csv default ',', pairs whitespace)")
    header: bool = Field(True, description="csv: the first line holds column names")
    min_rating: Optional[float] = Field(None, description="keep events with rating >= this (implicit feedback)")
    positive_labels: Optional[list[float]] = Field(
        None, description="pairs: label values that mark a positive event (rows with other labels are dropped and "
                          "counted); unset: a label column holding anything but 1 is refused")
    kcore: int = Field(0, ge=0, description="iterative k-core filter on users and items (0 = off)")
    skip_bad_lines: bool = Field(False, description="skip (and report) malformed lines instead of stopping")
    fields: Optional[dict[str, list[int]]] = Field(None, description="libfm: {field: [first, last]} feature index "
                                                                     "ranges (default: one field per position)")
    item_features: dict[str, str] = Field(default_factory=dict, description="modality -> item feature file (.npy "
                                          "with its .ids.txt, or CSV keyed by raw item id), e.g. {text: "
                                          "feats/text.npy}; paths resolve like data.path")
    item_features_missing: Literal["zeros", "mean", "error"] = Field(
        "error", description="items without a row in a feature file: error, the mean row (the official IDSF "
                             "code's choice) or zeros")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig, description="the generator's keys")
    csv_fields: CsvFieldsConfig = Field(default_factory=CsvFieldsConfig,
                                        description="format csv_fields: the field and label columns")
    synthetic_fields: SyntheticFieldsConfig = Field(default_factory=SyntheticFieldsConfig,
                                                    description="format synthetic_fields: the generator's keys")


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
    seed: Optional[Seed] = Field(None, description="seed of the split (default: the run's seed)")


class ModelConfig(Section):
    """Keys every model has; a model adds its own by subclassing (see graphrec.models)."""

    name: str = Field("lightgcn", description="registered model name (graphrec models lists them)")
    embedding_dim: int = Field(64, ge=1, description="embedding size")
    init_std: float = Field(0.1, gt=0, description="normal(0, init_std) init of embedding tables (the one "
                                                   "documented init)")


class GroupConfig(Section):
    """Optimizer settings of one parameter group a model declares (unset keys take train's)."""

    lr: Optional[float] = Field(None, gt=0, description="learning rate of the group (default train.lr)")
    optimizer: Optional[Literal["adam", "adamw", "sgd"]] = Field(None, description="optimizer of the group "
                                                                                   "(default train.optimizer)")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay of the group's optimizer")


class TrainConfig(Section):
    """The training loop: batches, optimizers, early stopping, checkpoints."""

    epochs: int = Field(1000, ge=1, description="epochs at most (early stopping may end sooner)")
    batch_size: int = Field(2048, ge=1, description="events (pairwise) or rows (pointwise) per global batch")
    lr: float = Field(0.001, gt=0, description="learning rate")
    reg: float = Field(1e-4, ge=0, description="L2 weight: reg * 0.5 * sum of squared ego embeddings of the batch / "
                                               "batch_size (each of k negatives counts 1/k); owned by the model's loss")
    num_negatives: int = Field(1, ge=1, description="pairwise: negatives per positive; BPR averages over batch x k")
    negative_candidates: int = Field(1, ge=1, description="pairwise: dynamic negative sampling when > 1, each "
                                                          "negative the highest-scoring of this many uniform candidates")
    sampler: Literal["events", "users"] = Field(
        "events", description="pairwise: events (every training event once per epoch, shuffled) or users (as many "
                              "pairs, each user drawn uniformly among training users, then one of their positives: "
                              "the official LightGCN and IDSF sampler)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="adam (fused kernel), adamw, sgd")
    groups: dict[str, GroupConfig] = Field(default_factory=dict, description="per parameter group of the model: "
                                                                             "{name: {lr, optimizer, weight_decay}}")
    lr_schedule: Literal["constant", "cosine", "step", "exponential"] = Field(
        "constant", description="per-epoch learning rate: constant, cosine (lr to lr_min over epochs), step, "
                                "exponential (lr * lr_gamma^epoch; IDSF: lr_gamma 0.96^(1/50) = 0.999184); "
                                "every group's schedule counts the run's epochs, stages it sat out included")
    lr_min: float = Field(0.0, ge=0, description="cosine schedule's final learning rate")
    lr_schedule_epochs: Optional[int] = Field(None, ge=1, description="cosine schedule's length in epochs (none: "
                                              "train.epochs); a refit run keeps its selection run's length, so "
                                              "its rates are the selection run's up to the selected epoch")
    lr_milestones: list[int] = Field(default_factory=list, description="step schedule: epochs (0-based) from which "
                                                                       "the rate is multiplied by lr_gamma")
    lr_gamma: float = Field(0.1, gt=0, description="step schedule's factor at each milestone; exponential "
                                                    "schedule's factor per epoch")
    eval_every: int = Field(1, ge=1, description="validate every N epochs")
    patience: int = Field(10, ge=0, description="early stop after N validations without improvement (0 = never)")
    select_metric: Optional[str] = Field(None, description="validation metric that selects the checkpoint "
                                                           "(default: the task's, recall@20 / rmse / auc)")
    grad_clip: Optional[float] = Field(None, gt=0, description="max gradient norm (none = no clipping)")
    max_batches: Optional[int] = Field(None, ge=1, description="cap on batches per epoch (smoke tests)")
    threads: Optional[int] = Field(None, ge=1, description="CPU threads (default: torch's)")
    distributed: Literal["none", "data", "partitioned"] = Field(
        "data", description="under torchrun: data (each rank holds the whole graph and trains a share of every "
                            "batch, DDP), partitioned (each rank holds 1/N of the graph's rows and their embedding "
                            "rows and exchanges boundary rows per layer; lightgcn only), none (refuse torchrun); "
                            "docs/distributed.md")
    partitioner: Literal["label_propagation", "ranges"] = Field(
        "label_propagation", description="partitioned: which rank owns each node; ranges (contiguous id ranges with "
                                         "equal edge counts) or label_propagation (from those ranges, nodes move to "
                                         "the rank holding most of their neighbours while every rank stays within "
                                         "5% of equal edges: fewer boundary rows on graphs with locality)")
    progress: Literal[True, False, "auto"] = Field(
        "auto", description="tqdm progress bar per epoch: auto (only while stderr is a terminal, so never in a log "
                            "file), true (always, e.g. in a notebook), false")


class EvalConfig(Section):
    """Evaluation: full ranking with metrics at several K in one pass, or pointwise metrics."""

    topk: list[int] = Field(default_factory=lambda: [10, 20], description="ranking: every K computed in one pass")
    metrics: list[str] = Field(default_factory=lambda: ["recall", "ndcg", "precision", "hit", "mrr"],
                               description="ranking: recall, ndcg, precision, hit, mrr (per-user means), coverage "
                                           "(distinct items in all top-K lists / items), arp (mean train popularity "
                                           "of top-K items), recall/ndcg_head|mid|tail (only the group's relevant "
                                           "items and hits); regression: rmse, mae; classification: auc, logloss")
    head_share: float = Field(0.2, gt=0, lt=1, description="ranking: the most popular share of items (by train "
                              "events) that forms the head group")
    tail_share: float = Field(0.5, gt=0, lt=1, description="ranking: the least popular share of items that forms "
                              "the tail group; the items between head and tail are mid")
    max_score_elements: int = Field(2 ** 25, ge=1, description="at most this many user x item scores held at once")
    users: Optional[int] = Field(None, ge=1, description="ranking: evaluate a seeded sample of this many users per "
                                 "split (seed: the run's seed) and report each per-user metric with its 95% interval "
                                 "half-width <metric>_ci95 (normal approximation, finite-population corrected); "
                                 "coverage is computed on the sample, without an interval; default: every user")

    @field_validator("topk")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError("every K must be >= 1")
        return sorted(set(value))

    @field_validator("metrics")
    @classmethod
    def _some_metric(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one metric")
        return value

    @model_validator(mode="after")
    def _groups_fit(self) -> "EvalConfig":
        if self.head_share + self.tail_share > 1:
            raise ValueError(f"eval.head_share + eval.tail_share = {self.head_share:g} + {self.tail_share:g} is "
                             "above 1; make head and tail disjoint (e.g. 0.2 and 0.5)")
        return self


class DROConfig(Section):
    """Distributionally robust (KL) reweighting of a pairwise model's per-sample losses (docs/ood-models.md)."""

    enabled: bool = Field(False, description="minimise the worst-case reweighted loss sum_i w_i l_i, w = softmax(l / "
                                             "temperature), instead of the mean (default: the model's; on for drgo)")
    temperature: float = Field(1.0, gt=0, description="tau of the KL penalty: large is the plain mean, small puts the "
                                                      "weight on the worst samples (groups)")
    groups: Literal["sample", "popularity", "user_cluster"] = Field(
        "sample", description="what is reweighted: each sample, item-popularity quantile groups of the positive, or "
                              "K-means clusters of users (SVD of the training matrix; DRGO's groups)")
    num_groups: int = Field(5, ge=1, description="groups for popularity / user_cluster")


class TrackingConfig(Section):
    """Where metrics go besides log.jsonl: W&B online, offline or disabled."""

    mode: Literal["disabled", "offline", "online"] = Field("disabled", description="W&B mode (WANDB_MODE overrides)")
    project: str = Field("graphrec", description="W&B project")
    entity: Optional[str] = Field(None, description="W&B entity (team or user)")

    @field_validator("project", "entity")
    @classmethod
    def _wandb_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.strip() or len(value) > 128 or any(c in value for c in WANDB_FORBIDDEN)):
            raise ValueError(f"W&B names are 1-128 characters without any of {' '.join(WANDB_FORBIDDEN)}")
        return value


class Config(Section):
    """A whole experiment."""

    name: str = Field("run", description="run folder prefix: <output_dir>/<name>-<time>/")
    seed: Seed = Field(2020, description="seeds python, numpy, torch, the sampler and (unless split.seed) the split")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (CUDA if present), cpu, cuda")
    output_dir: str = Field("runs", description="where run folders go (relative to the working folder)")
    protocol: Literal["validation", "refit", "leaky"] = Field(
        "validation", description="validation: select the checkpoint on valid, read tests once at it; refit: train on "
                                  "train + valid for train.epochs (chosen on valid), read tests once at the end; "
                                  "leaky: the official code of several papers (test edges in the propagation graph, "
                                  "training items not masked, checkpoint selected on test_ood, else test), only to "
                                  "show an inflated number beside the honest one")
    task: Optional[Literal["ranking", "regression", "classification"]] = Field(
        None, description="ranking, regression or classification (default: the model's first task)")
    data: DataConfig = Field(default_factory=DataConfig, description="the dataset")
    split: SplitConfig = Field(default_factory=SplitConfig, description="how splits are made")
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "lightgcn"}, description="the model and its keys")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the training loop")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    dro: DROConfig = Field(default_factory=DROConfig, description="distributionally robust reweighting of per-sample "
                                                                  "losses (pairwise models)")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="experiment tracking")
    base_dir: str = Field(".", exclude=True)
    _origin: Any = PrivateAttr(default=None)  # graphrec.hints.Origin of the keys, set by build_config

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not value.strip() or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("name becomes the run folder's name: use a non-empty name without '/'")
        if len(value.encode("utf-8", "surrogatepass")) > RUN_NAME_MAX_BYTES:
            raise ValueError(f"name becomes the run folder's name: use at most {RUN_NAME_MAX_BYTES} bytes")
        return value


def default_of(cls: type[BaseModel], name: str, default: Any, **changes: Any) -> FieldInfo:
    """`cls`'s field `name` (type, bounds, description) with another default: a model's official value."""
    return FieldInfo.merge_field_infos(cls.model_fields[name], default=default, **changes)


def with_defaults(cls: type[BaseModel], name: str, **defaults: Any) -> type[BaseModel]:
    """A subclass of section `cls` whose fields take other defaults, so that a partial block (one key set in YAML or
    --set) keeps the rest of a model's defaults."""
    fields = {key: (cls.model_fields[key].annotation, default_of(cls, key, value)) for key, value in defaults.items()}
    return create_model(name, __base__=cls, __doc__=cls.__doc__, **fields)


def section_classes(cls: type[BaseModel] = Config, prefix: str = "") -> dict[str, type[BaseModel]]:
    """Every section path ('' for the top level, 'data.synthetic', ...) -> its pydantic class."""
    out = {prefix: cls}
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(section_classes(ann, f"{prefix}.{name}" if prefix else name))
    return out
