"""Ground-truth forms of the quasiseparable mix: the materialised L x L matrix and the
plain sequential scan. Both compute in fp32 (fp64 when an input is fp64), cost
O(L^2) memory (matrix) or O(L) Python steps (scan), and serve tests only.

Per head h of group g, with a_t = dt_t * A_h (see `__init__.py` for the full math):

    SS_f[i, j] = C_f[i] . B_f[j] * exp(sum_{k=j+1}^{i} a_f[k]) * dt_f[j]      i >= j
    SS_b[i, j] = C_b[i] . B_b[j] * exp(sum_{k=i}^{j-1} a_b[k]) * dt_b[j]      i <= j
    QS = shift_down(SS_f) + shift_up(SS_b) + diag(D)      (shift=True)
    QS = SS_f + SS_b + diag(D)                            (shift=False)

shift_down moves row i-1 to row i (row 0 becomes zero), shift_up moves row i+1 to
row i (the last row becomes zero).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import check_mix_inputs, compute_dtype
from .dt import activate_dt
from .segsum import segment_sums

__all__ = ["quasiseparable_matrix", "quasiseparable_mix_naive", "quasiseparable_mix_scan", "semiseparable_matrix"]


def _triangle(dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, lower: bool) -> torch.Tensor:
    """SS_f (lower=True) or SS_b (lower=False) for final dt (batch, L, H), B, C (batch, L, G, N) -> (batch, H, L, L)."""
    H, G = dt.shape[2], B.shape[2]
    cb = torch.einsum("bign,bjgn->bgij", C, B).repeat_interleave(H // G, dim=1)
    a = (dt * A).transpose(1, 2)
    # upper: sum_{k=i}^{j-1} a[k] is the lower segment sum of a shifted by one, transposed
    log_decay = segment_sums(a) if lower else segment_sums(F.pad(a, (1, 0))[..., :-1]).transpose(-1, -2)
    return cb * torch.exp(log_decay) * dt.transpose(1, 2)[:, :, None, :]


def semiseparable_matrix(dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The causal (Mamba-2) matrix SS[i, j] = C_i . B_j * exp(sum_{k=j+1}^{i} dt_k A) * dt_j, i >= j.

    Args:
        dt: (batch, L, H) final (already activated) step sizes.
        A: (H,).
        B, C: (batch, L, G, N).

    Returns:
        (batch, H, L, L) in the accumulation dtype.
    """
    dtype = compute_dtype(dt, A, B, C)
    return _triangle(dt.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype), lower=True)


def quasiseparable_matrix(
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    shift: bool = True,
) -> torch.Tensor:
    """The Hydra matrix QS per batch element and head (arguments as in `quasiseparable_mix`).

    Returns:
        (batch, H, L, L) in fp32 (fp64 when an input is fp64); y = QS @ x per head.
    """
    batch, L, H, _, _, _ = check_mix_inputs(
        None, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, dt_limit=dt_limit
    )
    dtype = compute_dtype(dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias)
    A = A.to(dtype)
    lower = _triangle(
        activate_dt(dt_fwd, dt_bias, dt_softplus, dt_limit, dtype), A, B_fwd.to(dtype), C_fwd.to(dtype), lower=True
    )
    upper = _triangle(
        activate_dt(dt_bwd, dt_bias, dt_softplus, dt_limit, dtype), A, B_bwd.to(dtype), C_bwd.to(dtype), lower=False
    )
    if shift:
        lower = F.pad(lower, (0, 0, 1, 0))[..., :L, :]
        upper = F.pad(upper, (0, 0, 0, 1))[..., 1:, :]
    qs = lower + upper
    if D is not None:
        diag = D.to(dtype)[None, :, None].expand(batch, H, L) if D.dim() == 1 else D.to(dtype).transpose(1, 2)
        qs = qs + torch.diag_embed(diag)
    return qs


def quasiseparable_mix_naive(
    x: torch.Tensor,
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    shift: bool = True,
) -> torch.Tensor:
    """y = QS @ x with QS materialised (`quasiseparable_matrix`); arguments as in `quasiseparable_mix`.

    Returns:
        y: (batch, L, H, P) in x's dtype.
    """
    check_mix_inputs(x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, dt_limit=dt_limit)
    qs = quasiseparable_matrix(
        dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D,
        dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit, shift=shift,
    )
    y = torch.einsum("bhij,bjhp->bihp", qs, x.to(qs.dtype))
    return y.to(x.dtype)


def _scan(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, reverse: bool
) -> torch.Tensor:
    """Unshifted SS_f @ x (reverse=False) or SS_b @ x (reverse=True) by the recurrence

        h_t = exp(dt_t A) h_{t -+ 1} + dt_t B_t x_t^T,   y_t = C_t . h_t     (state h: (batch, H, P, N))

    over t = 0..L-1 (forward) or L-1..0 (reverse). x (batch, L, H, P) -> (batch, L, H, P).
    """
    batch, L, H, P = x.shape
    rep = H // B.shape[2]
    B, C = B.repeat_interleave(rep, dim=2), C.repeat_interleave(rep, dim=2)
    h = x.new_zeros(batch, H, P, B.shape[3])
    ys = []
    for t in (reversed(range(L)) if reverse else range(L)):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]))
    return torch.stack(ys[::-1] if reverse else ys, dim=1)


def quasiseparable_mix_scan(
    x: torch.Tensor,
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    shift: bool = True,
) -> torch.Tensor:
    """y = QS(x) by two plain sequential scans (forward and reverse); arguments as in `quasiseparable_mix`.

    Returns:
        y: (batch, L, H, P) in x's dtype.
    """
    check_mix_inputs(x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, dt_limit=dt_limit)
    dtype = compute_dtype(x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias)
    xf, A = x.to(dtype), A.to(dtype)
    dt_f = activate_dt(dt_fwd, dt_bias, dt_softplus, dt_limit, dtype)
    dt_b = activate_dt(dt_bwd, dt_bias, dt_softplus, dt_limit, dtype)
    y_f = _scan(xf, dt_f, A, B_fwd.to(dtype), C_fwd.to(dtype), reverse=False)
    y_b = _scan(xf, dt_b, A, B_bwd.to(dtype), C_bwd.to(dtype), reverse=True)
    if shift:
        y_f = F.pad(y_f, (0, 0, 0, 0, 1, 0))[:, : x.shape[1]]
        y_b = F.pad(y_b, (0, 0, 0, 0, 0, 1))[:, 1:]
    y = y_f + y_b
    if D is not None:
        y = y + D.to(dtype)[..., None] * xf
    return y.to(x.dtype)
