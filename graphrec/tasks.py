"""Tasks: ranking, regression, classification — their metrics, selection rule and evaluators."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data.dataset import Dataset
from .data.fields import labels_for_task
from .errors import GraphrecError
from .hints import blame
from .evaluation import Evaluator
from .metric_names import CLASSIFICATION_METRICS, RANKING_METRICS, REGRESSION_METRICS
from .pointwise_eval import PointwiseEvaluator
from .schema import Config


@dataclass(frozen=True)
class Task:
    """A task's metric names, the metric that selects by default, and which metrics are better when lower."""

    name: str
    metrics: tuple[str, ...]
    default_select: str
    lower_is_better: frozenset[str] = frozenset()
    at_k: bool = False  # metrics are computed at each K of eval.topk


TASKS = {
    "ranking": Task("ranking", RANKING_METRICS, "recall@20", at_k=True),
    "regression": Task("regression", REGRESSION_METRICS, "rmse", frozenset({"rmse", "mae"})),
    "classification": Task("classification", CLASSIFICATION_METRICS, "auc", frozenset({"logloss"})),
}


def metric_keys(cfg: Config) -> list[str]:
    """The metric names a run computes per split: 'recall@20', ... (ranking) or 'rmse', ... (pointwise)."""
    if TASKS[cfg.task or "ranking"].at_k:
        return [f"{m}@{k}" for k in cfg.eval.topk for m in cfg.eval.metrics]
    return list(cfg.eval.metrics)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of the metric (e.g. 'rmse', 'valid/logloss') is better."""
    name = metric.rsplit("/", 1)[-1].split("@")[0]
    return any(name in task.lower_is_better for task in TASKS.values())


def check_task(cfg: Config, model_cls, origin) -> None:
    """Resolve task, eval.metrics and train.select_metric for the model; one-line errors where they do not fit."""
    if cfg.task is None:
        cfg.task = model_cls.tasks[0]
    elif cfg.task not in model_cls.tasks:
        raise GraphrecError(f"{origin.where(('task',), ('model', 'name'))}model {model_cls.registry_name} does "
                            f"not support task {cfg.task}; its tasks: {', '.join(model_cls.tasks)}")
    task = TASKS[cfg.task]
    if "metrics" not in cfg.eval.model_fields_set and not task.at_k:
        cfg.eval.metrics = list(task.metrics)
    for index, metric in enumerate(cfg.eval.metrics):
        if metric not in task.metrics:
            owner = next((t.name for t in TASKS.values() if metric in t.metrics), None)
            why = f"'{metric}' is a {owner} metric" if owner else f"unknown metric '{metric}'"
            where = origin.where(("eval", "metrics", index), ("task",), ("model", "name"))
            raise GraphrecError(f"{where}eval.metrics: {why}, but the task is {task.name}; choose from "
                                f"{', '.join(task.metrics)}")
    computed = metric_keys(cfg)
    if cfg.train.select_metric is None:
        default = task.default_select
        if task.at_k and default not in computed:
            default = f"{task.default_select.split('@')[0]}@{max(cfg.eval.topk)}"
        cfg.train.select_metric = default if default in computed else computed[0]
    if cfg.train.select_metric not in computed:
        name, _, k = cfg.train.select_metric.partition("@")
        fix = (f"add {k} to eval.topk" if name in cfg.eval.metrics and k.isdigit()
               else f"choose one of {', '.join(computed)}")
        where = origin.where(("train", "select_metric"), ("eval",), ("task",), ("model", "name"))
        raise GraphrecError(f"{where}train.select_metric '{cfg.train.select_metric}' is not computed by the "
                            f"{task.name} task's eval.metrics{' x eval.topk' if task.at_k else ''}; {fix}")
    if cfg.train.sampler == "users" and model_cls.batch_kind != "pairwise":
        raise GraphrecError(f"{origin.where(('train', 'sampler'), ('model', 'name'))}train.sampler: users draws "
                            f"(user, positive) pairs, but model {model_cls.registry_name} trains on "
                            f"{model_cls.batch_kind} batches; remove train.sampler")
    if cfg.protocol == "leaky" and not task.at_k:
        raise GraphrecError(f"{origin.where(('protocol',), ('task',), ('model', 'name'))}protocol: leaky imitates "
                            f"ranking code (test edges in the graph, no masking, selection on test), but the task is "
                            f"{task.name}; use protocol: validation")


def build_evaluators(dataset: Dataset, cfg: Config, device: torch.device) -> dict:
    """One evaluator per evaluable split ('valid' first), ranking or pointwise by the config's task."""
    if TASKS[cfg.task or "ranking"].at_k:
        if cfg.eval.max_score_elements < dataset.num_items:
            raise GraphrecError(f"{blame(cfg, ('eval', 'max_score_elements'))}eval.max_score_elements "
                                f"{cfg.eval.max_score_elements} is below one user's row of scores ({dataset.num_items} "
                                f"items); raise it to at least {dataset.num_items}")
        evaluators = {name: Evaluator(dataset, name, cfg.eval.topk, cfg.eval.metrics, cfg.eval.max_score_elements,
                                      device, head_share=cfg.eval.head_share, tail_share=cfg.eval.tail_share,
                                      sample_users=cfg.eval.users, seed=cfg.seed,
                                      leaky=cfg.protocol == "leaky")
                      for name in dataset.eval_splits()}
        for name, evaluator in evaluators.items():
            if not len(evaluator.users):
                _no_users(dataset, cfg, name)
        _check_sample_size(cfg, evaluators)
        return evaluators
    if cfg.eval.users is not None:
        raise GraphrecError(f"{blame(cfg, ('eval', 'users'))}eval.users samples users of a ranking evaluation, but the "
                            f"task is {cfg.task}; remove eval.users")
    if dataset.fields is None:
        raise GraphrecError(f"task {cfg.task} needs feature rows (data.format libfm, csv_fields or synthetic_fields), "
                            f"but dataset {dataset.name} has interactions only")
    train_label = dataset.fields.rows["train"].label
    label_range = (float(train_label.min(initial=0.0)), float(train_label.max(initial=1.0)))
    chunk = max(1, cfg.eval.max_score_elements // 64)
    return {name: PointwiseEvaluator(rows, labels_for_task(rows.label, cfg.task, f"{dataset.name} {name}"), cfg.task,
                                     cfg.eval.metrics, chunk, label_range, device)
            for name, rows in dataset.fields.rows.items() if name != "train"}


def _check_sample_size(cfg: Config, evaluators: dict) -> None:
    """One-line error when eval.users asks for more users than any split has to evaluate."""
    if cfg.eval.users is None:
        return
    counts = {name: evaluator.population for name, evaluator in evaluators.items()}
    largest = max(counts.values())
    if cfg.eval.users > largest:
        have = ", ".join(f"{n} in '{name}'" for name, n in counts.items())
        raise GraphrecError(f"{blame(cfg, ('eval', 'users'))}eval.users {cfg.eval.users} is more than the users with "
                            f"held-out items and training events: {have}; set eval.users to at most {largest}, or "
                            "remove it to evaluate every user")


def _no_users(dataset: Dataset, cfg: Config, split: str) -> None:
    """Raise the one-line error for a split without any user to evaluate (metrics over nobody are not 0.0)."""
    events = dataset.eval_splits()[split]
    why = ("it holds no event" if not len(events) else
           f"none of its {len(np.unique(events.user))} user(s) has training events")
    ratio = "valid_ratio" if split == "valid" else "test_ratio"
    fix = (f"check data.files.{split}: its users must also be in the training file" if "all" not in cfg.data.files
           and cfg.split.method == "given" else f"raise split.{ratio}, or use data with more events per user")
    raise GraphrecError(f"{blame(cfg, ('split', ratio))}split '{split}' has no user to evaluate: {why}; {fix}")


def point_labels(dataset: Dataset, task: str) -> np.ndarray:
    """(n,) training labels as the task reads them."""
    return labels_for_task(dataset.fields.rows["train"].label, task, f"{dataset.name} train")
