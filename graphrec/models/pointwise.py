"""Base of pointwise models (FM family): predict a score per feature row, trained on the task's loss."""
from __future__ import annotations

from typing import ClassVar

import torch

from ..batches import PointBatch
from ..losses import pointwise_loss
from .base import Model


class PointwiseModel(Model):
    """Feature rows in, one raw prediction per row out (a logit for classification); subclasses define predict()."""

    batch_kind: ClassVar[str] = "pointwise"
    tasks: ClassVar[tuple[str, ...]] = ("regression", "classification")

    def predict(self, batch: PointBatch) -> torch.Tensor:
        """(b,) raw predictions of the batch's rows."""
        raise NotImplementedError

    def regularization(self, batch: PointBatch) -> torch.Tensor:  # noqa: ARG002
        """Scalar L2 term of the batch (weighted by train.reg); default none."""
        return torch.zeros(())

    def loss(self, batch: PointBatch) -> dict[str, torch.Tensor]:
        """Mean task loss (squared error or logistic) + reg * the model's L2 term."""
        task_loss = pointwise_loss(self.predict(batch), batch.label, self.task).mean()
        l2 = self.regularization(batch)
        return {"loss": task_loss + self.reg * l2, self.task: task_loss, "l2": l2}
