"""Resizing on the model's device: timm's eval `Resize` + `CenterCrop` applied to uint8 image
tensors after the copy, so that the CPU loader only decodes (PIL's bicubic resize costs about
twice the JPEG decode of a small image, and bounds extraction of small models by the CPUs).

Resize and CenterCrop are linear and act on rows and columns separately, so for an image
I (h, w) their composition is

    T(I) = Wy I Wx^T,    Wy (H, h), Wx (W, w)

with the transform's 1-D maps Wy, Wx read off once per image size by running the torchvision steps on
identity matrices (`axis_maps`). A batch of images of several sizes is then two batched matrix
products per group of similar sizes: the images are gathered from the packed buffer into zero-padded
canvases (n, hc, C, wc), the maps' columns past each image's edge are zero, and the results are
clamped, rounded and put in their batch rows (`hydra_vision.kernels.image_canvas`: one Triton kernel
each way on CUDA). Groups keep the padding under `MAX_PADDING` times the pixels (Imagewoof: 2-3
groups per batch of 256 images of ~60 sizes), so the kernels per batch do not grow with the number
of sizes. The products run in fp32 (torch's fp32 matmul precision: keep TF32 off for pixels within
rounding of torchvision's).

The result is (B, C, H, W) in float32 with values in [0, 255] rounded as uint8 would be: the same
sizes and interpolation as the CPU transform, computed by torch (bicubic a = -0.75, antialiased)
instead of PIL (a = -0.5), so the pixels differ: by up to 2 uint8 levels on smooth photographs (the
tests), by 13-18 levels at sharp edges or on noise when upscaling; embeddings stay at cosine > 0.999.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.data.transforms import MaybePILToTensor
from torchvision import transforms
from torchvision.transforms import functional as TF

from ..kernels.image_canvas import gather_canvas, scatter_rounded
from .loading import PackedImages

__all__ = ["DeviceResize", "axis_maps", "group_by_size"]

MAX_PADDING = 1.5  # a group's canvas holds at most this many times its images' pixels
MAX_CACHED_COLUMNS = 1 << 18  # map columns kept per axis (H x 2^18 fp32: 235 MB at H = 224) before a reset


def axis_maps(steps: Sequence[transforms.Resize | transforms.CenterCrop], h: int,
              w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D maps of Resize / CenterCrop `steps` for an (h, w) image: Wy (H, h), Wx (W, w) in fp32 on
    the CPU, with steps(I) = Wy I Wx^T for every float image I (h, w)."""
    wy, wx = torch.eye(h), torch.eye(w)
    for step in steps:
        if isinstance(step, transforms.Resize):
            h, w = step(torch.zeros(1, h, w)).shape[-2:]
            wy, wx = (TF.resize(m[None], [n, m.shape[1]], step.interpolation, antialias=step.antialias)[0]
                      for m, n in ((wy, h), (wx, w)))
        else:  # CenterCrop: a crop (or zero padding) of the rows, the same for every column
            h, w = step.size
            wy = step(wy.T[:, :, None].expand(-1, -1, w))[:, :, 0].T
            wx = step(wx.T[:, None, :].expand(-1, h, -1))[:, 0, :].T
    return wy.contiguous(), wx.contiguous()


