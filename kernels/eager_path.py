"""A fused kernel pair as torch custom ops, with an eager fast path through a plain autograd.Function.

`FusedOp` registers the forward and backward launchers as the custom ops `hydra_vision::<name>` and
`hydra_vision::<name>_backward` (schema, fakes, autograd): that is what torch.compile traces and what
dispatch modes (selective checkpointing, fake tensors, FLOP counting) see. Each call through the
dispatcher also runs torch.library's Python wrappers: about 200 us more host time per forward +
backward than a plain autograd.Function (measured on a CPU with the kernels stubbed out). When
nothing watches the dispatcher, the same launchers therefore run through an autograd.Function built
from the same setup and gradient functions; results and gradients are the same.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch.autograd.function import once_differentiable

__all__ = ["FusedOp", "dispatcher_needed"]


def dispatcher_needed(x: torch.Tensor) -> bool:
    """True when the call must go through the registered custom op: while torch.compile or
    torch.jit.trace traces, under a TorchDispatchMode, or for meta tensors (no kernel runs on them)."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack() > 0
            or x.device.type == "meta")


def _eager_function(name: str, forward: Callable, setup_context: Callable,
                    gradients: Callable) -> type[torch.autograd.Function]:
    """An autograd.Function running `forward(*inputs)`, saving with `setup_context(ctx, inputs, output)`
    and differentiating with `gradients(ctx, *grads)`. Outputs after the first (statistics kept for
    backward) are marked non-differentiable, and their gradients reach `gradients` as None rather than
    as zero tensors that autograd would fill (two (2, B, H, L) fp32 fills per mix backward); the backward
    is not differentiable itself (double backward raises, as through the custom op)."""

    def apply_forward(ctx, *inputs):
        output = forward(*inputs)
        setup_context(ctx, inputs, output)
        if isinstance(output, tuple):
            ctx.mark_non_differentiable(*output[1:])
            ctx.set_materialize_grads(False)
        return output

    @once_differentiable
    def apply_backward(ctx, *grads):
        return gradients(ctx, *grads)

    return type(name, (torch.autograd.Function,),
                {"forward": staticmethod(apply_forward), "backward": staticmethod(apply_backward)})


class FusedOp:
    """`forward(*inputs)` and `backward(*args)` (typed launchers) as the custom ops `op` and
    `backward_op` (register their fakes on those) and as the eager `function`; `gradients(backward, ctx,
    *output_grads)` is the autograd formula, given the backward to call. Calling the FusedOp picks the path.
    Both ops are tagged flexible_layout: Inductor hands them its own strides (e.g. a GEMM output with padded rows)
    instead of copying to eager's, since the launchers read any layout (`layouts`)."""

    def __init__(self, name: str, forward: Callable, backward: Callable, setup_context: Callable,
                 gradients: Callable):
        tags = (torch.Tag.flexible_layout,)
        self.op = torch.library.custom_op(f"hydra_vision::{name}", forward, mutates_args=(), tags=tags)
        self.backward_op = torch.library.custom_op(f"hydra_vision::{name}_backward", backward, mutates_args=(),
                                                   tags=tags)
        self.op.register_autograd(functools.partial(gradients, self.backward_op), setup_context=setup_context)
        self.function = _eager_function(f"{name}Function", forward, setup_context,
                                        functools.partial(gradients, backward))

    def __call__(self, *inputs: Any) -> Any:
        """The custom op where the dispatcher must see the call (`dispatcher_needed(inputs[0])`), else the Function."""
        return (self.op if dispatcher_needed(inputs[0]) else self.function.apply)(*inputs)
