"""pca_map: the RGB channels are the (min-max scaled) principal components of the patch features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hydra_vision.features import FeatureExtractor, pca_map, save_pca_grid

from .conftest import make_model


def test_channels_are_the_scaled_principal_components():
    """Token coordinates along 3 orthonormal directions, uncorrelated, with variances 100^2 > 10^2 > 1."""
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 3, generator=g))[0]  # (D, 3) orthonormal
    coords = torch.randn(2 * 5 * 6, 3, generator=g, dtype=torch.float64)
    coords = torch.linalg.qr(coords - coords.mean(0))[0] * torch.tensor([100.0, 10.0, 1.0], dtype=torch.float64)
    features = (coords.float() @ basis.T).reshape(2, 5, 6, 16).permute(0, 3, 1, 2)  # (B, D, h, w)
    colours = pca_map(features).reshape(-1, 3).double()
    for c in range(3):
        expected = (coords[:, c] - coords[:, c].min()) / (coords[:, c].max() - coords[:, c].min()) * 255
        error = torch.minimum((colours[:, c] - expected).abs(), (colours[:, c] - (255 - expected)).abs())
        assert error.max() <= 0.51 + 1e-3, c  # equal up to the sign of the component and rounding


def test_needs_three_channels():
    with pytest.raises(ValueError, match="at least 3 channels"):
        pca_map(torch.ones(1, 2, 4, 4))


def test_grid_shows_crops_above_their_pca_maps(image_root: Path, tmp_path: Path):
    paths = sorted((image_root / "val" / "fox").glob("*.jpg"))[:3]
    extractor = FeatureExtractor(make_model())
    save_pca_grid(extractor, [Image.open(p).convert("RGB") for p in paths], tmp_path / "pca.png")
    grid = Image.open(tmp_path / "pca.png")
    assert grid.size == (3 * 32, 2 * 32)
    crops = extractor.preprocess(paths)
    pixels = torch.from_numpy(np.array(grid))  # (64, 96, 3)
    assert torch.equal(pixels[:32, :32].permute(2, 0, 1), crops[0])
    maps = FeatureExtractor(extractor.model, layers=[-1], layer_norm=True, embeddings=False)(crops)["blocks.1"]
    colours = pca_map(maps)  # (3, 2, 2, 3): one colour per 16 x 16 patch
    expected = colours.repeat_interleave(16, dim=1).repeat_interleave(16, dim=2)
    assert torch.equal(pixels[32:].reshape(32, 3, 32, 3).permute(1, 0, 2, 3), expected)
