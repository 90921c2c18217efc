"""Resizing on the model's device: timm's eval `Resize` + `CenterCrop` applied to uint8 image
tensors after the copy, so that the CPU loader only decodes (PIL's bicubic resize costs about
twice the JPEG decode of a small image, and bounds extraction of small models by the CPUs).

For decoded images (3, h_i, w_i), the result is the batch (B, 3, H, W) in float32 on the device,
with values in [0, 255] rounded as uint8 would be: the same sizes and interpolation as the CPU
transform, computed by torch (bicubic a = -0.75, antialiased) instead of PIL (a = -0.5), so the
pixels differ: by up to 2 uint8 levels on smooth photographs (the tests), by 13-18 levels at sharp
edges or on noise when upscaling; embeddings stay at cosine > 0.999.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from timm.data.transforms import MaybePILToTensor
from torchvision import transforms

from .loading import PackedImages

__all__ = ["DeviceResize"]


class DeviceResize:
    """Splits a timm eval transform (`create_transform(..., use_prefetcher=True)`) into `decode`
    (PIL -> uint8 (3, h, w), for the loader) and the resize + crop run by `__call__` on `device`.

    Raises:
        ValueError: the transform is not torchvision Resize / CenterCrop steps followed by
            MaybePILToTensor (e.g. timm's crop_mode 'border', which pads on the CPU).
    """

    def __init__(self, transform: transforms.Compose, device: torch.device):
        *steps, last = transform.transforms
        if not isinstance(last, MaybePILToTensor) or not all(
                type(step) in (transforms.Resize, transforms.CenterCrop) for step in steps):
            raise ValueError("resizing on the device needs an eval transform of torchvision Resize / CenterCrop "
                             f"steps (crop_mode 'center' or 'squash'), got {transform}")
        self.decode = last
        self.resize_crop = transforms.Compose(steps)
        self.device = device

    def __call__(self, images: torch.Tensor | Sequence[torch.Tensor] | PackedImages) -> torch.Tensor:
        """uint8 images, a batch (B, 3, h, w), a list of (3, h_i, w_i) or `PackedImages` -> float32
        (B, 3, H, W) on the device. Images of one size are resized together: two kernels per size
        (stack, resize); the copy, float conversion, clamp and rounding run once per batch."""
        if isinstance(images, PackedImages):
            images = images.unpack(self.device, torch.float32)  # one copy and one conversion for the batch
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_size[tuple(image.shape)].append(i)
        out: list[torch.Tensor | None] = [None] * len(images)
        for indices in by_size.values():
            # images not unpacked above are copied one by one (pinned by the loader: asynchronous)
            group = torch.stack([images[i].to(self.device, torch.float32, non_blocking=True) for i in indices])
            for i, image in zip(indices, self.resize_crop(group)):
                out[i] = image
        return torch.stack(out).clamp_(0, 255).round_()
