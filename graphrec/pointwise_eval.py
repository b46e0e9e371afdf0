"""Evaluation of pointwise models: RMSE / MAE (regression) and AUC / logloss (classification) over feature rows."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .batches import PointBatch
from .data.fields import FieldRows
from .evaluation import EvalResult


def regression_metrics(pred: np.ndarray, label: np.ndarray, low: float, high: float) -> dict[str, float]:
    """RMSE and MAE of (n,) predictions clipped to [low, high] (NFM clips to the label range) against (n,) labels."""
    err = np.clip(pred, low, high) - label
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}


def classification_metrics(logit: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """AUC (Mann-Whitney with tied scores sharing their mean rank) and mean logloss of (n,) logits vs {0, 1} labels."""
    from scipy.stats import rankdata  # scipy.stats costs ~1 s to import: only where AUC is computed

    positives = label > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    ranks = rankdata(logit)
    auc = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg) if n_pos and n_neg else float("nan")
    logloss = np.mean(np.logaddexp(0.0, logit) - label * logit)  # -log sigmoid(+-logit), stable
    return {"auc": float(auc), "logloss": float(logloss)}


class PointwiseEvaluator:
    """Predicts every row of one split in chunks and computes the task's metrics over all of them."""

    shardable = False  # AUC is not a sum over rows: every rank evaluates all rows
    unit = "rows"
    preparation_key = None  # one prepared model serves every split

    def __init__(self, rows: FieldRows, label: np.ndarray, task: str, metrics: Sequence[str], chunk_rows: int,
                 label_range: tuple[float, float], device: torch.device | str = "cpu"):
        self.task, self.metrics, self.chunk_rows, self.label_range = task, list(metrics), chunk_rows, label_range
        self.label = label
        self.features = torch.from_numpy(rows.features).to(device)
        self.values = torch.from_numpy(rows.values).to(device)

    def prepare(self, model):
        """What evaluate() takes: the model itself (it predicts rows)."""
        return model

    @torch.no_grad()
    def evaluate(self, model, users=None) -> EvalResult:  # noqa: ARG002 - same call as the ranking evaluator
        """The task's metrics over every row as EvalResult sums (metric x rows), so means() gives the metrics."""
        preds = []
        for start in range(0, len(self.label), self.chunk_rows):
            part = slice(start, start + self.chunk_rows)
            preds.append(model.predict(PointBatch(self.features[part], self.values[part], None)).float().cpu())
        pred = torch.cat(preds).numpy() if preds else np.zeros(0, np.float32)
        values = (classification_metrics(pred, self.label) if self.task == "classification"
                  else regression_metrics(pred, self.label, *self.label_range))
        n = len(self.label)
        return EvalResult({m: values[m] * n for m in self.metrics}, n)
