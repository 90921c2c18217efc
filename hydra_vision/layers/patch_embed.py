"""GemmPatchEmbed: timm's PatchEmbed whose patch conv runs as one matrix product.

A conv whose kernel equals its stride (p, q), without padding, dilation or groups, maps each patch alone:

    y[b, :, i, j] = W patch(b, i, j) + bias        W viewed as (D, C p q), patch(b, i, j) the C p q pixels
                                                   of rows i p .. i p + p - 1 and columns j q .. j q + q - 1

So cutting the images into patches, (B Hp Wp, C p q) in (c, u, v) order, and one GEMM with the weight gives
the conv's values (summed in another order), here as a channels-last (B, D, Hp, Wp) view whose NLC tokens are
contiguous. Parameters, state dict and timm's patch resampling stay PatchEmbed's. (hydra_vit_base's 224 px
batch of 128 on an H100: 2.1 ms forward + backward under cuDNN's algorithm search, 0.4 ms as the GEMM;
benchmarks/RESULTS.md, session 36.)
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import PatchEmbed

__all__ = ["GemmPatchEmbed", "PatchConv2d", "patch_conv"]


def patch_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """conv2d(x, weight, bias, stride=kernel) for x (B, C, H, W) and weight (D, C, p, q) as one GEMM; returns
    (B, D, H // p, W // q) with channels-last strides (trailing rows and columns that fill no patch are
    dropped, as by the conv)."""
    D, C, p, q = weight.shape
    B, Hp, Wp = x.shape[0], x.shape[-2] // p, x.shape[-1] // q
    patches = x[:, :, :Hp * p, :Wp * q].reshape(B, C, Hp, p, Wp, q).permute(0, 2, 4, 1, 3, 5)
    y = F.linear(patches.reshape(B * Hp * Wp, C * p * q), weight.reshape(D, C * p * q), bias)
    return y.view(B, Hp, Wp, D).permute(0, 3, 1, 2)


class PatchConv2d(nn.Conv2d):
    """nn.Conv2d that runs as `patch_conv` when its kernel equals its stride (no padding, dilation or groups),
    as nn.Conv2d otherwise."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.patchify = (self.kernel_size == self.stride and self.padding == (0, 0) and self.dilation == (1, 1)
                         and self.groups == 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patchify:
            return patch_conv(x, self.weight, self.bias)
        return self._conv_forward(x, self.weight, self.bias)


def _as_patch_conv(conv: nn.Conv2d) -> PatchConv2d:
    """A `PatchConv2d` of conv's sizes holding conv's parameters (the same tensors) and training mode."""
    patch_conv2d = PatchConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                               bias=conv.bias is not None, device="meta")
    patch_conv2d.weight, patch_conv2d.bias = conv.weight, conv.bias
    return patch_conv2d.train(conv.training)


class GemmPatchEmbed(PatchEmbed):
    """PatchEmbed (timm's arguments) whose proj is a `PatchConv2d` holding the parameters PatchEmbed made (also
    after `set_input_size` resamples them to a new patch size)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proj = _as_patch_conv(self.proj)

    def set_input_size(self, img_size=None, patch_size=None) -> None:
        super().set_input_size(img_size=img_size, patch_size=patch_size)
        if not isinstance(self.proj, PatchConv2d):  # PatchEmbed made a new nn.Conv2d for the new patch size
            self.proj = _as_patch_conv(self.proj)
