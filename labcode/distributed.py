"""Data-parallel training with torch.distributed: the few pieces the training loop needs.

`torchrun --nproc_per_node N` starts N copies of the same script and tells each one who it is
through environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
Each copy (a "rank") holds a full model. Every step:

1. all ranks draw the same global batch (same seed, same order) and each keeps its own slice;
2. each rank runs forward and backward on its slice;
3. DistributedDataParallel averages the gradients across ranks during backward (all-reduce);
4. each rank applies the same optimizer step to the same weights, so the copies stay equal.

Averaging the gradients of equal slices is the gradient of the mean loss over the whole batch,
so N ranks with a batch of B do exactly what one process with a batch of B would do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


@dataclass(frozen=True)
class DistInfo:
    """Who this process is: its rank among `world_size` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and prints; the others stay quiet."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment says we are one of several processes (torchrun sets these)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    gloo works on CPU tensors, NCCL on CUDA tensors. With no torchrun environment this is a
    no-op returning rank 0 of 1, so the same script runs alone or data-parallel.
    """
    if dist.is_available() and dist.is_initialized():
        return dist_info()
    if not launched_by_torchrun():
        return DistInfo()
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    info = dist_info()
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


def setup_distributed(device: str | torch.device = "cpu") -> tuple[torch.device, DistInfo]:
    """`init_distributed`, then the device this rank computes on (its own GPU under torchrun)."""
    device = torch.device(device)
    info = init_distributed(device)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", info.local_rank)  # one GPU per rank
    return device, info


def data_parallel(model: torch.nn.Module, device: torch.device, info: DistInfo) -> torch.nn.Module:
    """Wrap `model` in DistributedDataParallel when there are several ranks, else return it.

    DDP copies rank 0's weights to every rank, then averages gradients during backward.
    """
    if info.world_size == 1:
        return model
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def dist_info() -> DistInfo:
    """This process's rank and the world size (0 of 1 when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
    )


def shard_batch(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous slice of a global batch: rows [rank*b, (rank+1)*b) of B = world*b."""
    if info.world_size == 1:
        return tensor
    batch_size = tensor.shape[0]
    if batch_size % info.world_size:
        raise ValueError(
            f"batch size {batch_size} must be divisible by the number of processes "
            f"({info.world_size}) so every rank gets an equal slice"
        )
    per_rank = batch_size // info.world_size
    return tensor[info.rank * per_rank : (info.rank + 1) * per_rank]


def mean_across_ranks(value: float, info: DistInfo) -> float:
    """Average a Python number over all ranks (each rank's loss is for its slice only)."""
    if info.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every rank (e.g. until rank 0 has finished writing a checkpoint)."""
    if info.world_size > 1:
        dist.barrier()


def cleanup_distributed() -> None:
    """Leave the process group, if we joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
