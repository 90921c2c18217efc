"""The Hydra layer between in_proj and out_proj as one autograd.Function of the Triton launchers (eager only).

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
first, its weight gradient after). torch.compile and dispatch modes keep the separate
custom ops.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .dwconv.triton_conv import _conv_forward, conv_backward_into
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
    """z, xf, r: views of in_proj's output (or of its gradient)."""
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


class _HydraLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight, out_weight, out_bias,
                spec):
        z, xf, r = _split_projection(zxr, spec)
        xbc = _conv_forward(xf, conv_weight, conv_bias, spec.causal_conv, xf.shape[-1])
        x, Bf, Cf, Bb, Cb = _split_conv_output(xbc, spec)
        dt_f, dt_b = r.chunk(2, dim=-1)
        A = -torch.exp(A_log.float())
        diag = F.linear(x.flatten(2), fc_D_weight.to(x.dtype), D.to(x.dtype))
        y, dta, cum = mix_forward(x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, diag, dt_bias, *_mix_options(spec))
        out, rstd = _norm_forward(y.flatten(2), z, norm_weight, spec.eps)
        ctx.save_for_backward(zxr, conv_weight, conv_bias, fc_D_weight, D, A, dt_bias, norm_weight, diag, y, dta, cum,
                              rstd, out_weight)
        ctx.spec, ctx.A_log_dtype = spec, A_log.dtype
        ctx.out_bias_dtype = None if out_bias is None else out_bias.dtype  # its gradient needs no values
        if out_weight is None:
            return out
        return _project(out, out_weight, out_bias)  # out is not saved: the norm's backward writes it again

    @staticmethod
    def backward(ctx, dout):
        (zxr, conv_weight, conv_bias, fc_D_weight, D, A, dt_bias, norm_weight, diag, y, dta, cum, rstd,
         out_weight) = ctx.saved_tensors
        spec = ctx.spec
        z, xf, r = _split_projection(zxr, spec)
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
                                                                                        ctx.out_bias_dtype)
        del out  # freed before the mix's backward
        grads = mix_backward_into(dy.view(y.shape), x, dt_f, dt_b, A, Bf, Cf, Bb, Cb, diag, dt_bias, dta, cum,
                                  *_mix_options(spec), (dx, dBf, dCf, dBb, dCb, *dr.chunk(2, dim=-1)))
        dA, ddiag, ddt_bias = grads[3], grads[8], grads[9]
        # diag = x . w_D + D per token: dx += dD w_D (in place, in dxbc), dw_D = dD^T x, dD_head = sum of dD
        dfc_D, dD = token_diagonal_backward_into(dxbc[..., :spec.d_inner].view(-1, spec.d_inner),
                                                 xbc[..., :spec.d_inner].view(-1, spec.d_inner),
                                                 ddiag.reshape(-1, ddiag.shape[-1]), fc_D_weight)
        _, dconv_w, dconv_b = conv_backward_into(dxbc, xf, conv_weight, conv_bias, spec.causal_conv, xf.shape[-1],
                                                 dxf)
        dA_log = (dA * A).to(ctx.A_log_dtype)  # A = -exp(A_log)
        return (dzxr, dconv_w, None if conv_bias is None else dconv_b, dfc_D.to(fc_D_weight.dtype), dD.to(D.dtype),
                dA_log, ddt_bias.to(dt_bias.dtype), dnorm, dout_weight, dout_bias, None)


def hydra_layer_triton(zxr: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                       fc_D_weight: torch.Tensor, D: torch.Tensor, A_log: torch.Tensor, dt_bias: torch.Tensor,
                       norm_weight: torch.Tensor, spec: LayerSpec, out_weight: Optional[torch.Tensor] = None,
                       out_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """GatedRMSNorm(QS(SiLU(conv(xf))), z) from in_proj's output zxr (fp16/bf16/fp32, unit channel stride), as
    above; the parameters are the Hydra layer's (conv1d's weight (C, 1, K) and bias, fc_D's weight (H, d_inner),
    D, A_log, dt_bias (H,), the gated norm's weight (d_inner,)). Returns (B, L, d_inner) in zxr's dtype.

    With out_proj's weight (dim, d_inner) (and bias) the node ends with out_proj too and returns (B, L, dim):
    the gated norm's output is then not stored for out_proj's backward but rewritten by the norm's backward from
    the stored y and z (selective recompute's path)."""
    if zxr.stride(-1) != 1:
        zxr = zxr.contiguous()
    return _HydraLayer.apply(zxr, conv_weight.contiguous(), conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight,
                             out_weight, out_bias, spec)
