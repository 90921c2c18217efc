"""SSDMixer: the Hydra layer's parameterisation, shared by Hydra and every SSD mixer of the family.

Built on the shared shell (`MatrixMixer`) with the conv features f = [B, C] per direction (each
G x N channels, SiLU-activated with the values) and the raw features r = dt (one per head and
direction). Per head, with A = -exp(A_log) and dt = softplus(dt_raw + dt_bias) clamped to dt_limit,
the causal SSD matrix and its mirror are

    SS_f[i, j] = C_f[i] . B_f[j] exp(sum_{k=j+1}^{i} dt_f[k] A) dt_f[j]      i >= j
    SS_b[i, j] = C_b[i] . B_b[j] exp(sum_{k=i}^{j-1} dt_b[k] A) dt_b[j]      i <= j

and the mixers combine them with a skip: D (H,) per head, or x . w_D + D per token (`fc_D`).
Init (Mamba-2 / Hydra): softplus(dt_bias) log-uniform in [dt_min, dt_max] (floored at
dt_init_floor), A_log = 0 (A = -1), D = 1.
"""
from __future__ import annotations

import math
from typing import ClassVar, Optional, Tuple

import torch
from torch import nn

from hydra_vision.kernels.backend import BACKENDS

from .matrix_mixer import MatrixMixer, feature_groups, inner_heads

__all__ = ["SSDMixer"]


class SSDMixer(MatrixMixer):
    """Base of Hydra and the SSD mixers; the class attributes choose the variant.

    Args:
        dim: model width (the official `d_model`).
        d_state: N, the state size of each scan.
        d_conv: kernel of the depthwise conv over x, B, C (odd, padded to the same length, or causal).
        expand: d_inner = expand * dim.
        headdim: P, channels per head; H = d_inner / P heads.
        ngroups: G, groups sharing B and C (G divides the heads of each direction).
        dt_min, dt_max, dt_init_floor: softplus(dt_bias) starts log-uniform in [dt_min, dt_max].
        dt_limit: clamp of dt after the softplus.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
        chunk_size: chunk length of the chunked kernels: 'auto' (one chunk up to 256 tokens, 64 beyond), an
            int, or None (timed per device and shape on triton).
        backend: kernel backend ('naive' | 'reference' | 'triton' | 'auto'); None: the process default.
    """

    directions: ClassVar[int] = 2
    dt_per_head: ClassVar[int] = 2
    causal_conv: ClassVar[bool] = False
    diag: ClassVar[Optional[str]] = "head"  # 'head': D (H,); 'token': x . w_D + D (fc_D, D); None
    split_heads: ClassVar[bool] = False  # one direction per half of the heads

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
        chunk_size: int | str | None = "auto",
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        _, nheads = inner_heads(dim, expand, headdim, ngroups)
        if self.split_heads and nheads % (2 * ngroups):
            raise ValueError(f"{type(self).__name__} needs the {nheads} heads to split into two halves of whole "
                             f"groups (ngroups={ngroups})")
        super().__init__(
            dim, expand=expand, headdim=headdim, ngroups=ngroups, d_conv=d_conv,
            conv_features=2 * self.directions * ngroups * d_state, raw_features=self.dt_per_head * nheads,
            causal_conv=self.causal_conv, silu_features=True, bias=bias, conv_bias=conv_bias, backend=backend,
            device=device, dtype=dtype)
        self.d_state = d_state
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.chunk_size = chunk_size
        self.reset_parameters()

    def build_mix(self, device=None, dtype=None) -> None:
        """dt_bias, A_log (H,); D (H,) unless diag is None; fc_D (d_inner -> H) for the per-token diagonal."""
        dd = {"device": device, "dtype": dtype}
        self.dt_bias = nn.Parameter(torch.empty(self.nheads, **dd))
        self.A_log = nn.Parameter(torch.empty(self.nheads, **dd))
        self.D = nn.Parameter(torch.empty(self.nheads, **dd)) if self.diag else None
        self.fc_D = nn.Linear(self.d_inner, self.nheads, bias=False, **dd) if self.diag == "token" else None

    def reset_parameters(self) -> None:
        """dt_bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max] floored at dt_init_floor;
        A_log = 0; D = 1 (fc_D is a Linear: the model's init covers it)."""
        with torch.no_grad():
            log_dt = torch.rand_like(self.dt_bias, dtype=torch.float32)
            log_dt = log_dt * (math.log(self.dt_max) - math.log(self.dt_min)) + math.log(self.dt_min)
            dt = log_dt.exp().clamp(min=self.dt_init_floor)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.A_log.zero_()
            if self.D is not None:
                self.D.fill_(1.0)

    def A(self) -> torch.Tensor:
        """A = -exp(A_log): (H,) in fp32 (fp64 for fp64 parameters)."""
        return -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))

    def groups(self, f: torch.Tensor) -> list[torch.Tensor]:
        """The conv features split into [B_f, C_f, B_b, C_b] ([B, C] for one direction), each a
        (B, L, G, N) view of f."""
        return feature_groups(f, self.ngroups, self.d_state)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, d_state={self.d_state}, diag={self.diag}, chunk_size={self.chunk_size}, "
                f"backend={self.backend}")
