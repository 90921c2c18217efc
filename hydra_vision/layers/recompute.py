"""Selective recomputation: chosen activations are not stored for backward but rebuilt there.

Inside `RecomputedActivations()`, `run(fn, *args)` calls fn and marks the storage of its output
tensors: any autograd op in the block that saves a view of that storage for backward stores
(recipe, offset, size, stride) instead, through `torch.autograd.graph.saved_tensors_hooks`. The
first backward use reruns fn(*args) once, without grad and under the forward's autocast state,
and rebuilds each saved view on the new storage. fn must be deterministic and allocate its output
the same way each time (the conv and gated-norm kernels and their PyTorch references do).

Around a block's LayerNorm -> in_proj -> conv -> mix -> gated norm -> out_proj this drops the
LayerNorm output as in_proj takes it (`autocast_input`), the conv output (the mix's x, B, C) and
the norm output (out_proj's input), for one LayerNorm, one conv and one norm forward more per
block in backward (the fused Triton layer, `kernels/fused_layer.py`, takes the norm output from the
norm's backward pass instead). Unlike selective activation checkpointing, no dispatch mode watches the other
operators, so they cost no extra host time. A recipe holds only fn's inputs, which the block's
ops save anyway, and its rerun outputs until the graph is freed (with retain_graph=True, the
saving holds only until the first backward).
"""
from typing import Any, Callable, Optional

import torch

from hydra_vision.kernels.backend import autocast_available
from hydra_vision.kernels.eager_path import dispatcher_needed

__all__ = ["RecomputedActivations", "autocast_input", "matmul_dtype", "recomputing"]


@torch.jit.unused
def recomputing(enabled: bool, x: torch.Tensor) -> bool:
    """Whether a module with recomputation `enabled` recomputes in this call on input x: only in plain
    eager autograd. Not while torch.compile (its partitioner decides what backward recomputes) or
    torch.jit.trace traces, under a dispatch mode or on meta tensors (`dispatcher_needed`), and not
    inside saved-tensor hooks other than its own (grad checkpointing, save_on_cpu): its hooks would
    take the block's saved tensors away from theirs. Callers check `torch.jit.is_scripting()` first."""
    if not (enabled and torch.is_grad_enabled()) or dispatcher_needed(x):
        return False
    hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    return hooks is None or isinstance(getattr(hooks[0], "__self__", None), RecomputedActivations)


def matmul_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype autocast's matmuls take t in: the autocast dtype when autocast is on for t's device, else t's."""
    device = t.device.type
    if autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return t.dtype


def autocast_input(t: torch.Tensor) -> torch.Tensor:
    """t as autocast's matmuls take it (`matmul_dtype`). The copy such an op saves for backward is then this
    tensor, which `RecomputedActivations.run` can mark."""
    return t.to(matmul_dtype(t))


class _Recipe:
    """fn(*args) as run in forward, rerun once on first use (no grad, the forward's autocast state)."""

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self.fn, self.args = fn, args
        self.device_type = next(a.device.type for a in args if isinstance(a, torch.Tensor))
        self.autocast = (torch.is_autocast_enabled(self.device_type), torch.get_autocast_dtype(self.device_type))
        self.outputs: tuple[torch.Tensor, ...] | None = None

    def output(self, index: int) -> torch.Tensor:
        if self.outputs is None:
            enabled, dtype = self.autocast
            with torch.no_grad(), torch.autocast(self.device_type, dtype=dtype, enabled=enabled):
                self.outputs = _tensors(self.fn(*self.args))
        return self.outputs[index]


class _DroppedView:
    """A saved tensor replaced by where it lies in a recomputed output's storage."""

    def __init__(self, recipe: _Recipe, index: int, t: torch.Tensor):
        self.recipe, self.index, self.dtype = recipe, index, t.dtype
        self.offset, self.size, self.stride = t.storage_offset(), t.size(), t.stride()

    def rebuild(self) -> torch.Tensor:
        base = self.recipe.output(self.index)
        view = torch.empty(0, dtype=self.dtype, device=base.device)
        return view.set_(base.untyped_storage(), self.offset, self.size, self.stride)


def _tensors(output: Any) -> tuple[torch.Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


class RecomputedActivations(torch.autograd.graph.saved_tensors_hooks):
    """Context manager: `run(fn, *args)` inside it returns fn(*args), whose outputs the block's
    autograd ops do not store for backward (see the module docstring)."""

    def __init__(self):
        self._recipes: dict[int, tuple[_Recipe, int]] = {}  # storage address -> (recipe, output index)
        self._marked: list[torch.Tensor] = []  # alive until exit, so that no other tensor takes an address
        super().__init__(self._pack, self._unpack)

    def __enter__(self) -> "RecomputedActivations":
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._recipes.clear()
        self._marked.clear()

    def run(self, fn: Callable[..., Any], *args: Any, marked: Optional[int] = None) -> Any:
        """fn(*args), its output tensors marked (the first `marked` of them; all when None); they must not be
        modified in place afterwards (the rerun gives the values they had when fn returned, and no version check
        sees the change)."""
        output = fn(*args)
        recipe = _Recipe(fn, args)
        for index, t in enumerate(_tensors(output)[:marked]):
            address = t.untyped_storage().data_ptr()
            if address:  # empty (and meta) tensors have no address of their own
                self._recipes[address] = (recipe, index)
                self._marked.append(t)
        return output

    def _pack(self, t: torch.Tensor) -> "torch.Tensor | _DroppedView":
        if type(t) is not torch.Tensor:  # parameters and tensor subclasses are never marked
            return t
        entry = self._recipes.get(t.untyped_storage().data_ptr())
        # unmarked tensors are kept as a detached alias: an op that saves its own output would otherwise
        # hold the output, which holds the op (its grad_fn): a cycle the garbage collector cannot see
        return t.detach() if entry is None else _DroppedView(*entry, t)

    @staticmethod
    def _unpack(packed: "torch.Tensor | _DroppedView") -> torch.Tensor:
        return packed.rebuild() if isinstance(packed, _DroppedView) else packed
