"""The eager fast path of the fused ops: the same launchers as a plain autograd.Function.

Each fused kernel pair is registered as torch custom ops (schema, fake implementation, autograd):
that is what torch.compile traces and what dispatch modes (selective checkpointing, fake tensors,
FLOP counting) see. Each call through the dispatcher also runs torch.library's Python wrappers:
about 200 us more host time per forward + backward than a plain autograd.Function (measured on a
CPU with the kernels stubbed out). When nothing watches the dispatcher, the launchers therefore run
through a plain autograd.Function; results and gradients are the same.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.autograd.function import once_differentiable

__all__ = ["dispatcher_needed", "eager_function"]


def dispatcher_needed(x: torch.Tensor) -> bool:
    """True when the call must go through the registered custom op: while torch.compile or
    torch.jit.trace traces, under a TorchDispatchMode, or for meta tensors (no kernel runs on them)."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack() > 0
            or x.device.type == "meta")


def eager_function(name: str, forward: Callable, setup_context: Callable,
                   gradients: Callable) -> type[torch.autograd.Function]:
    """An autograd.Function running `forward(*inputs)` (the custom op's implementation), saving with
    the op's `setup_context(ctx, inputs, output)` and differentiating with `gradients(ctx, *grads)`.
    Outputs after the first (statistics kept for backward) are marked non-differentiable; the backward
    is not differentiable itself (double backward raises, as through the custom op)."""

    def apply_forward(ctx, *inputs):
        output = forward(*inputs)
        setup_context(ctx, inputs, output)
        if isinstance(output, tuple):
            ctx.mark_non_differentiable(*output[1:])
        return output

    @once_differentiable
    def apply_backward(ctx, *grads):
        return gradients(ctx, *grads)

    return type(name, (torch.autograd.Function,),
                {"forward": staticmethod(apply_forward), "backward": staticmethod(apply_backward)})
