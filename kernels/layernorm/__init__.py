"""LayerNorm with a chosen output dtype, the norm in front of each Hydra block's mixer:

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias        (over the last dim, fp32 inside)

returned in `out_dtype` (default: x's dtype). Backends: `reference` (F.layer_norm, every device and dtype)
and `triton` (one fused pass forward and one backward, fp16/bf16/fp32), used whenever the backend
resolves to `triton` (`triton`, or `auto` on CUDA); fp64 stays on the reference.
`layer_norm_with_shortcut` also returns x, for a residual block's shortcut x + f(LayerNorm(x)).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..backend import use_triton
from ..eager_path import dispatcher_needed
from .reference import layer_norm_reference

__all__ = ["layer_norm", "layer_norm_reference", "layer_norm_with_shortcut"]


def _checked_out_dtype(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                       out_dtype: Optional[torch.dtype]) -> torch.dtype:
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != x.shape[-1:]:
            raise ValueError(f"{name} must have shape ({x.shape[-1]},) for x of shape {tuple(x.shape)}, "
                             f"got {tuple(t.shape)}")
    return x.dtype if out_dtype is None else out_dtype


def _on_triton(backend: Optional[str], x: torch.Tensor, out_dtype: torch.dtype) -> bool:
    return use_triton(backend, x) and out_dtype != torch.float64


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                out_dtype: torch.dtype, backend: Optional[str]) -> torch.Tensor:
    """`layer_norm` on checked arguments."""
    if _on_triton(backend, x, out_dtype):
        from .triton_layernorm import layer_norm_triton

        return layer_norm_triton(x, weight, bias, eps, out_dtype)
    return layer_norm_reference(x, weight, bias, eps, out_dtype)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float = 1e-5, *,
               out_dtype: Optional[torch.dtype] = None, backend: Optional[str] = None) -> torch.Tensor:
    """Args: x (..., D); weight, bias (D,) (bias may be None); out_dtype; backend as above.
    Returns: (..., D) in out_dtype (x's dtype when None)."""
    return _layer_norm(x, weight, bias, eps, _checked_out_dtype(x, weight, bias, out_dtype), backend)


def layer_norm_with_shortcut(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float = 1e-5,
                             *, out_dtype: Optional[torch.dtype] = None,
                             backend: Optional[str] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(`layer_norm`(x, ...), x), arguments as there. With the triton backend in plain eager autograd the pair is
    one node whose backward kernel adds the gradient of the returned x (the shortcut) to the norm's, instead of
    autograd adding the two in a pass of its own; elsewhere it is the norm and x itself."""
    out_dtype = _checked_out_dtype(x, weight, bias, out_dtype)
    if _on_triton(backend, x, out_dtype) and not dispatcher_needed(x):
        from .triton_layernorm import layer_norm_with_shortcut_triton

        return layer_norm_with_shortcut_triton(x, weight, bias, eps, out_dtype)
    return _layer_norm(x, weight, bias, eps, out_dtype, backend), x
