"""The shell every matrix mixer shares: Hydra's projections around a swappable L x L matrix.

For tokens u (B, L, dim), with d_inner = expand * dim split into H = d_inner / P heads:

    z | xf | r = in_proj(u)                   xf = [x, f]: values and conv features, r: raw features
    x, f       = conv1d(xf)                   depthwise, kernel d_conv, "same" length (or causal)
    y          = mix(SiLU(x), f, r)           per head h: y[:, :, h] = M_h(f, r) @ x[:, :, h]
    out        = out_proj(GatedRMSNorm(y, z))

Only `mix` (and the matrix M it applies) differs between mixers; the parameter names equal the
Hydra layer's (`in_proj`, `conv1d`, `norm`, `out_proj`). This is the paper's matrix-mixer set-up
(Hwang et al., arXiv 2407.09941, section 3 and Table 2): one block, only the matrix class changes.
Structure shared by the heads of a group (G = ngroups groups) lives in the features f and in
data-independent parameters; per-head terms (the skip D) are added on top.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_function, register_notrace_module
from torch import nn

from ..gated_rmsnorm import GatedRMSNorm

__all__ = ["GroupMatrixMixer", "MatrixMixer", "check_seq_len", "compute_dtype", "expand_groups", "inner_heads",
           "need_max_seq_len"]


def inner_heads(dim: int, expand: int, headdim: int, ngroups: int = 1) -> tuple[int, int]:
    """(d_inner, H) for width `dim`; ValueError unless headdim divides d_inner and ngroups divides H."""
    d_inner = expand * dim
    if d_inner % headdim:
        raise ValueError(f"d_inner = expand * dim = {d_inner} is not divisible by headdim {headdim}")
    nheads = d_inner // headdim
    if nheads % ngroups:
        raise ValueError(f"the number of heads {nheads} is not divisible by ngroups {ngroups}")
    return d_inner, nheads


def need_max_seq_len(max_seq_len: Optional[int], name: str) -> int:
    """max_seq_len as a positive int; a data-independent mixer cannot be built without it."""
    if max_seq_len is None or max_seq_len < 1:
        raise ValueError(
            f"the {name} mixer is data independent and needs max_seq_len (the largest number of tokens), "
            f"got {max_seq_len}; hydra_vit_* models pass their token count")
    return int(max_seq_len)


@register_notrace_function
@torch.jit.ignore
def check_seq_len(L: int, max_seq_len: int, name: str) -> None:
    """ValueError when a sequence is longer than a data-independent mixer's parameters allow."""
    if L > max_seq_len:
        raise ValueError(
            f"the {name} mixer was built for at most {max_seq_len} tokens but got {L}; create the model "
            f"with an img_size giving at least {L} tokens (data-independent mixers have one parameter set per length)")


