"""The `triton` backend: fused kernels for QS(x) (and the causal SSD), forward and backward.

Launch sequence:

    forward:  dt_forward (dt, prefix sums, the columns' exponents) -> [chunk_states(x), L > Q]
              -> chunk_products_kernel (S = Cs B^T per group) -> chunk_fwd_kernel
    backward: [chunk_states_and_adjoints (x's states and dy's adjoint states, one launch), L > Q only]
              -> chunk_bwd_pairs_kernel (dS per group, R and K' parts per head; S per group when L <= Q;
                 a second launch for a short last tile, `tail_tile`)
              -> chunk_bwd_dx_kernel (dx, dD, K') + chunk_bwd_bc_kernel (dB, dC, R) -> dt_backward

Both directions, the shift and the diagonal are handled inside each launch; a causal
(unidirectional, unshifted) scan is the same kernels with BIDIR=False. At L <= 256 there is
one chunk and no state launch: three launches forward, four backward. The forward kernel (one or
two heads of a group a program, `_heads_per_program`) loads the group's products S instead of
computing them per head; so does dx at one chunk (13% faster forward+backward at 128 x 197 on an
H200, session 13). With several chunks dx computes its own: it reads S transposed, and loading it
made dx 2.1 ms a step slower at 1,024 px (session 26), where the forward kernel gained 1.7 ms.

Derivation. Per head and chunk, with p the chunk-local inclusive prefix sum of a = dt A,
T its chunk total, Cs_f[i] = C_f[i - shift], Cs_b[i] = C_b[i + shift]:

    r_f = p_f - shift a_f,  q_f = p_f,  r_b = p_b - (1 - shift) a_b,  q_b = p_b - a_b
    QS[i, j] = Cs_f[i] . B_f[j] exp(r_f[i] - q_f[j]) dt_f[j]    (j < i; j <= i without shift)
    QS[i, j] = Cs_b[i] . B_b[j] exp(q_b[j] - r_b[i]) dt_b[j]    (j > i; j >= i without shift)
    y[i] += exp(r_f[i]) Cs_f[i] . S_f[c] + exp(T_b - r_b[i]) Cs_b[i] . S_b[c]   (other chunks' states)

so the shift is an index offset of the C rows and one term in the row exponent. The
backward pass needs dx = QS^T dy (the transposed tiles plus adjoint states: the same scan
over dy and Cs, walked the other way), dB, dC and dD by the chain rule, and the gradient
of every a_k. A decay covers the interval between a pair's positions, so with
W = QS o (dy x^T) per head, da_f[k] = sum over pairs (i > k > j) of W_f (i >= k > j
without shift). With the row sums R[i] = sum_j W[i, j] = dy_i . y_d[i] and column sums
K[j] = sum_i W[i, j] = x_j . dx_d[j] of each direction d this is O(L):

    da_f[k] = sum_{t >= k} (R_f - K_f)[t] - shift R_f[k],   da_b[k] = sum_{t <= k} (R_b - K_b)[t] - shift R_b[k]
    ddt_d = A da_d + K_d / dt_d,   dA = sum dt_d da_d

(`triton_dt.dt_backward`; K' = K / dt is accumulated directly). B and C are shared by the
heads of a group, so their gradients need only dS = sum_h (dy_h x_h^T) o decay_h o dt_h per
group and direction (Mamba-2's dCB): dCs = dS B, dB = dS^T Cs. The backward therefore does
per tile pair one product per group (S = Cs B^T) and one per head (dy_h x_h^T), then per head
the products of dx and per group those of dB and dC. Numerics: decays are
differences of fp32 chunk-local prefix sums (exponent error ~ eps max|p|, as in Mamba-2);
R and K' are summed from fp32 tiles and the backward's states enter the 16-bit dots as hi + lo
parts, because the cumulated R - K' turns their rounding into dA / dt_bias error (the forward's
states, which feed only y, are stored in bf16 for bf16 inputs: `forward_state_dtype`); that cumulated
difference has absolute error ~ eps sum|W| (as Mamba-2's ddA_cumsum).

The pair of launchers is registered as the torch custom ops `hydra_vision::ssd_mix` /
`hydra_vision::ssd_mix_backward` with fake implementations and autograd, so
torch.compile captures models without graph breaks; in plain eager calls they run as an
autograd.Function (`eager_path`), which costs less host time.
"""
import math
from typing import Callable, Optional

import torch

