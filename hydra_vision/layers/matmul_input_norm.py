"""MatmulInputLayerNorm: timm's LayerNorm for a norm whose output only feeds a matmul (a block's norm1/norm2).

Under autocast, F.layer_norm runs in fp32 and returns fp32, which the next Linear casts back to the autocast
dtype: with a bf16 residual stream that is a cast in, the norm and a cast out forward, and the same three
passes backward. This layer returns the autocast dtype directly (the values the Linear would get), from
`hydra_vision.kernels.layernorm` (one fused Triton pass each way on CUDA). Without autocast it returns x's
dtype, as LayerNorm does. Under torch.compile it uses PyTorch's LayerNorm and a cast, which Inductor fuses
with its neighbours. Parameters and state dict are LayerNorm's. `with_shortcut(x)` returns (norm(x), x) for a
residual block, the shortcut's gradient then added inside the norm's backward kernel (`layer_norm_with_shortcut`).
"""
from typing import Callable, Optional, Tuple

import torch
from timm.layers import LayerNorm, register_notrace_function

from hydra_vision.kernels.layernorm import layer_norm, layer_norm_with_shortcut

from .recompute import matmul_dtype

__all__ = ["MatmulInputLayerNorm", "normalize_matmul_input"]


@register_notrace_function
@torch.jit.ignore
def normalize_matmul_input(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float,
                           backend: Optional[str]) -> torch.Tensor:
    """LayerNorm of x over its last dim in the dtype a matmul takes here (the autocast dtype under autocast,
    else x's); opaque to TorchScript and FX (a leaf in every FX trace)."""
    return _normalize(layer_norm, x, weight, bias, eps, backend)


def _normalize(norm: Callable, x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
               eps: float, backend: Optional[str]):
    """norm (`layer_norm` or `layer_norm_with_shortcut`) of x into the matmul's dtype, weight None meaning ones."""
    if weight is None:
        weight = torch.ones(x.shape[-1], device=x.device, dtype=x.dtype)
    if torch.compiler.is_compiling():
        backend = "reference"
    return norm(x, weight, bias, eps, out_dtype=matmul_dtype(x), backend=backend)


torch.fx.wrap("normalize_matmul_input")


class MatmulInputLayerNorm(LayerNorm):
    """LayerNorm (timm's arguments) returning the dtype the following matmul takes; `backend` as in
    `hydra_vision.kernels.layernorm` (None: the process default)."""

    def __init__(self, num_channels: int, eps: float = 1e-6, affine: bool = True, backend: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(num_channels, eps=eps, affine=affine, **kwargs)
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_matmul_input(x, self.weight, self.bias, self.eps, self.backend)

    @torch.jit.unused
    def with_shortcut(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(self(x), x) for a block computing x + f(self(x)) (eager tensors only; FX and TorchScript call forward)."""
        return _normalize(layer_norm_with_shortcut, x, self.weight, self.bias, self.eps, self.backend)
