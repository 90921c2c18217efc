"""A generated ImageFolder tree for tests and demos: `<root>/<split>/<class>/<image>.jpg`.

Each class has its own base colour and a coarse spatial pattern, with per-image noise, so a
small model learns it above chance in a few steps; the same seed gives the same bytes.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["write_image_folder"]


def _class_names(classes: int | Sequence[str]) -> list[str]:
    if isinstance(classes, int):
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        return [f"class_{i:03d}" for i in range(classes)]
    names = list(classes)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"classes must be distinct non-empty names, got {names!r}")
    return names


def _image(rng: np.random.Generator, base: np.ndarray, pattern: int, height: int, width: int) -> Image.Image:
    """One (height, width, 3) uint8 image: base colour, a class-specific half brightened, noise."""
    pixels = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    half = [(slice(None, height // 2), slice(None)), (slice(height // 2, None), slice(None)),
            (slice(None), slice(None, width // 2)), (slice(None), slice(width // 2, None))][pattern % 4]
    pixels[half] += 60.0
    pixels += rng.normal(0.0, 25.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def write_image_folder(
    root: str | Path,
    classes: int | Sequence[str] = 3,
    images_per_class: int = 4,
    size: int | tuple[int, int] = 32,
    splits: Sequence[str] = ("train", "val"),
    seed: int = 0,
) -> Path:
    """Write random JPEGs as an ImageFolder tree that timm's `create_dataset('', root)` reads.

    Args:
        root: folder to create (parents too); existing files with the same names are overwritten.
        classes: number of classes (named `class_000`, ...) or the class folder names.
        images_per_class: JPEGs per class and split.
        size: image side, or (height, width).
        splits: split folder names, e.g. ("train", "val").
        seed: seed of the whole tree (colours, patterns, noise).

    Returns:
        `root` as a Path.
    """
    names = _class_names(classes)
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    height, width = (size, size) if isinstance(size, int) else size
    if height < 2 or width < 2:
        raise ValueError(f"size must be at least 2x2, got {size}")
    rng = np.random.default_rng(seed)
    bases = rng.uniform(40, 180, size=(len(names), 3))
    root = Path(root)
    for split in splits:
        for index, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(images_per_class):
                image = _image(rng, bases[index], index, height, width)
                image.save(folder / f"{name}_{i:04d}.jpg", quality=90)
    return root
