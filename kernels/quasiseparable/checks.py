"""Input validation and the accumulation dtype, shared by every backend of the mix.

Only shapes, dtypes and devices are inspected (never values), so the checks run
unchanged on meta tensors and under torch.compile / torch.export.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .chunk_tuning import AUTO

__all__ = ["MixDims", "check_mix_inputs", "compute_dtype"]


class MixDims(NamedTuple):
    """The dimension letters of one call: batch, L, H heads, P headdim, G groups, N d_state."""

    batch: int
    L: int
    H: int
    P: int | None
    G: int
    N: int


def _check_shape(name: str, t: torch.Tensor, letters: str, expected: tuple[int, ...]) -> None:
    if tuple(t.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected ({letters}) = {expected}")


def _check_tensor(name: str, t: object, device: torch.device) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but dt_fwd is on {device}; put all inputs on one device")


def check_mix_inputs(
    x: torch.Tensor | None,
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: torch.Tensor | None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_limit: tuple[float, float] = (0.0, float("inf")),
    chunk_size: int | str | None = None,
) -> MixDims:
    """Checks the arguments of `quasiseparable_mix` (x may be None: the matrix only).

    batch, L, H come from dt_fwd, G, N from B_fwd, P from x; every other tensor must
    agree. Raises ValueError naming the tensor and the expected shape, TypeError for
    non-tensors or non-floating dtypes.
    """
    if not isinstance(dt_fwd, torch.Tensor) or dt_fwd.dim() != 3:
        got = tuple(dt_fwd.shape) if isinstance(dt_fwd, torch.Tensor) else type(dt_fwd).__name__
        raise ValueError(f"dt_fwd must have shape (batch, L, H), got {got}")
    device = dt_fwd.device
    batch, L, H = dt_fwd.shape
    if L < 1:
        raise ValueError(f"the sequence is empty (L = {L}); L must be at least 1")
    if not isinstance(B_fwd, torch.Tensor) or B_fwd.dim() != 4:
        got = tuple(B_fwd.shape) if isinstance(B_fwd, torch.Tensor) else type(B_fwd).__name__
        raise ValueError(f"B_fwd must have shape (batch, L, G, N), got {got}")
    G, N = B_fwd.shape[2:]
    if G < 1 or H % G != 0:
        raise ValueError(f"ngroups G = {G} (from B_fwd) must divide nheads H = {H} (from dt_fwd)")
    P = None
    tensors = dict(dt_fwd=dt_fwd, dt_bwd=dt_bwd, A=A, B_fwd=B_fwd, C_fwd=C_fwd, B_bwd=B_bwd, C_bwd=C_bwd)
    if x is not None:
        tensors["x"] = x
    if D is not None:
        tensors["D"] = D
    if dt_bias is not None:
        tensors["dt_bias"] = dt_bias
    for name, t in tensors.items():
        _check_tensor(name, t, device)
    if x is not None:
        if x.dim() != 4:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, expected (batch, L, H, P) with (batch, L, H) = {(batch, L, H)}"
            )
        P = x.shape[3]
        _check_shape("x", x, "batch, L, H, P", (batch, L, H, P))
    _check_shape("dt_bwd", dt_bwd, "batch, L, H", (batch, L, H))
    _check_shape("A", A, "H", (H,))
    for name in ("C_fwd", "B_bwd", "C_bwd"):
        _check_shape(name, tensors[name], "batch, L, G, N", (batch, L, G, N))
    if D is not None and D.dim() == 1:
        _check_shape("D", D, "H", (H,))
    elif D is not None:
        _check_shape("D", D, "batch, L, H", (batch, L, H))
    if dt_bias is not None:
        _check_shape("dt_bias", dt_bias, "H", (H,))
    if len(dt_limit) != 2 or not dt_limit[0] <= dt_limit[1]:
        raise ValueError(f"dt_limit must be (min, max) with min <= max, got {dt_limit}")
    if chunk_size is not None and chunk_size != AUTO and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, {AUTO!r} or None, got {chunk_size!r}")
    return MixDims(batch, L, H, P, G, N)


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """The accumulation dtype: float64 if any input is float64, else float32."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32
