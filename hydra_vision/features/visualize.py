"""PCA of patch features as a picture: each image above an RGB map of its last block's patch tokens.

Patch tokens f (B*h*w, D) of all images together are centred and projected on their
first three principal directions (SVD); each component is scaled to [0, 255] over all
images and read as R, G, B, so patches the model sees alike get alike colours.
"""
from __future__ import annotations

import os

import torch
from PIL import Image

from .extractor import FeatureExtractor

__all__ = ["pca_map", "save_pca_grid"]


def pca_map(features: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) feature maps -> (B, h, w, 3) uint8 colours of their first three principal components."""
    b, d, h, w = features.shape
    if d < 3:
        raise ValueError(f"need at least 3 channels for an RGB PCA map, got {d}")
    tokens = features.permute(0, 2, 3, 1).reshape(-1, d).double()
    tokens = tokens - tokens.mean(dim=0)
    _, _, vh = torch.linalg.svd(tokens, full_matrices=False)
    components = tokens @ vh[:3].T  # (B*h*w, 3)
    low, high = components.amin(dim=0), components.amax(dim=0)
    scaled = (components - low) / (high - low).clamp_min(1e-12) * 255
    return scaled.round().to(torch.uint8).reshape(b, h, w, 3)


def save_pca_grid(extractor: FeatureExtractor, images: list[Image.Image], path: str | os.PathLike) -> None:
    """Writes a PNG: the model's input crops in the top row, their patch-feature PCA maps below.

    Args:
        extractor: gives the model and its preprocessing.
        images: RGB images (at least one).
        path: the .png file to write.
    """
    if not images:
        raise ValueError("no images to visualise")
    crops = extractor.crops(images)  # (B, 3, H, W) uint8
    with torch.inference_mode():
        (maps,) = extractor.model.forward_intermediates(
            extractor.standardize(crops), indices=[len(extractor.model.feature_info) - 1], norm=True,
            stop_early=True, output_fmt="NCHW", intermediates_only=True,
        )
    colours = pca_map(maps.float().cpu())
    height, width = crops.shape[-2:]
    grid = Image.new("RGB", (width * len(images), height * 2))
    for i, (crop, colour) in enumerate(zip(crops, colours)):
        grid.paste(Image.fromarray(crop.permute(1, 2, 0).numpy()), (i * width, 0))
        grid.paste(Image.fromarray(colour.numpy()).resize((width, height), Image.NEAREST), (i * width, height))
    grid.save(path, format="PNG")