def expand_groups(t: torch.Tensor, nheads: int, dim: int) -> torch.Tensor:
    """Repeats each of the G groups along `dim` for its H / G heads (G -> H)."""
    return t.repeat_interleave(nheads // t.shape[dim], dim=dim)


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """fp32, or fp64 for fp64 tensors: the dtype structured matrices are built in."""
    return torch.promote_types(t.dtype, torch.float32)


@register_notrace_module
class MatrixMixer(nn.Module):
    """Base of the matrix mixers: projections, conv, gated norm; subclasses define `mix` and `matrix`.

    Args:
        dim: model width.
        expand: d_inner = expand * dim.
        headdim: P, channels per head; H = d_inner / P.
        ngroups: G, groups of heads sharing the structure (G divides H).
        d_conv: kernel of the depthwise conv over the values and conv features (odd unless causal).
        conv_features: channels of f (after the values) that go through the conv.
        raw_features: channels of r, taken from in_proj without the conv.
        causal_conv: pad the conv on the left only, so token i sees tokens <= i.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    def __init__(
        self,
        dim: int,
        *,
        expand: int,
        headdim: int,
        ngroups: int,
        d_conv: int,
        conv_features: int,
        raw_features: int = 0,
        causal_conv: bool = False,
        bias: bool = False,
        conv_bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_inner, self.nheads = inner_heads(dim, expand, headdim, ngroups)
        if d_conv < 1 or (not causal_conv and d_conv % 2 != 1):
            raise ValueError(f"d_conv must be odd to keep the sequence length (or causal), got {d_conv}")
        self.headdim = headdim
        self.ngroups = ngroups
        self.conv_features = conv_features
        self.raw_features = raw_features
        self.causal_conv = causal_conv
        conv_dim = self.d_inner + conv_features
        self.in_proj = nn.Linear(dim, self.d_inner + conv_dim + raw_features, bias=bias, **dd)
        self.conv1d = nn.Conv1d(
            conv_dim, conv_dim, d_conv, padding=d_conv - 1 if causal_conv else d_conv // 2,
            groups=conv_dim, bias=conv_bias, **dd)
        self.norm = GatedRMSNorm(self.d_inner, eps=1e-5, **dd)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias, **dd)

    def features(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens u (B, L, dim) -> gate z (B, L, d_inner), values x (B, L, H, P) after SiLU,
        conv features f (B, L, conv_features), raw features r (B, L, raw_features)."""
        z, xf, r = self.in_proj(u).split([self.d_inner, self.d_inner + self.conv_features, self.raw_features], dim=-1)
        xf = self.conv1d(xf.transpose(1, 2))
        if self.causal_conv:
            xf = xf[..., : u.shape[1]]
        x, f = xf.transpose(1, 2).split([self.d_inner, self.conv_features], dim=-1)
        return z, F.silu(x).unflatten(-1, (self.nheads, self.headdim)), f, r

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """y = M(f, r) @ x per head: x (B, L, H, P) -> (B, L, H, P) in x's dtype, without building M."""
        raise NotImplementedError

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The mixing matrix M (B, H, L, L) of `mix`, in fp32 (fp64 for fp64 modules); x is used
        only where M depends on the values themselves (Hydra's diagonal)."""
        raise NotImplementedError

    def materialize(self, u: torch.Tensor) -> torch.Tensor:
        """The matrix this mixer applies to the values of tokens u (B, L, dim): (B, H, L, L)."""
        _, x, f, r = self.features(u)
        return self.matrix(x, f, r)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Args: u: (B, L, dim). Returns: (B, L, dim) in u's dtype."""
        z, x, f, r = self.features(u)
        y = self.mix(x, f, r)
        return self.out_proj(self.norm(y.flatten(2), z))

    def extra_repr(self) -> str:
        return (f"d_inner={self.d_inner}, nheads={self.nheads}, headdim={self.headdim}, ngroups={self.ngroups}, "
                f"conv_features={self.conv_features}, raw_features={self.raw_features}")


class GroupMatrixMixer(MatrixMixer):
    """A matrix mixer whose matrix S (one per group, shared by its H / G heads) is built from the
    features, plus an optional learned per-head skip: y_h = S_g @ x_h + D_h x_h, so M_h = S_g + D_h I.

    Subclasses define `structure` (S as a matrix) and `apply_structure` (S @ x without building S
    where a faster product exists), and call `reset_parameters()` at the end of their __init__.
    `D` (H,) starts at 1 (the official matrix mixers add the identity).
    """

    def __init__(self, dim: int, *, skip: bool = True, **kwargs) -> None:
        super().__init__(dim, **kwargs)
        dd = {"device": kwargs.get("device"), "dtype": kwargs.get("dtype")}
        self.D = nn.Parameter(torch.empty(self.nheads, **dd)) if skip else None

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        """S: (B or 1, G, L, L) in fp32 (fp64 for fp64 features) for features f, r of L tokens."""
        raise NotImplementedError

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """S @ x for x (B, L, G, C) with C = (H / G) * P channels per group -> (B, L, G, C)."""
        S = self.structure(f, r, x.shape[1])
        return torch.einsum("bgij,bjgc->bigc", S.expand(x.shape[0], -1, -1, -1), x.to(S.dtype)).to(x.dtype)

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B, L, H, P = x.shape
        y = self.apply_structure(x.reshape(B, L, self.ngroups, (H // self.ngroups) * P), f, r).reshape(B, L, H, P)
        if self.D is not None:
            y = y + self.D.to(x.dtype)[:, None] * x
        return y

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        M = expand_groups(self.structure(f, r, x.shape[1]), self.nheads, dim=1).expand(x.shape[0], -1, -1, -1)
        if self.D is not None:
            M = M + torch.diag_embed(self.D.to(M.dtype)[:, None].expand(-1, x.shape[1]))
        return M

    def reset_parameters(self) -> None:
        """D = 1 (the identity skip of the official matrix mixers)."""
        if self.D is not None:
            with torch.no_grad():
                self.D.fill_(1.0)
