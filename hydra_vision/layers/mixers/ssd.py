"""Mixers built on Mamba-2's SSD (Hwang et al., arXiv 2407.09941, Tables 3, 5 and 10).

All share Hydra's parameterisation and defaults: d_state N, G groups of (B, C) per direction,
per-head dt_bias (dt = softplus(dt_raw + dt_bias), init log-uniform in [dt_min, dt_max]) and
A = -exp(A_log) (init -1). Per head, with a_t = dt_t A, the causal SSD matrix and its mirror are

    SS_f[i, j] = C_f[i] . B_f[j] exp(sum_{k=j+1}^{i} a_f[k]) dt_f[j]      i >= j
    SS_b[i, j] = C_b[i] . B_b[j] exp(sum_{k=i}^{j-1} a_b[k]) dt_b[j]      i <= j

and the mixers combine them as (x: one head's values, D (H,) a learned skip, init 1):

    add         y = (SS_f + SS_b) x                                        two scans added
    add_shift   y = (shift_down(SS_f) + shift_up(SS_b)) x                  zero diagonal
    add_diag    y = (SS_f + SS_b + diag(x . w_D + D)) x                    Hydra's diagonal, no shift
    Hydra       y = (shift_down(SS_f) + shift_up(SS_b) + diag(x . w_D + D)) x   (`QuasiseparableSSD`)
    mult        y = (SS_f x) * (SS_b x) + D x                              elementwise product
    concat      y_h = (SS_f + D_h) x_h for heads h < H/2, (SS_b + D_h) x_h for h >= H/2:
                each direction on half of the channels, concatenated and mixed by out_proj
    causal      y = (SS_f + D) x, with a causal conv: Mamba-2, the paper's Mamba-ViT row

add, add_shift, add_diag and Hydra are one `quasiseparable_mix` pass; the others call
`ssd_causal_mix` (the backward direction on flipped sequences). The dt of `concat` is one value
per head (H in all), of the others one per head and direction.
"""
from __future__ import annotations

import math
from typing import ClassVar, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from hydra_vision.kernels import quasiseparable_mix, ssd_causal_mix
from hydra_vision.kernels.backend import BACKENDS
from hydra_vision.kernels.quasiseparable.dt import activate_dt
from hydra_vision.kernels.quasiseparable.naive import quasiseparable_matrix, semiseparable_matrix

from .base import MatrixMixer, compute_dtype, inner_heads

__all__ = [
    "AddDiagSSD", "AddSSD", "AddShiftSSD", "BidirectionalSSD", "CausalSSD", "ConcatSSD", "MultSSD",
    "QuasiseparableSSD", "SSDMixer",
]


class SSDMixer(MatrixMixer):
    """Base of the SSD mixers; the class attributes choose the variant, the arguments are `Hydra`'s.

    Args:
        dim: model width.
        d_state: N, the state size of each scan.
        d_conv: kernel of the depthwise conv over x, B, C.
        expand: d_inner = expand * dim.
        headdim: P, channels per head; H = d_inner / P heads.
        ngroups: G, groups sharing B and C (G divides the heads of each direction).
        dt_min, dt_max, dt_init_floor: softplus(dt_bias) starts log-uniform in [dt_min, dt_max].
        dt_limit: clamp of dt after the softplus.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
        chunk_size: chunk length of the chunked kernels.
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
        chunk_size: int = 256,
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
            causal_conv=self.causal_conv, bias=bias, conv_bias=conv_bias, device=device, dtype=dtype)
        dd = {"device": device, "dtype": dtype}
        self.d_state = d_state
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.chunk_size = chunk_size
        self.backend = backend
        self.dt_bias = nn.Parameter(torch.empty(nheads, **dd))
        self.A_log = nn.Parameter(torch.empty(nheads, **dd))
        self.D = nn.Parameter(torch.empty(nheads, **dd)) if self.diag else None
        self.fc_D = nn.Linear(self.d_inner, nheads, bias=False, **dd) if self.diag == "token" else None
        self.reset_parameters()

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
        return -torch.exp(self.A_log.to(compute_dtype(self.A_log)))

    def groups(self, f: torch.Tensor) -> list[torch.Tensor]:
        """SiLU(f) split into the (B, C) tensors of each direction, each (B, L, G, N)."""
        return [t.unflatten(-1, (self.ngroups, self.d_state))
                for t in F.silu(f).split(self.ngroups * self.d_state, dim=-1)]

    def scan(self, x: torch.Tensor, dt: torch.Tensor, heads: slice, B: torch.Tensor, C: torch.Tensor,
             reverse: bool) -> torch.Tensor:
        """(SS + D) x on `heads` of x (B, L, H, P) with raw dt (B, L, H'), causal or (reverse) anti-causal."""
        x = x[:, :, heads]
        if reverse:
            x, dt, B, C = (t.flip(1) for t in (x, dt, B, C))
        y = ssd_causal_mix(
            x, dt, self.A()[heads], B, C, None if self.D is None else self.D[heads],
            dt_bias=self.dt_bias[heads], dt_softplus=True, dt_limit=self.dt_limit,
            chunk_size=self.chunk_size, backend=self.backend)
        return y.flip(1) if reverse else y

    def scan_matrix(self, dt: torch.Tensor, heads: slice, B: torch.Tensor, C: torch.Tensor,
                    reverse: bool) -> torch.Tensor:
        """SS_f (reverse=False) or SS_b (reverse=True) of `heads`: (B, H', L, L), without D."""
        dtype = compute_dtype(dt)
        if reverse:
            dt, B, C = (t.flip(1) for t in (dt, B, C))
        dt = activate_dt(dt, self.dt_bias[heads], True, self.dt_limit, dtype)
        M = semiseparable_matrix(dt, self.A()[heads], B.to(dtype), C.to(dtype))
        return M.flip(-1, -2) if reverse else M

    def with_skip(self, M: torch.Tensor, heads: slice) -> torch.Tensor:
        """M + diag(D) on `heads` for M (B, H', L, L)."""
        return M + torch.diag_embed(self.D[heads].to(M.dtype)[:, None].expand(-1, M.shape[-1]))

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, d_state={self.d_state}, diag={self.diag}, chunk_size={self.chunk_size}, "
                f"backend={self.backend}")


