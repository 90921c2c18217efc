"""resize_on='device': decode-only loading, resize + crop on the model's device, close to timm's PIL transform."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter
from timm.data import create_transform
from timm.data.transforms import MaybePILToTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision import transforms

from hydra_vision.features import (
    FeatureExtractor,
    extract_to_file,
    list_images,
    read_features,
)
from hydra_vision.features.device_resize import DeviceResize, axis_maps, group_by_size
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
    border = _eval_transform(crop_mode="border")
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


def _eval_transform(**kwargs) -> transforms.Compose:
    return create_transform(**{"input_size": (3, 32, 32), "crop_pct": 0.9, "interpolation": "bicubic",
                               "use_prefetcher": True, **kwargs})


def test_kernels_per_batch_do_not_grow_with_the_number_of_sizes():
    """Every launch costs the main process, which bounds a small model's GPU extraction: a batch of five
    sizes costs the same operators as a batch of one size, and cached sizes need no interpolation."""
    resize = DeviceResize(_eval_transform(), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    mixed = [torch.randint(0, 256, (3, 20, 20 + i % 5), dtype=torch.uint8, generator=g) for i in range(15)]
    uniform = [torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8, generator=g) for _ in range(15)]
    resize(PackedImages.pack(mixed))
    counts = []
    for images in (mixed, uniform):
        with _CountOps() as counted:
            out = resize(PackedImages.pack(images))
        counts.append(counted.ops)
        torch.testing.assert_close(out, torch.cat([resize([x]) for x in images]), rtol=0, atol=0)
    assert counts[0] == counts[1] and counts[0]["aten.bmm"] == 2
    assert not any("upsample" in name for name in counts[0])


@pytest.mark.parametrize("kwargs", [{}, {"crop_mode": "squash"}, {"interpolation": "bilinear"}, {"crop_pct": 1.2}])
@pytest.mark.parametrize("size", [(20, 27), (41, 33), (9, 80)])
def test_axis_maps_are_the_transform(kwargs: dict, size: tuple[int, int]):
    """steps(I) = Wy I Wx^T for the transform's own Resize / CenterCrop steps (crop_pct > 1 pads)."""
    transform = _eval_transform(**kwargs)
    steps = transform.transforms[:-1]
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(1)) * 255
    wy, wx = axis_maps(steps, *size)
    assert wy.shape == (32, size[0]) and wx.shape == (32, size[1])
    torch.testing.assert_close(wy @ image @ wx.T, transforms.Compose(steps)(image), rtol=0, atol=1e-3)


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=40),
       st.floats(1.0, 3.0))
@settings(max_examples=100, deadline=None)
def test_size_groups_bound_the_padding(sizes: list[tuple[int, int]], max_padding: float):
    groups = group_by_size(sizes, max_padding)
    assert sorted(i for group in groups for i in group) == list(range(len(sizes)))
    for group in groups:
        canvas = len(group) * max(sizes[i][0] for i in group) * max(sizes[i][1] for i in group)
        assert len(group) == 1 or canvas <= max_padding * sum(sizes[i][0] * sizes[i][1] for i in group)


def test_inputs_it_cannot_resize_are_named():
    resize = DeviceResize(_eval_transform(), torch.device("cpu"))
    gray_and_rgb = [torch.zeros(1, 20, 20, dtype=torch.uint8), torch.zeros(3, 20, 20, dtype=torch.uint8)]
    with pytest.raises(ValueError, match="one channel count"):
        resize(gray_and_rgb)
    with pytest.raises(ValueError, match="no images"):
        resize(torch.zeros(0, 3, 20, 20, dtype=torch.uint8))
    no_crop = DeviceResize(transforms.Compose([transforms.Resize(32), MaybePILToTensor()]), torch.device("cpu"))
    square, wide = torch.zeros(3, 20, 20, dtype=torch.uint8), torch.zeros(3, 20, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match="fixed output size"):
        no_crop([square, wide])
    no_crop([square])
    with pytest.raises(ValueError, match="fixed output size"):  # a size whose maps are cached already
        no_crop([wide])


def test_triton_canvas_kernels_give_the_reference_batch(photos: list[str], monkeypatch: pytest.MonkeyPatch):
    """The whole device resize with the canvas gather and scatter in Triton (the interpreter on CPU) equals the
    PyTorch path bit for bit."""
    device = torch.device(DEVICES[-1])  # CUDA where there is one: Triton runs on the CPU only in its interpreter
    decode = DeviceResize(_eval_transform(), device).decode
    decoded = PackedImages.pack([decode(Image.open(p).convert("RGB")) for p in photos])
    monkeypatch.setenv("HYDRA_VISION_BACKEND", "reference")
    reference = DeviceResize(_eval_transform(), device)(decoded)
    monkeypatch.setenv("HYDRA_VISION_BACKEND", "triton")
    torch.testing.assert_close(DeviceResize(_eval_transform(), device)(decoded), reference, rtol=0, atol=0)
