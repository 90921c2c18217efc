"""Hydra: the bidirectional quasiseparable sequence mixer (Hwang et al., arXiv 2407.09941).

For tokens u (B, L, dim), with d_inner = expand * dim split into H = d_inner / P heads:

    z | xBC | dt      = in_proj(u)             xBC = [x, B_f, C_f, B_b, C_b], dt = [dt_f, dt_b]
    x, B_f, C_f, B_b, C_b = SiLU(conv1d(xBC))  depthwise, kernel d_conv, "same" length
    y   = QS(x) with per-token diagonal x . fc_D + D   (hydra_vision.kernels.quasiseparable_mix)
    out = out_proj(GatedRMSNorm(y, z))

Parameter names and shapes equal the official Hydra layer's, so its state dicts load as they are.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_function
from torch import nn

from hydra_vision.kernels import quasiseparable_mix
from hydra_vision.kernels.backend import BACKENDS

from .gated_rmsnorm import GatedRMSNorm

__all__ = ["Hydra"]


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
    D: torch.Tensor,
    dt_bias: torch.Tensor,
    dt_limit: Tuple[float, float],
    chunk_size: int,
    backend: Optional[str],
) -> torch.Tensor:
    """`quasiseparable_mix` with softplus(dt + dt_bias), kept opaque to TorchScript and FX.

    FX autowraps only names without a leading underscore, hence the public name.
    """
    return quasiseparable_mix(
        x, dt_fwd, dt_bwd, A, B_fwd, C_fwd, B_bwd, C_bwd, D,
        dt_bias=dt_bias, dt_softplus=True, dt_limit=dt_limit, chunk_size=chunk_size, backend=backend,
    )


class Hydra(nn.Module):
    """The Hydra mixer with the official layer's parameterisation and defaults.

    Args:
        dim: model width (the official `d_model`).
        d_state: N, the state size of each scan.
        d_conv: kernel of the depthwise conv over x, B, C (odd, padded to the same length).
        expand: d_inner = expand * dim.
        headdim: P, channels per head; H = d_inner / P heads.
        ngroups: G, groups sharing B and C (G divides H).
        dt_min, dt_max, dt_init_floor: softplus(dt_bias) starts log-uniform in [dt_min, dt_max].
        dt_limit: clamp of dt after the softplus.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
        chunk_size: chunk length of the chunked kernels.
        backend: kernel backend ('naive' | 'reference' | 'triton' | 'auto'); None: the process default.
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 64,
        d_conv: int = 7,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_limit: Tuple[float, float] = (0.0, math.inf),
        bias: bool = False,
        conv_bias: bool = True,
        chunk_size: int = 256,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        d_inner = expand * dim
        if d_inner % headdim:
            raise ValueError(f"d_inner = expand * dim = {d_inner} is not divisible by headdim {headdim}")
        nheads = d_inner // headdim
        if nheads % ngroups:
            raise ValueError(f"the number of heads {nheads} is not divisible by ngroups {ngroups}")
        if d_conv % 2 != 1:
            raise ValueError(f"d_conv must be odd to keep the sequence length, got {d_conv}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.d_inner = d_inner
        self.d_state = d_state
        self.headdim = headdim
        self.nheads = nheads
        self.ngroups = ngroups
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.chunk_size = chunk_size
        self.backend = backend

        bc_dim = ngroups * d_state
        conv_dim = d_inner + 4 * bc_dim
        self.in_proj = nn.Linear(dim, d_inner + conv_dim + 2 * nheads, bias=bias, **dd)
        self.conv1d = nn.Conv1d(
            conv_dim, conv_dim, d_conv, padding=d_conv // 2, groups=conv_dim, bias=conv_bias, **dd)
        self.dt_bias = nn.Parameter(torch.empty(nheads, **dd))
        self.A_log = nn.Parameter(torch.empty(nheads, **dd))
        self.D = nn.Parameter(torch.empty(nheads, **dd))
        self.fc_D = nn.Linear(d_inner, nheads, bias=False, **dd)
        self.norm = GatedRMSNorm(d_inner, eps=1e-5, **dd)
        self.out_proj = nn.Linear(d_inner, dim, bias=bias, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max] floored at dt_init_floor; A_log = 0; D = 1."""
        with torch.no_grad():
            log_dt = torch.rand_like(self.dt_bias, dtype=torch.float32)
            log_dt = log_dt * (math.log(self.dt_max) - math.log(self.dt_min)) + math.log(self.dt_min)
            dt = log_dt.exp().clamp(min=self.dt_init_floor)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.A_log.zero_()
            self.D.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, L, dim). Returns: (B, L, dim) in x's dtype."""
        H, G, N = self.nheads, self.ngroups, self.d_state
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.d_inner + 4 * G * N, 2 * H], dim=-1)
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))).transpose(1, 2)
        u, B_f, C_f, B_b, C_b = xbc.split([self.d_inner, G * N, G * N, G * N, G * N], dim=-1)
        diag = F.linear(u, self.fc_D.weight, self.D)
        y = mix_sequence(
            u.unflatten(-1, (H, self.headdim)),
            dt[..., :H],
            dt[..., H:],
            -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32))),
            B_f.unflatten(-1, (G, N)),
            C_f.unflatten(-1, (G, N)),
            B_b.unflatten(-1, (G, N)),
            C_b.unflatten(-1, (G, N)),
            diag,
            self.dt_bias,
            self.dt_limit,
            self.chunk_size,
            self.backend,
        )
        return self.out_proj(self.norm(y.flatten(2), z))

    def extra_repr(self) -> str:
        return (f"d_inner={self.d_inner}, d_state={self.d_state}, nheads={self.nheads}, headdim={self.headdim}, "
                f"ngroups={self.ngroups}, chunk_size={self.chunk_size}, backend={self.backend}")
