"""The quasiseparable mix as a chunked SSD scan in pure PyTorch: the spec of the Triton kernels.

Each direction is a causal chunked scan (Mamba-2's SSD) over chunks of Q tokens:
dense Q x Q blocks inside a chunk, one (P, N) state per chunk and head between
chunks. The backward direction runs the same causal scan on the flipped sequence.
The shift is folded in by indices: output i reads C[i-1] and the state after
token i-1, i.e. the exclusive cumulative log-decay and a strictly causal mask.
Memory is O(L Q) per head, not O(L^2). Derivation: README.md next to this file.

Dimension letters: b batch, l / s target / source position in a chunk (Q), c / z
source / target chunk, g group (G), r head within the group (H = G R), p headdim (P),
n d_state (N).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import check_mix_inputs, compute_dtype
from .dt import activate_dt
from .segsum import segment_sums

__all__ = ["quasiseparable_mix_reference"]


def _rows_down(m: torch.Tensor) -> torch.Tensor:
    """Row i of the result is row i-1 of m (row 0 is -inf): S[i-1, j] = sum_{k=j+1}^{i-1} a[k], j < i."""
    return F.pad(m, (0, 0, 1, 0), value=-math.inf)[..., :-1, :]


def _causal_mix(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, shift: bool, chunk_size: int
) -> torch.Tensor:
    """shift(SS(x)) (shift=True) or SS(x) for one causal direction, by chunks.

    Args:
        x: (batch, L, H, P); dt: (batch, L, H) final step sizes; A: (H,);
        B, C: (batch, L, G, N); all in the accumulation dtype.

    Returns:
        (batch, L, H, P).
    """
    batch, L, H, P = x.shape
    G, N = B.shape[2:]
    Q = min(chunk_size, L)
    pad = (-L) % Q
    nchunks = (L + pad) // Q
    if shift:
        C = F.pad(C, (0, 0, 0, 0, 1, 0))[:, :L]  # output i reads C[i-1]; zero row at i = 0
    # Padding after the dt activation: padded tokens have dt = 0 (no decay, no input).
    x_dt = F.pad(x * dt[..., None], (0, 0, 0, 0, 0, pad)).reshape(batch, nchunks, Q, G, H // G, P)
    B = F.pad(B, (0, 0, 0, 0, 0, pad)).reshape(batch, nchunks, Q, G, N)
    C = F.pad(C, (0, 0, 0, 0, 0, pad)).reshape(batch, nchunks, Q, G, N)
    a = F.pad(dt * A, (0, 0, 0, pad)).reshape(batch, nchunks, Q, G, H // G).permute(0, 3, 4, 1, 2)  # [b, g, r, c, Q]
    log_decay = segment_sums(a)  # [b, g, r, c, Q, Q]: sum_{k=s+1}^{l} a[k], s <= l
    to_end = torch.exp(log_decay[..., -1, :])  # [b, g, r, c, Q]: decay from token s to the chunk's end
    from_start = a.cumsum(-1)  # [b, g, r, c, Q]: sum_{k<=l} a[k], decay of the incoming state
    if shift:  # output l reads the state after token l-1: exclusive sums, strictly causal
        log_decay = _rows_down(log_decay)
        from_start = F.pad(from_start, (1, 0))[..., :-1]

    # Intra-chunk: y[l] = sum_{s (<) l} C[l] . B[s] exp(log_decay[l, s]) dt[s] x[s]
    cb = torch.einsum("bclgn,bcsgn->bgcls", C, B)  # [b, g, c, Q, Q]
    y = torch.einsum("bgrcls,bcsgrp->bclgrp", cb[:, :, None] * torch.exp(log_decay), x_dt)

    # Chunk states from the chunk's own tokens: sum_s to_end[s] dt[s] x[s] B[s]^T
    states = torch.einsum("bcsgn,bgrcs,bcsgrp->bcgrpn", B, to_end, x_dt)  # [b, c, g, r, P, N]

    # State entering chunk z: sum_{c < z} exp(total[c+1] + ... + total[z-1]) states[c]
    total = a.sum(-1)  # [b, g, r, c]
    passing = torch.exp(_rows_down(segment_sums(total)))  # [b, g, r, z, c]
    incoming = torch.einsum("bgrzc,bcgrpn->bzgrpn", passing, states)

    # Its contribution: C[l] . exp(from_start[l]) incoming
    y = y + torch.einsum("bclgn,bgrcl,bcgrpn->bclgrp", C, torch.exp(from_start), incoming)
    return y.reshape(batch, nchunks * Q, H, P)[:, :L]


def quasiseparable_mix_reference(
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
    chunk_size: int = 256,
) -> torch.Tensor:
    """y = QS(x) by the chunked scan; arguments and math as in `quasiseparable_mix`.

    Computes in fp32 (fp64 when an input is fp64) and returns x's dtype; differentiable,
    free of value-dependent control flow (CPU, CUDA, meta, torch.compile, torch.export).

    Returns:
        y: (batch, L, H, P) in x's dtype.
    """
    check_mix_inputs(
        x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, dt_limit=dt_limit, chunk_size=chunk_size
    )
    dtype = compute_dtype(x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias)
    xf, A = x.to(dtype), A.to(dtype)
    dt_f = activate_dt(dt_fwd, dt_bias, dt_softplus, dt_limit, dtype)
    dt_b = activate_dt(dt_bwd, dt_bias, dt_softplus, dt_limit, dtype)
    y = _causal_mix(xf, dt_f, A, B_fwd.to(dtype), C_fwd.to(dtype), shift, chunk_size)
    y_b = _causal_mix(
        xf.flip(1), dt_b.flip(1), A, B_bwd.to(dtype).flip(1), C_bwd.to(dtype).flip(1), shift, chunk_size
    )
    y = y + y_b.flip(1)
    if D is not None:
        y = y + D.to(dtype)[..., None] * xf
    return y.to(x.dtype)
