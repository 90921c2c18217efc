"""The shell every sequence mixer shares: Hydra's projections around a swappable L x L matrix.

For tokens u (B, L, dim), with d_inner = expand * dim split into H = d_inner / P heads:

    z | xf | r = in_proj(u)                   xf = [x, f]: values and conv features, r: raw features
    x, f       = conv1d(xf)                   depthwise, kernel d_conv, "same" length (or causal)
    y          = mix(SiLU(x), f, r)           per head h: y[:, :, h] = M_h(f, r) @ x[:, :, h]
    out        = out_proj(GatedRMSNorm(y, z))

(with `silu_features`, f is SiLU(f) too, as in Hydra, where x, B, C are views of one activation).
Only `mix` (and the matrix M it applies) differs between mixers; the parameter names and their
order are the official Hydra layer's (`in_proj`, `conv1d`, the mixer's own modules, `norm`,
`out_proj`). This is the paper's matrix-mixer set-up (Hwang et al., arXiv 2407.09941, section 3 and
Table 2): one block, only the matrix class changes.

With `selective_recompute` the conv and norm outputs are not stored for backward but recomputed
there (`recompute.RecomputedActivations`, or inside the fused layer where `fuses_layer` allows it);
everything else, the mix's work included, is kept.
"""
from typing import Optional

import torch
from timm.layers import register_notrace_function
from torch import nn

from hydra_vision.kernels.dwconv import depthwise_conv1d_silu

from .gated_rmsnorm import GatedRMSNorm
from .recompute import RecomputedActivations, recomputing

__all__ = ["MatrixMixer", "conv_tokens", "feature_groups", "inner_heads"]


@register_notrace_function
@torch.jit.ignore
def conv_tokens(xf: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
                silu_channels: int, backend: Optional[str]) -> torch.Tensor:
    """`depthwise_conv1d_silu` on tokens (B, L, C), kept opaque to TorchScript and FX."""
    return depthwise_conv1d_silu(xf, weight, bias, causal=causal, silu_channels=silu_channels, backend=backend)


torch.fx.wrap("conv_tokens")


def inner_heads(dim: int, expand: int, headdim: int, ngroups: int = 1) -> tuple[int, int]:
    """(d_inner, H) for width `dim`; ValueError unless headdim divides d_inner and ngroups divides H."""
    d_inner = expand * dim
    if d_inner % headdim:
        raise ValueError(f"d_inner = expand * dim = {d_inner} is not divisible by headdim {headdim}")
    nheads = d_inner // headdim
    if nheads % ngroups:
        raise ValueError(f"the number of heads {nheads} is not divisible by ngroups {ngroups}")
    return d_inner, nheads


def feature_groups(f: torch.Tensor, ngroups: int, d_state: int) -> list[torch.Tensor]:
    """Features f (B, L, k G N) as k views (B, L, G, N), in channel order (B and C of SSD, q and k)."""
    return f.unflatten(-1, (-1, ngroups, d_state)).unbind(-3)