from ..backend import TRITON_DTYPES
from ..eager_path import FusedOp
from ..host_math import cdiv, next_power_of_2, padded_length
from ..layouts import dense, same_strides
from .checks import check_mix_inputs
from .chunk_tuning import chunk_length, resolve_chunk_size, tuned_chunk_size
from .triton_bwd_bc import chunk_bwd_bc_kernel
from .triton_bwd_dx import chunk_bwd_dx_kernel
from .triton_bwd_pairs import chunk_bwd_pairs_kernel, pair_block, tail_tile
from .triton_chunk_fwd import chunk_fwd_kernel
from .triton_config import dot_precision, forward_state_dtype
from .triton_dt import dt_backward, dt_forward, token_rows
from .triton_products import chunk_products_kernel
from .triton_states import chunk_states, chunk_states_and_adjoints

__all__ = ["backward_into", "chunk_length", "quasiseparable_mix_triton", "ssd_mix_triton"]


def _readable(dt_f: torch.Tensor, dt_b: Optional[torch.Tensor], A: torch.Tensor, Bf: torch.Tensor, Cf: torch.Tensor,
              Bb: Optional[torch.Tensor], Cb: Optional[torch.Tensor], D: Optional[torch.Tensor],
              dt_bias: Optional[torch.Tensor]) -> tuple:
    """The mix's inputs after x in layouts its kernels read (`layouts`): dt_f/dt_b with one set of strides,
    B_f/C_f/B_b/C_b with another, A, dt_bias and a per-head D dense (a per-token D and x take any strides)."""
    dt_f, dt_b = same_strides(dt_f, dt_b)
    Bf, Cf, Bb, Cb = same_strides(Bf, Cf, Bb, Cb)
    A, dt_bias = dense(A, dt_bias)
    if D is not None and D.dim() == 1:
        D = D.contiguous()
    return dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias


def _d_mode(D: Optional[torch.Tensor]) -> int:
    return 0 if D is None else (1 if D.dim() == 1 else 2)


def _dims(x: torch.Tensor, B: torch.Tensor) -> dict:
    batch, L, H, P = x.shape
    G, N = B.shape[2:]
    return dict(batch=batch, L=L, H=H, P=P, G=G, N=N, BLOCK_P=max(16, next_power_of_2(P)),
                BLOCK_N=max(16, next_power_of_2(N)))