def group_by_size(sizes: Sequence[tuple[int, int]], max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices of (h, w) sizes in groups whose canvas (count x max h x max w) stays within
    max_padding x their summed pixels; sizes are taken in (h, w) order, a group ends when the next would overflow."""
    groups: list[list[int]] = []
    top = wide = area = 0
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        h, w = sizes[i]
        if not groups or (len(groups[-1]) + 1) * max(top, h) * max(wide, w) > max_padding * (area + h * w):
            groups.append([])
            top = wide = area = 0
        groups[-1].append(i)
        top, wide, area = max(top, h), max(wide, w), area + h * w
    return groups


def _as_packed(images: torch.Tensor | Sequence[torch.Tensor] | PackedImages) -> PackedImages:
    """Images of any accepted form as `PackedImages` (a batch (B, C, h, w) as a view when contiguous)."""
    if isinstance(images, PackedImages):
        return images
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return PackedImages(images.reshape(-1), torch.tensor(images.shape[1:]).expand(len(images), 3))
    return PackedImages.pack(images)


class DeviceResize:
    """Splits a timm eval transform (`create_transform(..., use_prefetcher=True)`) into `decode`
    (PIL -> uint8 (3, h, w), for the loader) and the resize + crop run by `__call__` on `device`.

    Raises:
        ValueError: the transform is not torchvision Resize / CenterCrop steps followed by
            MaybePILToTensor (e.g. timm's crop_mode 'border', which pads on the CPU), or its
            output size depends on the image size (no crop after a shorter-side Resize).
    """

    def __init__(self, transform: transforms.Compose, device: torch.device):
        *steps, last = transform.transforms
        if not isinstance(last, MaybePILToTensor) or not all(
                type(step) in (transforms.Resize, transforms.CenterCrop) for step in steps):
            raise ValueError("resizing on the device needs an eval transform of torchvision Resize / CenterCrop "
                             f"steps (crop_mode 'center' or 'squash'), got {transform}")
        self.decode = last
        self.steps = steps
        self.device = device
        self._columns: dict[tuple[int, int], tuple[int, int]] = {}  # (h, w) -> first column in the banks
        self._banks: tuple[torch.Tensor, torch.Tensor] | None = None  # (H, 1 + sum h), (W, 1 + sum w); column 0 is 0

    def _maps_for(self, sizes: Sequence[tuple[int, int]]) -> None:
        """Adds the maps of sizes not cached yet to the banks (one concatenation per axis)."""
        new = [s for s in dict.fromkeys(sizes) if s not in self._columns]
        if not new:
            return
        if self._banks is not None and self._banks[0].shape[1] + sum(h for h, _ in new) > MAX_CACHED_COLUMNS:
            self._columns, self._banks = {}, None
            new = list(dict.fromkeys(sizes))
        maps = [axis_maps(self.steps, h, w) for h, w in new]
        if self._banks is None:
            self._banks = tuple(torch.zeros(m.shape[0], 1, device=self.device) for m in maps[0])
        if len({(wy.shape[0], wx.shape[0]) for wy, wx in maps} | {tuple(bank.shape[0] for bank in self._banks)}) > 1:
            raise ValueError(f"{self.steps} gives images of several sizes: resizing on the device needs a fixed "
                             "output size")
        starts = [bank.shape[1] for bank in self._banks]
        for h, w in new:
            self._columns[(h, w)] = tuple(starts)
            starts = [starts[0] + h, starts[1] + w]
        self._banks = tuple(torch.cat([bank, *self._upload(*(m[k] for m in maps))], dim=1)
                            for k, bank in enumerate(self._banks))

    def _upload(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Host tensors of one dtype -> the same on the device in one copy, from pinned memory on CUDA (a copy
        from pageable memory makes the host wait for all the GPU work queued before it)."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        flat = (flat.pin_memory() if self.device.type == "cuda" else flat).to(self.device, non_blocking=True)
        return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def _map_columns(self, sizes: Sequence[tuple[int, int]], top: int, wide: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Bank columns (n, top) and (n, wide) of the maps of images of `sizes` on a (top, wide) canvas;
        column 0 (zeros) past each image's edge."""
        first, extent = torch.tensor([self._columns[s] for s in sizes]), torch.tensor(sizes)
        return tuple(torch.where(steps < extent[:, axis, None], first[:, axis, None] + steps, 0)
                     for axis, steps in enumerate((torch.arange(top), torch.arange(wide))))

    def __call__(self, images: torch.Tensor | Sequence[torch.Tensor] | PackedImages) -> torch.Tensor:
        """uint8 images, a batch (B, C, h, w), a list of (C, h_i, w_i) or `PackedImages` -> float32
        (B, C, H, W) on the device, values in [0, 255] rounded."""
        packed = _as_packed(images)
        channel_counts = set(packed.shapes[:, 0].tolist())
        if len(channel_counts) != 1:
            raise ValueError(f"need images of one channel count, got {sorted(channel_counts) or 'no images'}")
        data = packed.data.to(self.device, non_blocking=True)
        sizes = [(h, w) for _, h, w in packed.shapes.tolist()]
        pixels = packed.shapes.prod(1)
        starts = torch.cumsum(pixels, 0) - pixels
        self._maps_for(sizes)
        channels = channel_counts.pop()
        out = torch.empty(len(sizes), channels, *(bank.shape[0] for bank in self._banks), device=self.device)
        for group in group_by_size(sizes):
            top, wide = max(sizes[i][0] for i in group), max(sizes[i][1] for i in group)
            rows, shapes, first, columns_y, columns_x = self._upload(
                torch.tensor(group), packed.shapes[group], starts[group],
                *self._map_columns([sizes[i] for i in group], top, wide))
            canvas = gather_canvas(data, shapes, first, channels, top, wide)
            scatter_rounded(out, rows, self._resize(canvas, *self._maps(columns_y, columns_x)))
        return out

    def _maps(self, columns_y: torch.Tensor, columns_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bank columns (n, h) and (n, w) on the device -> maps Wy (n, H, h), Wx (n, W, w)."""
        return tuple(bank[:, columns].permute(1, 0, 2) for bank, columns in zip(self._banks, (columns_y, columns_x)))

    @staticmethod
    def _resize(canvas: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        """canvas (n, h, C, w), maps (n, H, h) and (n, W, w) -> per channel Wy I Wx^T as (n, H, C, W); the
        two batched products in the cheaper order."""
        (n, h, C, w), H, W = canvas.shape, wy.shape[1], wx.shape[1]
        if H * w * (h + W) < W * h * (w + H):  # rows first
            out = torch.bmm(torch.bmm(wy, canvas.reshape(n, h, C * w)).view(n, H * C, w), wx.transpose(1, 2))
        else:
            out = torch.bmm(wy, torch.bmm(canvas.reshape(n, h * C, w), wx.transpose(1, 2)).view(n, h, C * W))
        return out.view(n, H, C, W)