class BidirectionalSSD(SSDMixer):
    """The two scans added in one `quasiseparable_mix` pass; `shift` and `diag` choose the ablation.
    Parameter names and shapes equal the `Hydra` layer's (fc_D and D only with the diagonal)."""

    shift: ClassVar[bool] = False

    def _diag(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.fc_D is None else F.linear(x.flatten(2), self.fc_D.weight, self.D)

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        return quasiseparable_mix(
            x, dt_f, dt_b, self.A(), B_f, C_f, B_b, C_b, self._diag(x),
            dt_bias=self.dt_bias, dt_softplus=True, dt_limit=self.dt_limit, shift=self.shift,
            chunk_size=self.chunk_size, backend=self.backend)

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        return quasiseparable_matrix(
            dt_f, dt_b, self.A(), B_f, C_f, B_b, C_b, self._diag(x),
            dt_bias=self.dt_bias, dt_softplus=True, dt_limit=self.dt_limit, shift=self.shift)


class AddSSD(BidirectionalSSD):
    """`add`: SS_f + SS_b, no shift, no separate diagonal (paper Table 10, "Add")."""

    diag = None


class AddShiftSSD(BidirectionalSSD):
    """`add_shift`: shift_down(SS_f) + shift_up(SS_b), zero diagonal (Table 10, "Add + Shift")."""

    shift = True
    diag = None


class AddDiagSSD(BidirectionalSSD):
    """`add_diag`: SS_f + SS_b + diag(x . w_D + D), no shift (Table 10, "Add + Diag")."""

    diag = "token"


class QuasiseparableSSD(BidirectionalSSD):
    """Hydra's quasiseparable matrix in the shared shell: the same state dict and output as `Hydra`
    (the registry's `quasiseparable` mixer), plus `materialize`."""

    shift = True
    diag = "token"


class MultSSD(SSDMixer):
    """`mult`: y = (SS_f x) * (SS_b x) + D x, the elementwise product of the two directions' scans.
    Not linear in x: `matrix` returns the pair (B, 2, H, L, L) = [SS_f, SS_b], D not included."""

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        y_f = ssd_causal_mix(x, dt_f, self.A(), B_f, C_f, dt_bias=self.dt_bias, dt_softplus=True,
                             dt_limit=self.dt_limit, chunk_size=self.chunk_size, backend=self.backend)
        y_b = ssd_causal_mix(x.flip(1), dt_b.flip(1), self.A(), B_b.flip(1), C_b.flip(1), dt_bias=self.dt_bias,
                             dt_softplus=True, dt_limit=self.dt_limit, chunk_size=self.chunk_size,
                             backend=self.backend).flip(1)
        return y_f * y_b + self.D.to(x.dtype)[:, None] * x

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        heads = slice(0, self.nheads)
        return torch.stack(
            [self.scan_matrix(dt_f, heads, B_f, C_f, reverse=False),
             self.scan_matrix(dt_b, heads, B_b, C_b, reverse=True)], dim=1)


class ConcatSSD(SSDMixer):
    """`concat`: the forward scan on heads [0, H/2), the backward scan on heads [H/2, H), each with
    its own (B, C) groups and per-head dt and D; out_proj mixes the concatenated halves. H / 2 must
    be a multiple of ngroups."""

    dt_per_head = 1
    split_heads = True

    def _halves(self) -> tuple[slice, slice]:
        return slice(0, self.nheads // 2), slice(self.nheads // 2, self.nheads)

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        fwd, bwd = self._halves()
        return torch.cat([self.scan(x, r[..., fwd], fwd, B_f, C_f, reverse=False),
                          self.scan(x, r[..., bwd], bwd, B_b, C_b, reverse=True)], dim=2)

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        fwd, bwd = self._halves()
        return torch.cat([self.with_skip(self.scan_matrix(r[..., fwd], fwd, B_f, C_f, reverse=False), fwd),
                          self.with_skip(self.scan_matrix(r[..., bwd], bwd, B_b, C_b, reverse=True), bwd)], dim=1)


class CausalSSD(SSDMixer):
    """`causal`: Mamba-2, y = (SS_f + D) x with a causal conv, so token i only sees tokens <= i."""

    directions = 1
    dt_per_head = 1
    causal_conv = True

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B, C = self.groups(f)
        return self.scan(x, r, slice(0, self.nheads), B, C, reverse=False)

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        heads = slice(0, self.nheads)
        B, C = self.groups(f)
        return self.with_skip(self.scan_matrix(r, heads, B, C, reverse=False), heads)