def _heads_per_program(nchunks: int, H: int, G: int) -> int:
    """Heads of one group a forward program takes: two share each tile of the group's products at one chunk when
    the group's head count is even (the kernel 7.6% faster at 128 x 197 on an H100, session 32); with chunks of
    64 its 64-row tiles spill at 4 warps with two, and it was 1.2% slower. Four measured worse offline: 255
    registers at 32 / 4 / 1 (142 with two)."""
    return 2 if nchunks == 1 and (H // G) % 2 == 0 else 1


def _products_buffer(B: torch.Tensor, bidir: bool, Q: int) -> torch.Tensor:
    """Room for the group's products S of B's (batch, L, G, N) shape: (ND, batch, G, LS, Q) fp32,
    LS = `padded_length(L)` (`triton_products` writes them up to LS, 0 past L)."""
    batch, L, G, _ = B.shape
    return torch.empty((1 + bidir, batch, G, padded_length(L), Q), device=B.device, dtype=torch.float32)


def _group_products(Bf: torch.Tensor, Cf: torch.Tensor, Bb: Optional[torch.Tensor], Cb: Optional[torch.Tensor],
                    Q: int, shift: bool, dot_prec: str) -> torch.Tensor:
    """S = Cs B^T of every tile pair of every chunk, per group and direction (`_products_buffer`)."""
    batch, L, G, N = Bf.shape
    bidir = Bb is not None
    S = _products_buffer(Bf, bidir, Q)
    block = pair_block(Q)
    chunk_products_kernel[(cdiv(L, Q) * (Q // block) ** 2, batch, G)](
        Bf, Cf, Bb if bidir else Bf, Cb if bidir else Cf, *Bf.stride(), S, *S.stride()[:3], L, S.shape[3], N,
        Q=Q, BLOCK=block, BLOCK_N=max(16, next_power_of_2(N)), BIDIR=bidir, SHIFT=int(shift),
        DOT_PREC=dot_prec, num_warps=4,
    )
    return S


def _forward(
    x: torch.Tensor, dt_f: torch.Tensor, dt_b: Optional[torch.Tensor], A: torch.Tensor, Bf: torch.Tensor,
    Cf: torch.Tensor, Bb: Optional[torch.Tensor], Cb: Optional[torch.Tensor], D: Optional[torch.Tensor],
    dt_bias: Optional[torch.Tensor], dt_softplus: bool, lo: float, hi: float, shift: bool, chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias = _readable(dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias)
    k = _dims(x, Bf)
    L, H = k["L"], k["H"]
    Q = chunk_length(L, chunk_size)
    bidir = dt_b is not None
    dta, cum, kexp = dt_forward(dt_f, dt_b, A, dt_bias, dt_softplus, lo, hi, Q, exponents=True)
    nchunks = cdiv(L, Q)
    states = dta  # one chunk: no states (unused)
    if nchunks > 1:
        states = chunk_states(x, Bf, Bb, dta, cum, A, Q, False, shift, forward_state_dtype(x.dtype))
    y = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    Dp = x if D is None else D
    d_strides = (0, 0, 0) if D is None or D.dim() == 1 else D.stride()
    S = _group_products(Bf, Cf, Bb, Cb, Q, shift, dot_precision(x.dtype))  # loaded by every head

    heads = _heads_per_program(nchunks, H, k["G"])

    def grid(meta):
        return (cdiv(L, meta["BLOCK"]), H // heads, k["batch"])

    LS, BHL = token_rows(dta)
    chunk_fwd_kernel[grid](
        x, *x.stride(), Cf, Cb if bidir else Cf, *Cf.stride(), Dp, *d_strides,
        S, *S.stride()[:3], dta, cum, kexp, A, states, y,
        L, LS, H, k["G"], k["P"], k["N"], BHL, nchunks,
        Q=Q, BLOCK_P=k["BLOCK_P"], BLOCK_N=k["BLOCK_N"], BIDIR=bidir, SHIFT=int(shift), STATES=nchunks > 1,
        D_MODE=_d_mode(D), HEADS=heads, DOT_PREC=dot_precision(x.dtype),
    )
    return y, dta, cum


def _backward(
    dy: torch.Tensor, x: torch.Tensor, dt_f: torch.Tensor, dt_b: Optional[torch.Tensor], A: torch.Tensor,
    Bf: torch.Tensor, Cf: torch.Tensor, Bb: Optional[torch.Tensor], Cb: Optional[torch.Tensor],
    D: Optional[torch.Tensor], dt_bias: Optional[torch.Tensor], dta: torch.Tensor, cum: torch.Tensor,
    dt_softplus: bool, lo: float, hi: float, shift: bool, chunk_size: int,
) -> list[torch.Tensor]:
    return backward_into(dy, x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dta, cum, dt_softplus, lo, hi, shift,
                         chunk_size, None)


def backward_into(
    dy: torch.Tensor, x: torch.Tensor, dt_f: torch.Tensor, dt_b: Optional[torch.Tensor], A: torch.Tensor,
    Bf: torch.Tensor, Cf: torch.Tensor, Bb: Optional[torch.Tensor], Cb: Optional[torch.Tensor],
    D: Optional[torch.Tensor], dt_bias: Optional[torch.Tensor], dta: torch.Tensor, cum: torch.Tensor,
    dt_softplus: bool, lo: float, hi: float, shift: bool, chunk_size: int,
    out: Optional[tuple[torch.Tensor, ...]],
) -> list[torch.Tensor]:
    """The mix backward (gradients in `_MIX`'s input order); `out` = (dx, dB_f, dC_f, dB_b, dC_b, ddt_f,
    ddt_b) are tensors (any strides; ddt_f and ddt_b share theirs) the gradients are written into instead of
    new ones (the fused layer passes views of one buffer, so that no concatenation follows)."""
    dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias = _readable(dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias)
    k = _dims(x, Bf)
    batch, L, H, G = k["batch"], k["L"], k["H"], k["G"]
    Q = chunk_length(L, chunk_size)
    bidir = dt_b is not None
    nchunks = cdiv(L, Q)
    if nchunks > 1:
        states, dstates = chunk_states_and_adjoints(x, Bf, Bb, dy, Cf, Cb, dta, cum, A, Q, shift)
    else:
        states = dstates = dta
    Bb_, Cb_ = (Bb, Cb) if bidir else (Bf, Cf)
    if out is None:
        dx = torch.empty(x.shape, device=x.device, dtype=x.dtype)
        dBf, dCf = (torch.empty(Bf.shape, device=x.device, dtype=Bf.dtype) for _ in range(2))
        dBb, dCb = (torch.empty_like(dBf), torch.empty_like(dCf)) if bidir else (dBf, dCf)
        ddt_out = None
    else:
        dx, dBf, dCf, dBb, dCb, *ddt_out = out
    R = torch.empty_like(dta)
    Kp = torch.empty_like(dta)
    dD = dta  # unused without D
    if D is not None:  # a per-head D sums dD over (batch, L) in fp32; a per-token one takes it as stored
        dD = torch.empty(batch, L, H, device=x.device, dtype=torch.float32 if D.dim() == 1 else D.dtype)
    Dp = x if D is None else D
    d_strides = (0, 0, 0) if D is None or D.dim() == 1 else D.stride()
    tiles = dict(Q=Q, BLOCK_P=k["BLOCK_P"], BLOCK_N=k["BLOCK_N"], BIDIR=bidir, SHIFT=int(shift),
                 DOT_PREC=dot_precision(x.dtype))
    LS, BHL = token_rows(dta)
    sizes = (L, LS, H, G, k["P"], k["N"], BHL)
    inputs = (x, *x.stride(), dy, *dy.stride(), Bf, Cf, Bb_, Cb_, *Bf.stride())
    pair = pair_block(Q)
    dS = torch.empty((1 + bidir, batch, G, L, Q), device=x.device, dtype=torch.float32)
    S = _products_buffer(Bf, bidir, Q) if nchunks == 1 else dS  # stored for dx with one chunk only (else unused)
    R_slots, K_slots = torch.empty((2, Q // pair, *dta.shape), device=x.device, dtype=torch.float32)
    tail = tail_tile(L, Q, pair)
    per_side = L // pair if tail else Q // pair  # tile pairs of a chunk: per_side ** 2, and the tail's two programs
    pair_args = (*inputs, dta, cum, A, dS, S, *dS.stride()[:3], *S.stride()[:3], R_slots, K_slots, *sizes, per_side)
    chunk_bwd_pairs_kernel[(nchunks * per_side ** 2, batch, G)](
        *pair_args, BLOCK=pair, **tiles, STORE_S=nchunks == 1, TAIL=0, SPAN=16)
    if tail:
        chunk_bwd_pairs_kernel[(1 + bidir, batch, G)](
            *pair_args, BLOCK=pair, **tiles, STORE_S=True, TAIL=tail, SPAN=next_power_of_2(L))

    def grid(per_tile: int, middle: int) -> Callable[[dict], tuple[int, int, int]]:
        return lambda meta: (cdiv(L, meta["BLOCK"]) * per_tile, middle, batch)

    chunk_bwd_dx_kernel[grid(1, H)](
        *inputs, Dp, *d_strides, S, *S.stride()[:3], dta, cum, A, dstates, dx, *dx.stride(), K_slots, Kp, dD, *sizes,
        nchunks, pair,
        STATES=nchunks > 1, D_MODE=_d_mode(D), **tiles,
    )
    chunk_bwd_bc_kernel[grid(1 + bidir, G)](  # a program per tile and direction
        *inputs, dta, cum, A, states, dstates, dS, *dS.stride()[:3], R_slots, R, dBf, dCf, dBb, dCb,
        *dCf.stride(), *sizes, nchunks, pair, STATES=nchunks > 1, **tiles,
    )
    ddt_f, ddt_b, dA, dbias = dt_backward(dt_f, dt_b, A, dt_bias, dt_softplus, lo, hi, shift, dta, R, Kp, ddt_out)
    if D is None:
        dD_out = None
    else:
        dD_out = dD.sum((0, 1)).to(D.dtype) if D.dim() == 1 else dD
    grads = [dx, ddt_f, ddt_b if bidir else None, dA.to(A.dtype), dBf, dCf, dBb if bidir else None,
             dCb if bidir else None, dD_out, None if dt_bias is None else dbias.to(dt_bias.dtype)]
    return [x.new_empty(0) if g is None else g for g in grads]  # distinct placeholders: outputs may not alias


def _setup_context(ctx, inputs, output) -> None:
    x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dt_softplus, lo, hi, shift, chunk_size = inputs
    _, dta, cum = output
    ctx.save_for_backward(x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dta, cum)
    ctx.options = (dt_softplus, lo, hi, shift, chunk_size)


def _mix_gradients(backward: Callable, ctx, dy, _ddta, _dcum):
    """The autograd formula around `backward` (the custom op, or `_backward` itself on the eager path)."""
    saved = ctx.saved_tensors
    grads = backward(dy, *saved, *ctx.options)
    present = saved[:10]
    return tuple(None if t is None else g for t, g in zip(present, grads)) + (None,) * 5


_MIX = FusedOp("ssd_mix", _forward, _backward, _setup_context, _mix_gradients)


@_MIX.op.register_fake
def _mix_fake(x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dt_softplus, lo, hi, shift, chunk_size):
    batch, L, H, _ = x.shape
    aux = x.new_empty((1 if dt_b is None else 2, batch, H, padded_length(L)), dtype=torch.float32)
    return torch.empty_like(x, memory_format=torch.contiguous_format), aux, torch.empty_like(aux)


@_MIX.backward_op.register_fake
def _mix_backward_fake(dy, x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, D, dt_bias, dta, cum, dt_softplus, lo, hi, shift,
                       chunk_size):
    def like(t: Optional[torch.Tensor], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        if t is None:
            return x.new_empty(0)
        return t.new_empty(t.shape, dtype=dtype or t.dtype)

    dD = x.new_empty(0) if D is None else D.new_empty(D.shape)
    return [like(x), like(dt_f), like(dt_b), like(A), like(Bf), like(Cf), like(Bb), like(Cb), dD, like(dt_bias)]


def ssd_mix_triton(
    x: torch.Tensor, dt_f: torch.Tensor, dt_b: Optional[torch.Tensor], A: torch.Tensor, B_f: torch.Tensor,
    C_f: torch.Tensor, B_b: Optional[torch.Tensor], C_b: Optional[torch.Tensor], D: Optional[torch.Tensor], *,
    dt_bias: Optional[torch.Tensor], dt_softplus: bool, dt_limit: tuple[float, float], shift: bool,
    chunk_size: int | str | None,
) -> torch.Tensor:
    """QS(x) (dt_b, B_b, C_b given) or the causal SSD y = SS(x) + D x (all three None, shift False),
    on checked inputs; shapes as in `quasiseparable_mix`; chunk_size "auto": by length
    (`chunk_tuning.auto_chunk_size`), None: chosen by timing (`chunk_tuning.tuned_chunk_size`)."""
    chunk_size = resolve_chunk_size(chunk_size, x.shape[1])
    if x.dtype not in TRITON_DTYPES:
        raise TypeError(f"the triton backend takes x in float16, bfloat16 or float32, got {x.dtype}")
    B_f, C_f, B_b, C_b = (None if t is None else t.to(x.dtype) for t in (B_f, C_f, B_b, C_b))
    lo, hi = float(dt_limit[0]), float(dt_limit[1])
    inputs = (x, dt_f, dt_b, A, B_f, C_f, B_b, C_b, D, dt_bias)
    if chunk_size is None:
        def forward_backward(q: int) -> None:
            y, dta, cum = _forward(*inputs, dt_softplus, lo, hi, shift, q)
            _backward(torch.ones_like(y), *inputs, dta, cum, dt_softplus, lo, hi, shift, q)

        d_kind = None if D is None else D.dim()
        key = (x.device, x.dtype, tuple(x.shape), B_f.shape[2:], dt_b is not None, shift, d_kind)
        chunk_size = tuned_chunk_size(key, x.shape[1], forward_backward)
    y, _, _ = _MIX(*inputs, dt_softplus, lo, hi, shift, int(chunk_size))
    return y


def quasiseparable_mix_triton(
    x: torch.Tensor,
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    *,
    dt_bias: Optional[torch.Tensor] = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    shift: bool = True,
    chunk_size: int | str | None = 256,
) -> torch.Tensor:
    """y = QS(x) by the fused Triton kernels; arguments and math as in `quasiseparable_mix`.

    Accumulates in fp32 for fp16/bf16/fp32 inputs; strided views (e.g. slices of the conv
    output) are read in place. `chunk_size` only sets the chunk length of long sequences
    (`chunk_length`; "auto": by length, `auto_chunk_size`; None: the fastest of 64, 128, 256 on this
    device, timed once per shape);
    the result does not depend on it. The backward's fp32 workspace is dS, 4 x directions x batch
    x G x L x Q bytes (51.6 MB for Hydra-ViT-B's batch of 128 at G = 1; it grows with G), plus R
    and K' slots of 8 x max(1, Q / 64) x directions x batch x H x L bytes (38.7 MB there).

    Returns:
        y: (batch, L, H, P) in x's dtype, contiguous.
    """
    check_mix_inputs(
        x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D, dt_bias=dt_bias, dt_limit=dt_limit, chunk_size=chunk_size
    )
    return ssd_mix_triton(
        x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D,
        dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit, shift=shift, chunk_size=chunk_size,
    )
