"""Decoding images for extraction: unreadable files become recorded failures, never exceptions.

Images are decoded (and, unless the extractor resizes on its device, resized) on the CPU into
uint8 tensors; the float conversion and mean/std normalisation happen on the model's device
(see extractor.py), which keeps the loader workers and the host-to-device copy cheap. A batch of
images of several sizes travels as one packed tensor (`PackedImages`): one shared-memory block per
batch from a loader process and one copy to the device, not one per image.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["Batch", "ImageDataset", "PackedImages", "collate_images", "open_rgb", "stack_if_uniform"]


def open_rgb(path: str) -> Image.Image:
    """Reads an image file fully and converts it to RGB (raises on zero-byte or corrupt files)."""
    with Image.open(path) as image:
        return image.convert("RGB")


class ImageDataset(Dataset):
    """Item i is `(i, transform(image_i), None)`, or `(i, None, 'ErrorType: message')` if unreadable."""

    def __init__(self, paths: Sequence[str], transform: Callable[[Image.Image], torch.Tensor]):
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.transform(open_rgb(self.paths[index])), None
        except Exception as error:  # any decoder failure must skip the file, not end the run
            return index, None, f"{type(error).__name__}: {error}"


def stack_if_uniform(images: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """(3, H, W) images of one size -> a batch (B, 3, H, W); images of several sizes stay a list."""
    images = [torch.as_tensor(x) for x in images]
    return torch.stack(images) if len({x.shape for x in images}) == 1 else images


@dataclass(frozen=True)
class PackedImages:
    """Images of several sizes in one tensor: data uint8 (sum_i 3 h_i w_i,), the images one after
    the other, and shapes int64 (B, 3) of (3, h_i, w_i)."""

    data: torch.Tensor
    shapes: torch.Tensor

    @classmethod
    def pack(cls, images: Sequence[torch.Tensor]) -> PackedImages:
        return cls(torch.cat([x.reshape(-1) for x in images]), torch.tensor([tuple(x.shape) for x in images]))

    def unpack(self, device: torch.device | str | None = None) -> list[torch.Tensor]:
        """The images (3, h_i, w_i) as views of one copy of data on `device` (asynchronous from pinned memory)."""
        data = self.data if device is None else self.data.to(device, non_blocking=True)
        shapes = [tuple(s) for s in self.shapes.tolist()]
        return [x.view(s) for x, s in zip(data.split([c * h * w for c, h, w in shapes]), shapes)]

    def pin_memory(self) -> PackedImages:
        """The same images in pinned memory (called by the DataLoader's pin_memory thread)."""
        return PackedImages(self.data.pin_memory(), self.shapes)


class Batch(NamedTuple):
    """indices (B,) of the decoded images, images uint8 (B, 3, H, W) (or `PackedImages` of several
    sizes, when not resized yet) or None, failures [(index, error)]."""

    indices: torch.Tensor
    images: torch.Tensor | PackedImages | None
    failures: list[tuple[int, str]]


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    """Stacks (or, when their sizes differ, packs) the decoded images of a batch and sets the failed ones aside."""
    good = [(i, x) for i, x, _ in items if x is not None]
    failures = [(i, error) for i, x, error in items if x is None]
    indices = torch.tensor([i for i, _ in good], dtype=torch.long)
    images = stack_if_uniform([x for _, x in good]) if good else None
    return Batch(indices, PackedImages.pack(images) if isinstance(images, list) else images, failures)
