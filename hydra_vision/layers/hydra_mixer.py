"""Hydra: the bidirectional quasiseparable sequence mixer (Hwang et al., arXiv 2407.09941).

For tokens u (B, L, dim), with d_inner = expand * dim split into H = d_inner / P heads:

    z | xBC | dt      = in_proj(u)             xBC = [x, B_f, C_f, B_b, C_b], dt = [dt_f, dt_b]
    x, B_f, C_f, B_b, C_b = SiLU(conv1d(xBC))  depthwise, kernel d_conv, "same" length
    y   = QS(x) with per-token diagonal x . fc_D + D   (hydra_vision.kernels.quasiseparable_mix)
    out = out_proj(GatedRMSNorm(y, z))

that is, per head, y = (shift_down(SS_f) + shift_up(SS_b) + diag(x . w_D + D)) x with the SSD
matrices of `SSDMixer`, in one `quasiseparable_mix` pass. `BidirectionalSSD` is that pass with the
shift and the diagonal as switches (the paper's Table 10 ablations subclass it). Parameter names,
shapes and order equal the official Hydra layer's, so its state dicts load as they are.
"""
from typing import ClassVar, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_function

from hydra_vision.kernels import quasiseparable_mix
from hydra_vision.kernels.backend import use_triton
from hydra_vision.kernels.eager_path import dispatcher_needed
from hydra_vision.kernels.quasiseparable.chunk_tuning import resolve_chunk_size
from hydra_vision.kernels.quasiseparable.naive import quasiseparable_matrix

from .ssd_mixer import SSDMixer

__all__ = ["BidirectionalSSD", "Hydra"]


@register_notrace_function
@torch.jit.ignore
def mix_sequence(
    x: torch.Tensor,
    dt_fwd: torch.Tensor,
    dt_bwd: torch.Tensor,
    A: torch.Tensor,
    B_fwd: torch.Tensor,
    C_fwd: torch.Tensor,
    B_bwd: torch.Tensor,
    C_bwd: torch.Tensor,
    D: Optional[torch.Tensor],
    dt_bias: torch.Tensor,
    dt_limit: Tuple[float, float],
    shift: bool,
    chunk_size: Optional[Union[int, str]],
    backend: Optional[str],
) -> torch.Tensor:
    """`quasiseparable_mix` with softplus(dt + dt_bias), kept opaque to TorchScript and FX.

    FX autowraps only names without a leading underscore, hence the public name.
    """
    return quasiseparable_mix(
        x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D,
        dt_bias=dt_bias, dt_softplus=True, dt_limit=dt_limit, shift=shift, chunk_size=chunk_size, backend=backend,
    )


torch.fx.wrap("mix_sequence")  # a leaf in every FX trace, also when the tracing enters from the shell's forward


@register_notrace_function
@torch.jit.ignore
def fused_hydra_layer(zxr: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                      fc_D_weight: torch.Tensor, D: torch.Tensor, A_log: torch.Tensor, dt_bias: torch.Tensor,
                      norm_weight: torch.Tensor, spec: Tuple, out_weight: Optional[torch.Tensor],
                      out_bias: Optional[torch.Tensor]) -> torch.Tensor:
    """`hydra_vision.kernels.fused_layer.hydra_layer_triton` (imported on first use: it needs Triton)."""
    from hydra_vision.kernels.fused_layer import LayerSpec, hydra_layer_triton

    return hydra_layer_triton(zxr, conv_weight, conv_bias, fc_D_weight, D, A_log, dt_bias, norm_weight,
                              LayerSpec(*spec), out_weight, out_bias)


torch.fx.wrap("fused_hydra_layer")


class BidirectionalSSD(SSDMixer):
    """The two SSD scans added in one `quasiseparable_mix` pass: y = (SS_f' + SS_b' + Delta) x, where
    `shift` moves SS_f down and SS_b up by one position (zero diagonal) and `diag` = 'token' adds
    Delta = diag(x . w_D + D) (None: no diagonal term). Arguments as `SSDMixer`."""

    __constants__ = ["shift"]
    shift: ClassVar[bool] = False
    diag = None
    fuse_layer = True  # the fused layer where it applies (`fuses_layer`: eager or compiled); False: the separate ops

    @torch.jit.unused
    def fuses_layer(self, u: torch.Tensor) -> bool:
        """Triton calls of a mixer with the per-token diagonal (Hydra's) at a fixed chunk length, in plain eager
        autograd or under torch.compile: then conv, mix and gated norm run as one autograd node (one custom op
        in a compiled graph; `hydra_vision.kernels.fused_layer`: no concatenated gradients, the conv output
        recomputed; with selective recompute out_proj joins it and the norm output is recomputed too). Other
        dispatch modes, TorchScript tracing and meta tensors see the separate ops."""
        return (self.fuse_layer and isinstance(u, torch.Tensor) and self.fc_D is not None
                and self.chunk_size is not None and use_triton(self.backend, u)
                and (torch.compiler.is_compiling() or not dispatcher_needed(u)))

    @torch.jit.unused
    def fused_layer(self, zxr: torch.Tensor, project: bool = False) -> torch.Tensor:
        spec = (self.d_inner, self.headdim, self.ngroups, self.d_state, self.causal_conv, self.dt_limit, self.shift,
                int(resolve_chunk_size(self.chunk_size, zxr.shape[1])), self.norm.eps)
        out_weight, out_bias = (self.out_proj.weight, self.out_proj.bias) if project else (None, None)
        return fused_hydra_layer(zxr, self.conv1d.weight, self.conv1d.bias, self.fc_D.weight, self.D, self.A_log,
                                 self.dt_bias, self.norm.weight, spec, out_weight, out_bias)

    def _diag(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """x . w_D + D: (B, L, H) for values x (B, L, H, P), or None without the diagonal term."""
        if self.fc_D is None:
            return None
        return F.linear(x.flatten(2), self.fc_D.weight, self.D)

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        return mix_sequence(
            x, dt_f, dt_b, self.A(), B_f, C_f, B_b, C_b, self._diag(x),
            self.dt_bias, self.dt_limit, self.shift, self.chunk_size, self.backend)

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        return quasiseparable_matrix(
            dt_f, dt_b, self.A(), B_f, C_f, B_b, C_b, self._diag(x),
            dt_bias=self.dt_bias, dt_softplus=True, dt_limit=self.dt_limit, shift=self.shift)


class Hydra(BidirectionalSSD):
    """The Hydra mixer with the official layer's parameterisation and defaults (the arguments of
    `SSDMixer`: dim, d_state, d_conv, expand, headdim, ngroups, dt_min, dt_max, dt_init_floor,
    dt_limit, bias, conv_bias, chunk_size, backend): the shift and the per-token diagonal.
    `materialize(u)` returns its matrix QS (B, H, L, L)."""

    shift = True
    diag = "token"
