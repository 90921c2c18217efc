"""The Hydra layer between in_proj and out_proj as one autograd node of the Triton launchers.

For in_proj's output zxr (B, L, d_inner + conv_dim + 2H), conv_dim = d_inner + 4 G N:

    z | xf | r     = zxr                              r = [dt_f, dt_b]
    xbc            = SiLU(conv1d(xf))                 xbc = [x, B_f, C_f, B_b, C_b]
    y              = QS(x) with the diagonal x . w_D + D (per token, Hydra's)
    out            = GatedRMSNorm(y, z)               (B, L, d_inner) in zxr's dtype
    [out_proj(out)                                    (B, L, dim), with out_proj's parameters given]

Run as separate autograd nodes (the layer's other path), the gradients of the views z, xf, r and of x, B, C
are concatenated by autograd (four copies per block: ~3.4 ms of hydra_vit_base's 95 ms training step on an
H200) and the conv output is stored for the mix's backward. Here the backward writes dz (gated norm), dxf
(conv) and ddt (mix) into one buffer shaped like zxr and the mix's dx, dB, dC into one shaped like xbc,
adds the diagonal's x-gradient into dx in place (dx += dD w_D, in the pass over x that takes w_D's and D's
gradients: `token_diagonal`), and recomputes xbc from xf instead of storing it. The values are the separate
path's: the same launchers in the same order, except that the diagonal's backward (torch's products there) is
that one pass, whose parameter gradients are summed in fp32.
Ending with out_proj (selective recompute), it stores y and z but not out, which out_proj's weight gradient
needs: the gated norm's backward, which reads y and z anyway, writes out again (out_proj's input gradient comes
first, its weight gradient after).
Registered as the custom ops `hydra_vision::hydra_layer` / `hydra_layer_backward` with fake implementations
(`eager_path.FusedOp`), so a torch.compile graph holds the layer as one node, as eager autograd does; Inductor
then keeps what the node keeps (no conv output, no concatenations), which the separate ops' graph does not.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F

from .eager_path import FusedOp
from .dwconv.triton_conv import _conv_forward, conv_backward_into
from .host_math import padded_length
from .layouts import unit_channel_stride
from .gated_rmsnorm.triton_norm import _norm_forward, norm_backward_into
from .quasiseparable.triton_mix import _forward as mix_forward
from .quasiseparable.triton_mix import backward_into as mix_backward_into
from .token_diagonal import token_diagonal_backward_into

__all__ = ["LayerSpec", "hydra_layer_triton"]


class LayerSpec(NamedTuple):
    """The sizes and options of one Hydra layer (`Hydra`'s arguments)."""

    d_inner: int
    headdim: int
    ngroups: int
    d_state: int
    causal_conv: bool
    dt_limit: tuple[float, float]
    shift: bool
    chunk_size: int
    eps: float


def _split_projection(zxr: torch.Tensor, spec: LayerSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z, xf, r: views of in_proj's output (or of its gradient); its rows may have any stride, its channels need
    unit stride (`layouts.unit_channel_stride`)."""
    H = spec.d_inner // spec.headdim
    conv_dim = zxr.shape[-1] - spec.d_inner - 2 * H
    return zxr.split([spec.d_inner, conv_dim, 2 * H], dim=-1)


def _split_conv_output(xbc: torch.Tensor, spec: LayerSpec) -> list[torch.Tensor]:
    """x (B, L, H, P) and B_f, C_f, B_b, C_b (B, L, G, N): views of the conv output (or of its gradient)."""
    x, f = xbc.split([spec.d_inner, xbc.shape[-1] - spec.d_inner], dim=-1)
    return [x.unflatten(-1, (-1, spec.headdim)), *f.unflatten(-1, (4, spec.ngroups, spec.d_state)).unbind(-3)]


def _mix_options(spec: LayerSpec) -> tuple:
    return True, float(spec.dt_limit[0]), float(spec.dt_limit[1]), spec.shift, spec.chunk_size  # softplus on


def _project(out: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """out_proj: out W^T + b in out's dtype (as autocast's linear takes the gated norm's output)."""
    return F.linear(out, weight.to(out.dtype), None if bias is None else bias.to(out.dtype))


def _project_weight_grads(dres: torch.Tensor, out: torch.Tensor, weight: torch.Tensor,
                          bias_dtype: Optional[torch.dtype]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """`_project`'s parameter gradients for its output gradient dres (B, L, dim) in out's dtype: dW = dres^T out,
    returned in W's dtype, and db = sum of dres in the bias's dtype (None without a bias)."""
    dres2 = dres.reshape(-1, dres.shape[-1])
    dweight = (dres2.t() @ out.reshape(-1, out.shape[-1])).to(weight.dtype)
    return dweight, None if bias_dtype is None else dres2.sum(0).to(bias_dtype)


def _layer_forward(zxr: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                   fc_D_weight: torch.Tensor, D: torch.Tensor, A_log: torch.Tensor, dt_bias: torch.Tensor,
                   norm_weight: torch.Tensor, out_weight: Optional[torch.Tensor], out_bias: Optional[torch.Tensor],
                   d_inner: int, headdim: int, ngroups: int, d_state: int, causal_conv: bool, dt_lo: float,
                   dt_hi: float, shift: bool, chunk_size: int, eps: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the layer's output, then what its backward keeps: diag (B, L, H), y (B, L, H, P), dta and cum
    (2, B, H, padded L) fp32, the norm's rstd (B L,) fp32). The LayerSpec's fields follow the tensors,
    dt_limit as (dt_lo, dt_hi)."""
    spec = LayerSpec(d_inner, headdim, ngroups, d_state, causal_conv, (dt_lo, dt_hi), shift, chunk_size, eps)
    z, xf, r = _split_projection(unit_channel_stride(zxr), spec)
    xbc = _conv_forward(xf, conv_weight, conv_bias, spec.causal_conv, xf.shape[-1])
    x, Bf, Cf, Bb, Cb = _split_conv_output(xbc, spec)
    dt_f, dt_b = r.chunk(2, dim=-1)
    diag = F.linear(x.flatten(2), fc_D_weight.to(x.dtype), D.to(x.dtype))
    y, dta, cum = mix_forward(x, dt_f, dt_b, _decay_rates(A_log), Bf, Cf, Bb, Cb, diag, dt_bias, *_mix_options(spec))
    out, rstd = _norm_forward(y.flatten(2), z, norm_weight, spec.eps)
    if out_weight is not None:  # out is not kept: the norm's backward writes it again
        out = _project(out, out_weight, out_bias)
    return out, diag, y, dta, cum, rstd


def _decay_rates(A_log: torch.Tensor) -> torch.Tensor:
    """A = -exp(A_log) (H,) in fp32."""
    return -torch.exp(A_log.float())


def _layer_setup_context(ctx, inputs, output) -> None:
    _, diag, y, dta, cum, rstd = output
    out_bias = inputs[9]  # its gradient needs only its dtype
    ctx.save_for_backward(*inputs[:9], diag, y, dta, cum, rstd)
    ctx.options = (None if out_bias is None else out_bias.dtype, *inputs[10:])


def _layer_backward(dout: torch.Tensor, zxr: torch.Tensor, conv_weight: torch.Tensor,
                    conv_bias: Optional[torch.Tensor], fc_D_weight: torch.Tensor, D: torch.Tensor,
                    A_log: torch.Tensor, dt_bias: torch.Tensor, norm_weight: torch.Tensor,
                    out_weight: Optional[torch.Tensor], diag: torch.Tensor, y: torch.Tensor, dta: torch.Tensor,
                    cum: torch.Tensor, rstd: torch.Tensor, out_bias_dtype: Optional[torch.dtype], d_inner: int,
                    headdim: int, ngroups: int, d_state: int, causal_conv: bool, dt_lo: float, dt_hi: float,
                    shift: bool, chunk_size: int, eps: float) -> list[torch.Tensor]:
    """The gradients of `_layer_forward`'s ten tensor inputs, each in its input's dtype (out_proj's bias's:
    out_bias_dtype; an empty tensor for an absent input), from the output's gradient dout and what the forward
    kept."""
    spec = LayerSpec(d_inner, headdim, ngroups, d_state, causal_conv, (dt_lo, dt_hi), shift, chunk_size, eps)
    z, xf, r = _split_projection(unit_channel_stride(zxr), spec)
    A = _decay_rates(A_log)
    dres = None
    if out_weight is not None:  # dout is out_proj's output gradient; out is rebuilt by the norm's backward
        dres = dout.to(y.dtype)  # cast once, for both of out_proj's products
        dout = dres @ out_weight.to(y.dtype)
    xbc = _conv_forward(xf, conv_weight, conv_bias, spec.causal_conv, xf.shape[-1])  # recomputed, not stored
    x, Bf, Cf, Bb, Cb = _split_conv_output(xbc, spec)
    dt_f, dt_b = r.chunk(2, dim=-1)
    dzxr = torch.empty(zxr.shape, dtype=zxr.dtype, device=zxr.device)
    dz, dxf, dr = _split_projection(dzxr, spec)
    dxbc = torch.empty(xbc.shape, dtype=xbc.dtype, device=xbc.device)
    dx, dBf, dCf, dBb, dCb = _split_conv_output(dxbc, spec)
    out = None if dres is None else torch.empty(y.flatten(2).shape, dtype=y.dtype, device=y.device)
    dy, _, dnorm = norm_backward_into(dout.contiguous(), y.flatten(2), z, norm_weight, rstd, dz, out)
    dout_weight, dout_bias = (None, None) if out is None else _project_weight_grads(dres, out, out_weight,
                                                                                    out_bias_dtype)
    del out  # freed before the mix's backward
    mix_grads = mix_backward_into(dy.view(y.shape), x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, diag, dt_bias, dta, cum,
                                  *_mix_options(spec), (dx, dBf, dCf, dBb, dCb, *dr.chunk(2, dim=-1)))
    dA, ddiag, ddt_bias = mix_grads[3], mix_grads[8], mix_grads[9]
    # diag = x . w_D + D per token: dx += dD w_D (in place, in dxbc), dw_D = dD^T x, dD_head = sum of dD (the two
    # views of one buffer: dD is copied, as a custom op's outputs may not alias)
    dfc_D, dD = token_diagonal_backward_into(dxbc[..., :spec.d_inner].view(-1, spec.d_inner),
                                             xbc[..., :spec.d_inner].view(-1, spec.d_inner),
                                             ddiag.reshape(-1, ddiag.shape[-1]), fc_D_weight)
    _, dconv_w, dconv_b = conv_backward_into(dxbc, xf, conv_weight, conv_bias, spec.causal_conv, xf.shape[-1], dxf)
    dA_log = (dA * A).to(A_log.dtype)  # A = -exp(A_log)
    grads = [dzxr, dconv_w, dconv_b if conv_bias is not None else None, dfc_D.to(fc_D_weight.dtype),
             dD.to(D.dtype, copy=True), dA_log, ddt_bias.to(dt_bias.dtype), dnorm, dout_weight, dout_bias]
    return [zxr.new_empty(0) if g is None else g for g in grads]  # distinct placeholders: outputs may not alias


def _layer_gradients(backward: Callable, ctx, dout, *_kept):
    """The autograd formula around `backward` (the custom op, or `_layer_backward` itself on the eager path)."""
    saved = ctx.saved_tensors
    grads = backward(dout, *saved, *ctx.options)
    present = (*saved[:9], ctx.options[0])  # the inputs, out_proj's bias by its dtype
    return tuple(None if t is None else g for t, g in zip(present, grads)) + (None,) * (len(ctx.options) - 1)


# flexible layout (FusedOp's tag): Inductor may pad in_proj's output rows (3,376 bf16 channels in hydra_vit_base are not
# a multiple of 128 bytes); eager's exact strides, the custom ops' default, copied zxr twice a training step per block
_LAYER = FusedOp("hydra_layer", _layer_forward, _layer_backward, _layer_setup_context, _layer_gradients)


@_LAYER.op.register_fake
def _layer_fake(zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight, out_weight, out_bias,
                d_inner, headdim, ngroups, d_state, causal_conv, dt_lo, dt_hi, shift, chunk_size, eps):
    batch, L, _ = zxr.shape
    H = d_inner // headdim
    width = d_inner if out_weight is None else out_weight.shape[0]
    kept = zxr.new_empty((2, batch, H, padded_length(L)), dtype=torch.float32)
    return (zxr.new_empty((batch, L, width)), zxr.new_empty((batch, L, H)), zxr.new_empty((batch, L, H, headdim)),
            kept, torch.empty_like(kept), zxr.new_empty(batch * L, dtype=torch.float32))


@_LAYER.backward_op.register_fake
def _layer_backward_fake(dout, zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight, out_weight,
                         diag, y, dta, cum, rstd, out_bias_dtype, *spec):
    def like(t: Optional[torch.Tensor]) -> torch.Tensor:
        return zxr.new_empty(0) if t is None else t.new_empty(t.shape)

    bias = zxr.new_empty(0) if out_bias_dtype is None else zxr.new_empty(out_weight.shape[0], dtype=out_bias_dtype)
    return [*(like(t) for t in (zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight,
                                out_weight)), bias]


def hydra_layer_triton(zxr: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                       fc_D_weight: torch.Tensor, D: torch.Tensor, A_log: torch.Tensor, dt_bias: torch.Tensor,
                       norm_weight: torch.Tensor, spec: LayerSpec, out_weight: Optional[torch.Tensor] = None,
                       out_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """GatedRMSNorm(QS(SiLU(conv(xf))), z) from in_proj's output zxr (fp16/bf16/fp32, any strides), as
    above; the parameters are the Hydra layer's (conv1d's weight (C, 1, K) and bias, fc_D's weight (H, d_inner),
    D, A_log, dt_bias (H,), the gated norm's weight (d_inner,)). Returns (B, L, d_inner) in zxr's dtype.

    With out_proj's weight (dim, d_inner) (and bias) the node ends with out_proj too and returns (B, L, dim):
    the gated norm's output is then not stored for out_proj's backward but rewritten by the norm's backward from
    the stored y and z (selective recompute's path)."""
    return _LAYER(zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight, out_weight,
                  out_bias, spec.d_inner, spec.headdim, spec.ngroups, spec.d_state, spec.causal_conv,
                  float(spec.dt_limit[0]), float(spec.dt_limit[1]), spec.shift, spec.chunk_size, float(spec.eps))[0]
