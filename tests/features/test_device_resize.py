"""resize_on='device': decode-only loading, resize + crop on the model's device, close to timm's PIL transform."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from timm.data import create_transform
from torch.utils._python_dispatch import TorchDispatchMode

from hydra_vision.features import FeatureExtractor, extract_to_file, list_images, read_features
from hydra_vision.features.device_resize import DeviceResize
from hydra_vision.features.loading import PackedImages
from hydra_vision.features.visualize import save_pca_grid

from .conftest import make_model

SIZES = [(40, 48), (48, 40), (40, 48), (64, 80), (37, 53)]  # (height, width): repeats share a resize


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Smooth JPEG 'photos' of several sizes (blurred noise: the bicubic kernels of PIL and torch
    differ on sharp edges, which real photos at these scales rarely have)."""
    folder = tmp_path_factory.mktemp("photos") / "only"  # one class folder, for list_images
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(SIZES):
        pixels = rng.integers(0, 256, size=(h // 4, w // 4, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((w, h), Image.BILINEAR).filter(ImageFilter.GaussianBlur(2))
        paths.append(str(folder / f"{i}.jpg"))
        image.save(paths[-1], quality=95)
    return paths


def test_loader_part_only_decodes(photos: list[str]):
    extractor = FeatureExtractor(make_model(), resize_on="device")
    decoded = extractor.preprocess(photos)
    assert isinstance(decoded, list) and [tuple(x.shape) for x in decoded] == [(3, h, w) for h, w in SIZES]
    assert all(x.dtype == torch.uint8 for x in decoded)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_pixels_and_embeddings_close_to_the_pil_transform(photos: list[str], device: str):
    model = make_model().to(device)
    on_cpu, on_device = FeatureExtractor(model), FeatureExtractor(model, resize_on="device")
    a, b = on_cpu.normalize_input(on_cpu.preprocess(photos)), on_device.normalize_input(on_device.preprocess(photos))
    assert b.device.type == device
    a, b = a.cpu(), b.cpu()
    assert a.shape == b.shape == (len(photos), 3, 32, 32)
    levels = ((a - b) * torch.tensor(on_cpu.data_config["std"]).view(1, 3, 1, 1) * 255).abs()
    assert levels.mean() < 0.4 and levels.max() <= 2.01  # uint8 levels: rounding plus the kernels' difference
    ea, eb = on_cpu(photos)["embeddings"].cpu(), on_device(photos)["embeddings"].cpu()
    assert torch.nn.functional.cosine_similarity(ea, eb).min() > 0.999


def test_grouped_resize_equals_one_image_at_a_time(photos: list[str]):
    extractor = FeatureExtractor(make_model(), resize_on="device")
    decoded = extractor.preprocess(photos)
    together = extractor.normalize_input(decoded)
    alone = torch.cat([extractor.normalize_input([x]) for x in decoded])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)


def test_extract_to_file_with_mixed_sizes(photos: list[str], tmp_path: Path):
    images = list_images(Path(photos[0]).parent.parent)
    extractor = FeatureExtractor(make_model(), resize_on="device")
    extract_to_file(extractor, images, tmp_path / "f.safetensors", batch_size=3, workers=1, progress=False)
    outputs, manifest = read_features(tmp_path / "f.safetensors")
    assert sorted(manifest["paths"]) == sorted(photos) and manifest["paths"] == images.paths
    torch.testing.assert_close(outputs["embeddings"], extractor(images.paths)["embeddings"], rtol=1e-5, atol=1e-5)


def test_crops_are_the_model_input_and_the_pca_picture_uses_them(photos: list[str], tmp_path: Path):
    extractor = FeatureExtractor(make_model(), resize_on="device")
    crops = extractor.crops(photos)
    assert crops.dtype == torch.uint8 and crops.shape == (len(photos), 3, 32, 32)
    torch.testing.assert_close(extractor.standardize(crops), extractor.normalize_input(extractor.preprocess(photos)))
    save_pca_grid(extractor, [Image.open(p).convert("RGB") for p in photos], tmp_path / "pca.png")
    grid = np.asarray(Image.open(tmp_path / "pca.png"))
    assert grid.shape == (64, 32 * len(photos), 3) and (grid[:32, :32] == crops[0].permute(1, 2, 0).numpy()).all()


def test_transforms_it_cannot_split_are_named():
    border = create_transform(input_size=(3, 32, 32), crop_pct=0.9, crop_mode="border", use_prefetcher=True)
    with pytest.raises(ValueError, match="Resize / CenterCrop"):
        DeviceResize(border, torch.device("cpu"))


class _CountOps(TorchDispatchMode):
    """Counts the aten ops dispatched inside it, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def test_packed_batch_costs_two_kernels_per_size_and_the_rest_once_per_batch():
    """Every launch costs the main process, which bounds a small model's GPU extraction: per size one
    stack and one resize; the copy, float conversion, clamp and rounding once for the whole batch."""
    resize = DeviceResize(create_transform(input_size=(3, 32, 32), crop_pct=0.9, interpolation="bicubic",
                                           use_prefetcher=True),
                          torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 20, 20 + i % 5), dtype=torch.uint8, generator=g) for i in range(15)]
    with _CountOps() as counted:
        out = resize(PackedImages.pack(images))
    sizes = 5
    assert counted.ops["aten._upsample_bicubic2d_aa"] == sizes and counted.ops["aten.stack"] == sizes + 1
    assert counted.ops["aten._to_copy"] == counted.ops["aten.clamp_"] == counted.ops["aten.round_"] == 1
    alone = torch.cat([resize([x]) for x in images])
    torch.testing.assert_close(out, alone, rtol=0, atol=0)
