"""Mixers built on Mamba-2's SSD (Hwang et al., arXiv 2407.09941, Tables 3, 5 and 10).

All share Hydra's parameterisation and defaults (`SSDMixer`). With its causal SSD matrix SS_f and
the mirror SS_b, the mixers combine them as (x: one head's values, D (H,) a learned skip, init 1):

    add         y = (SS_f + SS_b) x                                        two scans added
    add_shift   y = (shift_down(SS_f) + shift_up(SS_b)) x                  zero diagonal
    add_diag    y = (SS_f + SS_b + diag(x . w_D + D)) x                    Hydra's diagonal, no shift
    Hydra       y = (shift_down(SS_f) + shift_up(SS_b) + diag(x . w_D + D)) x   (`QuasiseparableSSD`)
    mult        y = (SS_f x) * (SS_b x) + D x                              elementwise product
    concat      y_h = (SS_f + D_h) x_h for heads h < H/2, (SS_b + D_h) x_h for h >= H/2:
                each direction on half of the channels, concatenated and mixed by out_proj
    causal      y = (SS_f + D) x, with a causal conv: Mamba-2, the paper's Mamba-ViT row

add, add_shift, add_diag and Hydra are `BidirectionalSSD`s: one `quasiseparable_mix` pass with
the shift and the diagonal switched; the others are `ScanSSD`s that call `ssd_causal_mix` (the
backward direction on flipped sequences). The dt of `concat` is one value per head (H in all), of
the others one per head and direction.
"""
from __future__ import annotations

import torch
from timm.layers import register_notrace_module

from hydra_vision.kernels import ssd_causal_mix
from hydra_vision.kernels.quasiseparable.checks import compute_dtype
from hydra_vision.kernels.quasiseparable.dt import activate_dt
from hydra_vision.kernels.quasiseparable.naive import semiseparable_matrix

from ..hydra_mixer import BidirectionalSSD, Hydra
from ..ssd_mixer import SSDMixer

__all__ = [
    "AddDiagSSD", "AddSSD", "AddShiftSSD", "BidirectionalSSD", "CausalSSD", "ConcatSSD", "MultSSD",
    "QuasiseparableSSD", "SSDMixer", "ScanSSD",
]

QuasiseparableSSD = Hydra  # the shell with shift and diagonal is Hydra itself


class AddSSD(BidirectionalSSD):
    """`add`: SS_f + SS_b, no shift, no separate diagonal (paper Table 10, "Add")."""

    shift = False
    diag = None


class AddShiftSSD(BidirectionalSSD):
    """`add_shift`: shift_down(SS_f) + shift_up(SS_b), zero diagonal (Table 10, "Add + Shift")."""

    shift = True
    diag = None


class AddDiagSSD(BidirectionalSSD):
    """`add_diag`: SS_f + SS_b + diag(x . w_D + D), no shift (Table 10, "Add + Diag")."""

    shift = False
    diag = "token"


@register_notrace_module
class ScanSSD(SSDMixer):
    """Base of the SSD mixers that run one causal scan per direction (`ssd_causal_mix`)."""

    def scan(self, x: torch.Tensor, dt: torch.Tensor, heads: slice, B: torch.Tensor, C: torch.Tensor,
             reverse: bool, skip: bool = True) -> torch.Tensor:
        """(SS + D) x (SS x without `skip`) on `heads` of x (B, L, H, P) with raw dt (B, L, H'),
        causal or (reverse) anti-causal."""
        x = x[:, :, heads]
        if reverse:
            x, dt, B, C = (t.flip(1) for t in (x, dt, B, C))
        y = ssd_causal_mix(
            x, dt, self.A()[heads], B, C, self.D[heads] if skip else None,
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


class MultSSD(ScanSSD):
    """`mult`: y = (SS_f x) * (SS_b x) + D x, the elementwise product of the two directions' scans.
    Not linear in x: `matrix` returns the pair (B, 2, H, L, L) = [SS_f, SS_b], D not included."""

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        heads = slice(0, self.nheads)
        y_f = self.scan(x, dt_f, heads, B_f, C_f, reverse=False, skip=False)
        y_b = self.scan(x, dt_b, heads, B_b, C_b, reverse=True, skip=False)
        return y_f * y_b + self.D.to(x.dtype)[:, None] * x

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B_f, C_f, B_b, C_b = self.groups(f)
        dt_f, dt_b = r.chunk(2, dim=-1)
        heads = slice(0, self.nheads)
        return torch.stack(
            [self.scan_matrix(dt_f, heads, B_f, C_f, reverse=False),
             self.scan_matrix(dt_b, heads, B_b, C_b, reverse=True)], dim=1)


class ConcatSSD(ScanSSD):
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


class CausalSSD(ScanSSD):
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
