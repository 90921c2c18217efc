"""The bidirectional quasiseparable mix of Hydra, QS(x), behind one function.

Per head h (group g = h // (H // G)), with a_t = dt_t * A_h and the one-position shift:

    QS[i, j] = C_f[i-1] . B_f[j] * exp(sum_{k=j+1}^{i-1} a_f[k]) * dt_f[j]    i > j
    QS[i, i] = D[i]
    QS[i, j] = C_b[i+1] . B_b[j] * exp(sum_{k=i+1}^{j-1} a_b[k]) * dt_b[j]    i < j

which equals shift(SS_f(x)) + flip(shift(SS_b(flip(x)))) + D * x. With shift=False
(the paper's "add" ablations) the two triangles include the diagonal unshifted:
lower C_f[i] . B_f[j] * exp(sum_{k=j+1}^{i} a_f[k]) * dt_f[j] for i >= j, upper
likewise from the backward parameters for i <= j, both added to D.
"""
from __future__ import annotations

import math

import torch

from ..backend import resolve_backend

__all__ = ["quasiseparable_mix"]


def quasiseparable_mix(
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
    chunk_size: int | str | None = 256,
    backend: str | None = None,
) -> torch.Tensor:
    """y = QS(x) for every batch element and head.

    Args:
        x: (batch, L, H, P) the sequence, H heads of P channels.
        dt_fwd, dt_bwd: (batch, L, H) step sizes of the forward / backward scan; raw
            pre-activations when `dt_softplus` (then dt = softplus(dt + dt_bias)).
        A: (H,) negative decay rate per head (fp32 recommended).
        B_fwd, C_fwd, B_bwd, C_bwd: (batch, L, G, N) input / output maps; G divides H.
        D: the diagonal term, (batch, L, H) data dependent, (H,) per head, or None.
        dt_bias: (H,) added to both directions' dt before the softplus/limits.
        dt_softplus: apply softplus to dt (+ dt_bias).
        dt_limit: (min, max) clamp of the final dt.
        shift: fold the one-position shift in (Hydra); False gives the "add" ablation.
        chunk_size: the chunk length Q of the chunked algorithm; "auto": one chunk up to 256 tokens, 64
            beyond (`auto_chunk_size`); None: triton times 64, 128 and 256 once per device and shape and
            keeps the fastest. On a CPU the reference takes it (256 for None) as an upper bound and runs
            shorter chunks where they are faster (`reference_chunk`).
        backend: 'naive' | 'reference' | 'triton' | 'auto' | None (the default).

    Returns:
        y: (batch, L, H, P) in x's dtype; all backends accumulate in fp32.
    """
    name = resolve_backend(backend, x)
    args = (x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D)
    kwargs = dict(dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit, shift=shift)
    if name == "naive":
        from .naive import quasiseparable_mix_naive

        return quasiseparable_mix_naive(*args, **kwargs)
    if name == "reference":
        from .reference import quasiseparable_mix_reference, reference_chunk

        Q = reference_chunk(x.shape[1], B_fwd.shape[-1], chunk_size, x.device)
        return quasiseparable_mix_reference(*args, **kwargs, chunk_size=Q)
    from .triton_mix import quasiseparable_mix_triton

    return quasiseparable_mix_triton(*args, **kwargs, chunk_size=chunk_size)
