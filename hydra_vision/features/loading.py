"""Decoding images for extraction: unreadable files become recorded failures, never exceptions.

Images are decoded (and, unless the extractor resizes on its device, resized) on the CPU into
uint8 tensors; the float conversion and mean/std normalisation happen on the model's device
(see extractor.py), which keeps the loader workers and the host-to-device copy cheap.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["Batch", "ImageDataset", "collate_images", "open_rgb", "stack_if_uniform"]


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


class Batch(NamedTuple):
    """indices (B,) of the decoded images, images uint8 (B, 3, H, W) (or a list of (3, h_i, w_i)
    when not resized yet) or None, failures [(index, error)]."""

    indices: torch.Tensor
    images: torch.Tensor | list[torch.Tensor] | None
    failures: list[tuple[int, str]]


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    """Stacks the decoded images of a batch and sets the failed ones aside."""
    good = [(i, x) for i, x, _ in items if x is not None]
    failures = [(i, error) for i, x, error in items if x is None]
    indices = torch.tensor([i for i, _ in good], dtype=torch.long)
    images = stack_if_uniform([x for _, x in good]) if good else None
    return Batch(indices, images, failures)