class MatrixMixer(nn.Module):
    """Base of the sequence mixers: projections, conv, gated norm; subclasses define `mix` and `matrix`.

    Args:
        dim: model width.
        expand: d_inner = expand * dim.
        headdim: P, channels per head; H = d_inner / P.
        ngroups: G, groups of heads sharing the structure (G divides H).
        d_conv: kernel of the depthwise conv over the values and conv features (odd unless causal).
        conv_features: channels of f (after the values) that go through the conv.
        raw_features: channels of r, taken from in_proj without the conv.
        causal_conv: pad the conv on the left only, so token i sees tokens <= i.
        silu_features: apply SiLU to the conv features f too (not only to the values x).
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
        backend: kernel backend of the conv and the gated norm (`hydra_vision.kernels.dwconv`,
            `GatedRMSNorm`); None: the process default.
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
        silu_features: bool = False,
        bias: bool = False,
        conv_bias: bool = True,
        backend: Optional[str] = None,
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
        self.silu_features = silu_features
        self.backend = backend
        self.selective_recompute = False
        conv_dim = self.d_inner + conv_features
        self.in_proj = nn.Linear(dim, self.d_inner + conv_dim + raw_features, bias=bias, **dd)
        self.conv1d = nn.Conv1d(
            conv_dim, conv_dim, d_conv, padding=d_conv - 1 if causal_conv else d_conv // 2,
            groups=conv_dim, bias=conv_bias, **dd)
        self.build_mix(**dd)
        self.norm = GatedRMSNorm(self.d_inner, eps=1e-5, backend=backend, **dd)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias, **dd)

    def build_mix(self, device=None, dtype=None) -> None:
        """Creates the modules `mix` owns (none here); called between conv1d and norm, so that
        their parameters sit in the official Hydra order (`fc_D` before `norm`)."""

    def split_projection(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens u (B, L, dim) -> gate z (B, L, d_inner), conv input xf (B, L, d_inner + conv_features),
        raw features r (B, L, raw_features): views of one in_proj output."""
        z, xf, r = self.in_proj(u).split([self.d_inner, self.d_inner + self.conv_features, self.raw_features], dim=-1)
        return z, xf, r

    def convolve(self, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv input xf -> values x (B, L, H, P) after SiLU and conv features f (B, L, conv_features); with
        `silu_features`, x and f are views of one SiLU(conv) output (Hydra's x, B, C)."""
        silu_channels = self.d_inner + self.conv_features if self.silu_features else self.d_inner
        xf = conv_tokens(xf, self.conv1d.weight, self.conv1d.bias, self.causal_conv, silu_channels, self.backend)
        x, f = xf.split([self.d_inner, self.conv_features], dim=-1)
        return x.unflatten(-1, (self.nheads, self.headdim)), f

    def features(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens u (B, L, dim) -> z, x, f, r of `split_projection` and `convolve`."""
        z, xf, r = self.split_projection(u)
        x, f = self.convolve(xf)
        return z, x, f, r

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

    def mix_and_project(self, xf: torch.Tensor, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Everything after in_proj: out_proj(GatedRMSNorm(mix(convolve(xf), r), z)) -> (B, L, dim)."""
        x, f = self.convolve(xf)
        return self.out_proj(self.norm(self.mix(x, f, r).flatten(2), z))

    @torch.jit.unused
    def fuses_layer(self, u: torch.Tensor) -> bool:
        """Whether this call runs everything between in_proj and out_proj as one fused autograd node
        (`fused_layer`); mixers that have one say when."""
        return False

    @torch.jit.unused
    def fused_layer(self, zxr: torch.Tensor, project: bool = False) -> torch.Tensor:
        """in_proj's output -> the gated norm's output (B, L, d_inner), where `fuses_layer` allows it; with
        `project`, out_proj's output (B, L, dim), the norm output recomputed in backward instead of stored."""
        raise NotImplementedError

    @torch.jit.unused
    def mix_and_project_recomputing(self, xf: torch.Tensor, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """`mix_and_project`, with the conv and norm outputs recomputed in backward instead of stored."""
        with RecomputedActivations() as recomputed:
            x, f = recomputed.run(self.convolve, xf)
            return self.out_proj(recomputed.run(self.norm, self.mix(x, f, r).flatten(2), z))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Args: u: (B, L, dim). Returns: (B, L, dim) in u's dtype."""
        recompute = not torch.jit.is_scripting() and recomputing(self.selective_recompute, u)
        if not torch.jit.is_scripting() and self.fuses_layer(u):
            # compiled, the fused node is opaque to the partitioner: it recomputes the norm output only if it ends
            # with out_proj
            if recompute or (self.selective_recompute and torch.compiler.is_compiling()):
                return self.fused_layer(self.in_proj(u), project=True)
            return self.out_proj(self.fused_layer(self.in_proj(u)))
        z, xf, r = self.split_projection(u)
        if recompute:
            return self.mix_and_project_recomputing(xf, z, r)
        return self.mix_and_project(xf, z, r)

    def extra_repr(self) -> str:
        return (f"d_inner={self.d_inner}, nheads={self.nheads}, headdim={self.headdim}, ngroups={self.ngroups}, "
                f"conv_features={self.conv_features}, raw_features={self.raw_features}")
