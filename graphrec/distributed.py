"""Training under torchrun: gloo on CPU, NCCL on GPU; a no-op context for a single process.

train.distributed: data (DDP) or partitioned (graph rows split over ranks: graphrec/graph/partitioned.py; no DDP,
each rank's loss scaled by its share b_r / B and the exchanges' backward adding the ranks' gradients at each row's
owner). What data sharding does (see docs/distributed.md): every rank walks the same seeded global permutation and
takes every world_size-th event of each global batch; the trainer scales each rank's loss by its share so that DDP's
gradient average is exactly the gradient of the global batch's mean loss; evaluation users are split across ranks
and the metric sums added up. Only rank 0 writes files; decisions that end or redirect the run are agreed on all ranks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist
from torch.distributed.elastic.utils.store import barrier as store_barrier

from .errors import GraphrecError
from .evaluation import EvalResult


@dataclass
class DistContext:
    """Rank, world size and device of this process; helpers that are identity maps when world_size == 1."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    is_cuda: bool = False
    mode: str = "data"  # train.distributed
    user_owner: Optional[torch.Tensor] = None  # partitioned: (num_users,) rank that holds each user's rows

    @property
    def distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.is_cuda else torch.device("cpu")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model wrapped in DistributedDataParallel when distributed, else the model itself.

        DDP broadcasts rank 0's parameters at construction, so wrap after loading a checkpoint.
        """
        if not self.distributed or self.mode != "data" or not any(p.requires_grad for p in model.parameters()):
            return model  # (a model without parameters, MostPop, has nothing for DDP to average)
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.is_cuda else None)

    def clip_grad_norm(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Clip gradients to a total norm of max_norm; returns the pre-clip norm. Partitioned ranks hold disjoint
        gradient rows (zero elsewhere), so their squared norms are added up first."""
        if not (self.distributed and self.mode == "partitioned"):
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        squared = norm.pow(2).to(self._comm_device)
        dist.all_reduce(squared)
        norm = squared.sqrt().to(norm.device)
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return norm

    def shard(self, users: torch.Tensor) -> torch.Tensor:
        """This rank's share of the users to evaluate: every world_size-th one, or under a partition the users whose
        rows it holds (so their final embeddings need no exchange)."""
        if not self.distributed:
            return users
        if self.user_owner is not None:
            return users[self.user_owner[users.to(self.user_owner.device)].to(users.device) == self.rank]
        return users[self.rank::self.world_size]

    def sum_result(self, result: EvalResult) -> EvalResult:
        """Metric sums and user counts added up over all ranks (float64; every rank gets the same bytes)."""
        if not self.distributed:
            return result
        packed = result.packed().to(self._comm_device)  # laid out in the same order on every rank
        dist.all_reduce(packed)
        return result.from_packed(packed.cpu())

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks of a list of floats (float64)."""
        if not self.distributed or not values:
            return list(values)
        packed = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(packed)
        return packed.tolist()

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag OR-ed over all ranks, so that every rank takes the same branch (one small all_reduce)."""
        if not self.distributed:
            return tuple(bool(f) for f in flags)
        packed = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32, device=self._comm_device)
        dist.all_reduce(packed, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in packed.tolist())

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (picklable objects only)."""
        if not self.distributed:
            return obj
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self._comm_device if self.is_cuda else None)
        return box[0]

    def gather_object(self, obj: Any) -> list:
        """[rank 0's obj, rank 1's obj, ...] on every rank (picklable objects only)."""
        if not self.distributed:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Overwrite every rank's parameters and buffers with rank 0's, in place."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed and dist.is_initialized():
            dist.barrier()

    def close(self, together: bool = False) -> None:
        """Leave the process group; `together` (every rank is closing here): first wait for all, since a gloo rank
        that tears down its connections while a peer still uses them aborts that peer's process."""
        if not (self.distributed and dist.is_initialized()):
            return
        if together:
            self.barrier()
            # A rank leaves gloo's barrier once it has heard from the others, possibly before its own last message
            # has left; a second wait through the rendezvous store (no gloo traffic) closes that window.
            store_barrier(dist.distributed_c10d._get_default_store(), self.world_size, "graphrec/close")
        dist.destroy_process_group()


def launch_world_size(mode: str) -> int:
    """The number of processes torchrun started (1 without torchrun), checked against train.distributed."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if mode == "none" and world_size > 1:
        raise GraphrecError(f"train.distributed: none, but torchrun started {world_size} processes; set "
                            "train.distributed: data or partitioned, or start one process (graphrec train)")
    if mode == "partitioned" and world_size < 2:
        raise GraphrecError("train.distributed: partitioned needs at least 2 processes started by torchrun (RANK / "
                            "WORLD_SIZE are not set); run torchrun --nproc_per_node=N -m graphrec train ..., or set "
                            "train.distributed: none")
    return world_size


def launch_rank() -> int:
    """This process's rank among those torchrun started (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def init_from_env(mode: str = "data") -> DistContext:
    """Join the process group torchrun describes in RANK / WORLD_SIZE, or a single-process context."""
    world_size = launch_world_size(mode)
    if world_size <= 1:
        return DistContext(mode=mode)
    rank, local_rank = launch_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return DistContext(rank, world_size, device, use_cuda, mode)
