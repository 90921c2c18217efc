"""The causal (unidirectional) Mamba-2 SSD mix behind one function, with the same backends as
`quasiseparable_mix`. Per head h (group g = h // (H // G)), with a_t = dt_t * A_h:

    y_i = sum_{j <= i} C_i . B_j * exp(sum_{k=j+1}^{i} a_k) * dt_j * x_j  +  D_i x_i

It is the forward triangle of the Hydra matrix without the shift: the `causal` mixer,
and the building block of the official two-pass Hydra baseline in the benchmarks.
"""
from __future__ import annotations

import math

import torch

from ..backend import resolve_backend
from ..quasiseparable.checks import check_mix_inputs

__all__ = ["ssd_causal_mix"]


def ssd_causal_mix(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    chunk_size: int | str | None = 256,
    backend: str | None = None,
) -> torch.Tensor:
    """y = SS(x) + D x for every batch element and head.

    Args:
        x: (batch, L, H, P).
        dt: (batch, L, H) step sizes; raw pre-activations when `dt_softplus`.
        A: (H,) negative decay rate per head.
        B, C: (batch, L, G, N); G divides H.
        D: (batch, L, H), (H,) or None.
        dt_bias, dt_softplus, dt_limit: dt = clamp(softplus?(dt + dt_bias), *dt_limit).
        chunk_size: chunk length of the chunked algorithm; "auto": by length; None: chosen by timing on triton; an
            upper bound on the reference's chunks on a CPU; as in `quasiseparable_mix`.
        backend: 'naive' | 'reference' | 'triton' | 'auto' | None (the default).

    Returns:
        y: (batch, L, H, P) in x's dtype. Shape errors name the forward-direction arguments
        of `quasiseparable_mix` (dt_fwd, B_fwd, C_fwd), whose checks are reused.
    """
    check_mix_inputs(x, dt, dt, A, B, C, B, C, D, dt_bias=dt_bias, dt_limit=dt_limit, chunk_size=chunk_size)
    name = resolve_backend(backend, x)
    kwargs = dict(dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit)
    if name == "naive":
        from .naive import ssd_causal_mix_naive

        return ssd_causal_mix_naive(x, dt, A, B, C, D, **kwargs)
    if name == "reference":
        from ..quasiseparable.reference import reference_chunk
        from .reference import ssd_causal_mix_reference

        Q = reference_chunk(x.shape[1], B.shape[-1], chunk_size, x.device)
        return ssd_causal_mix_reference(x, dt, A, B, C, D, **kwargs, chunk_size=Q)
    from ..quasiseparable.triton_mix import ssd_mix_triton

    return ssd_mix_triton(x, dt, None, A, B, C, None, None, D, **kwargs, shift=False, chunk_size=chunk_size)
