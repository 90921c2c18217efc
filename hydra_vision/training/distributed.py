"""Process group setup for CPU, one GPU, and `torchrun` (DDP, single or multi node).

timm's `init_distributed_device_so` reads torchrun's / SLURM's environment and starts the NCCL
(GPU) or gloo (CPU) group. A second, gloo, group carries small host-side messages (the stop
flag, RNG states) without a GPU synchronisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from timm.utils.distributed import init_distributed_device_so

__all__ = ["DistContext", "setup_distributed", "teardown_distributed"]


@dataclass
class DistContext:
    """Where this process runs: its device and its place among `world_size` processes."""

    device: torch.device
    distributed: bool = False
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    host_group: Any = None

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of `tensor` over all processes (in place; identity without a process group)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on at least one (host-side, no GPU sync)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.host_group)
        return bool(value.item())

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every process, indexed by rank (picklable objects, host-side)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.host_group)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.host_group)


def setup_distributed(device: str | None) -> DistContext:
    """Start the process group when launched by torchrun/SLURM and pick this process's device.

    Args:
        device: "cuda", "cpu", ...; None picks "cuda" when a GPU is visible, else "cpu".
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for, but no CUDA device is available")
    info = init_distributed_device_so(device=device)
    host_group = dist.new_group(backend="gloo") if info["distributed"] else None
    return DistContext(
        device=torch.device(info["device"]),
        distributed=info["distributed"],
        world_size=info["world_size"],
        rank=info["global_rank"],
        local_rank=info["local_rank"],
        host_group=host_group,
    )


def teardown_distributed(ctx: DistContext) -> None:
    """Close the process group started by `setup_distributed`."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
