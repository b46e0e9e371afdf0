"""train.lr_schedule: exponential multiplies the rate by lr_gamma at each epoch end (IDSF's 0.96^(epoch/50))."""
import pytest
import torch

from graphrec.optim import build_scheduler
from graphrec.schema import TrainConfig


def test_exponential_schedule_is_idsfs_lambda_lr():
    train = TrainConfig(lr=5e-4, lr_schedule="exponential", lr_gamma=0.96 ** (1 / 50))
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    scheduler = build_scheduler(train, optimizer)
    rates = []
    for _ in range(101):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 5e-4 and rates[50] == pytest.approx(5e-4 * 0.96) and rates[100] == pytest.approx(5e-4 * 0.96 ** 2)
