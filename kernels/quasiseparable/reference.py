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
from .chunk_tuning import DEFAULT_CHUNK, resolve_chunk_size
from .dt import activate_dt
from .segsum import segment_sums

__all__ = ["quasiseparable_mix_reference", "reference_chunk"]


def reference_chunk(L: int, N: int, chunk_size: int | str | None, device: torch.device) -> int:
    """The chunk length the dispatchers run the reference with: `chunk_size` ("auto" resolved for L, None
    read as DEFAULT_CHUNK, `chunk_tuning`), on a CPU shortened to the power of two nearest (L N)^(1/3)
    (at least 16), where per head the Q x Q blocks (O(L Q P) work, with several elementwise passes) and
    the passing of states between chunks (O((L / Q)^2 N P)) balance: 32 at ViT lengths, 128 at 16,384
    tokens (RESULTS.md, "The PyTorch path on a CPU").
    Elsewhere `chunk_size` itself: on the meta device FLOPs are counted at the kernels' chunk length,
    and on GPUs the choice is not measured. The result does not depend on Q."""
    chunk_size = resolve_chunk_size(chunk_size, L) or DEFAULT_CHUNK
    if device.type != "cpu":
        return chunk_size
    return min(chunk_size, max(16, 1 << round(math.log2(max(L * N, 1)) / 3)))


def _rows_down(m: torch.Tensor) -> torch.Tensor:
    """Row i of the result is row i-1 of m (row 0 is -inf): S[i-1, j] = sum_{k=j+1}^{i-1} a[k], j < i."""
    return F.pad(m, (0, 0, 1, 0), value=-math.inf)[..., :-1, :]


def _chunked(t: torch.Tensor, Q: int) -> torch.Tensor:
    """(batch, L, G, R, ...) -> (batch, G, R, nchunks, Q, ...), zero-padded to whole chunks, contiguous:
    head-major, so every product below is a batched matmul over (batch, G, R, chunk) with no copy."""
    pad = (-t.shape[1]) % Q
    t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
    t = t.unflatten(1, (t.shape[1] // Q, Q))  # (batch, c, Q, G, R, ...)
    return t.movedim((1, 2), (3, 4)).contiguous()


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
    L, H, G = x.shape[1], x.shape[2], B.shape[2]
    Q = min(chunk_size, L)
    if shift:
        C = F.pad(C, (0, 0, 0, 0, 1, 0))[:, :L]  # output i reads C[i-1]; zero row at i = 0
    # Padding after the dt activation: padded tokens have dt = 0 (no decay, no input).
    x_dt = _chunked((x * dt[..., None]).unflatten(2, (G, H // G)), Q)  # [b, g, r, c, Q, P]
    B = _chunked(B[:, :, :, None], Q)  # [b, g, 1, c, Q, N]
    C = _chunked(C[:, :, :, None], Q)
    a = _chunked((dt * A).unflatten(2, (G, H // G)), Q)  # [b, g, r, c, Q]
    log_decay = segment_sums(a)  # [b, g, r, c, Q, Q]: sum_{k=s+1}^{l} a[k], s <= l
    log_to_end = log_decay[..., -1, :]  # [b, g, r, c, Q]: log decay from token s to the chunk's end
    if shift:  # output l reads the state after token l-1: exclusive sums, strictly causal
        log_decay = _rows_down(log_decay)

    # Intra-chunk: y[l] = sum_{s (<) l} C[l] . B[s] exp(log_decay[l, s]) dt[s] x[s]
    y = (C @ B.transpose(-1, -2) * torch.exp(log_decay)) @ x_dt  # [b, g, r, c, Q, P]
    if x_dt.shape[3] > 1:
        y = y + _from_earlier_chunks(x_dt, a, torch.exp(log_to_end), B, C, shift)
    return y.movedim((3, 4), (1, 2)).flatten(1, 2).flatten(2, 3)[:, :L]


def _from_earlier_chunks(
    x_dt: torch.Tensor, a: torch.Tensor, to_end: torch.Tensor, B: torch.Tensor, C: torch.Tensor, shift: bool
) -> torch.Tensor:
    """The inter-chunk part of `_causal_mix`: what the states of earlier chunks add to each output.

    Args: x_dt [b, g, r, c, Q, P] (dt x); a [b, g, r, c, Q] (dt A); to_end [b, g, r, c, Q]
    (exp(a[s+1] + ... + a[Q-1])); B, C [b, g, 1, c, Q, N].
    Returns: [b, g, r, c, Q, P].
    """
    # Chunk states from the chunk's own tokens: sum_s to_end[s] dt[s] x[s] B[s]^T
    states = (x_dt * to_end[..., None]).transpose(-1, -2) @ B  # [b, g, r, c, P, N]
    # State entering chunk z: sum_{c < z} exp(total[c+1] + ... + total[z-1]) states[c]
    passing = torch.exp(_rows_down(segment_sums(a.sum(-1))))  # [b, g, r, z, c]
    incoming = (passing @ states.flatten(-2)).unflatten(-1, states.shape[-2:])  # [b, g, r, z, P, N]
    # Its contribution: C[l] . exp(a[0] + ... + a[l]) incoming (exclusive of a[l] with the shift)
    from_start = a.cumsum(-1)
    if shift:  # exclusive sums
        from_start = F.pad(from_start, (1, 0))[..., :-1]
    return torch.exp(from_start)[..., None] * (C @ incoming.transpose(-1, -2))


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
