"""Data-parallel training under torchrun: gloo on CPU, NCCL on GPU; a no-op context for a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .evaluation import EvalResult


@dataclass
class DistContext:
    """Rank, world size and device of this process; helpers that are identity maps when world_size == 1."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    is_cuda: bool = False

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model wrapped in DistributedDataParallel when distributed, else the model itself."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.is_cuda else None)

    def shard(self, users: torch.Tensor) -> torch.Tensor:
        """This rank's share of the users to evaluate (every world_size-th one)."""
        return users if self.world_size == 1 else users[self.rank::self.world_size]

    def sum_result(self, result: EvalResult) -> EvalResult:
        """Metric sums and user counts added up over all ranks."""
        if self.world_size == 1:
            return result
        keys = sorted(result.sums)
        device = self.device if self.is_cuda else torch.device("cpu")
        packed = torch.tensor([result.sums[k] for k in keys] + [result.num_users], dtype=torch.float64,
                              device=device)
        dist.all_reduce(packed)
        return EvalResult({k: float(v) for k, v in zip(keys, packed[:-1].tolist())}, int(packed[-1]))

    def close(self) -> None:
        """Leave the process group."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env() -> DistContext:
    """Join the process group torchrun describes in RANK / WORLD_SIZE, or a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return DistContext(rank, world_size, device, use_cuda)
