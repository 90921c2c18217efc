"""Inductor's compile workers, released once the training step (or an evaluation's first batch) is compiled.

torch.compile builds its kernels in a pool of worker processes that stays up after the compile. On the device
machine (H100, torch 2.11, hydra_vit_base at 224 px, batch 128) a process holding that pool ran the training step
at 92.1 ms compiled and 91.6 ms eager, against 84.2 ms eager before compiling; with the compile done in process
(no pool) the compiled step took 84.6 ms (RESULTS.md, session 48). Shutting the pool down once the step has compiled
keeps the parallel compile and drops that cost: 72.1 ms a compiled step for 70.6 ms of GPU work (session 49). A later
compile starts a new pool.
"""
from __future__ import annotations

import sys

__all__ = ["release_compile_workers"]


def release_compile_workers() -> bool:
    """Shuts down Inductor's compile-worker pools; True if one was running. Nothing to do (False) when Inductor's
    async compile was never imported or holds no pool."""
    async_compile = sys.modules.get("torch._inductor.async_compile")
    if async_compile is None or not getattr(async_compile, "_pool_set", None):
        return False
    async_compile.shutdown_compile_workers()
    return True
