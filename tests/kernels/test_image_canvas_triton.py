"""The canvas gather and the rounded scatter of the device resize: Triton kernels against their PyTorch
references, and the references against per-image loops (Triton's CPU interpreter without CUDA;
tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_vision.kernels.image_canvas import gather_canvas, scatter_rounded

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _packed(sizes: list[tuple[int, int]], channels: int, seed: int = 0):
    """uint8 images (C, h, w) of `sizes`, and their packed form: data, shapes (n, 3), starts (n,)."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (channels, h, w), dtype=torch.uint8, generator=g) for h, w in sizes]
    shapes = torch.tensor([tuple(x.shape) for x in images])
    pixels = shapes.prod(1)
    data = torch.cat([x.reshape(-1) for x in images] + [torch.full((5,), 7, dtype=torch.uint8)])  # a tail to ignore
    return images, data.to(DEVICE), shapes.to(DEVICE), (pixels.cumsum(0) - pixels).to(DEVICE)


def _canvas_loop(images: list[torch.Tensor], top: int, wide: int) -> torch.Tensor:
    canvas = torch.zeros(len(images), top, images[0].shape[0], wide)
    for i, x in enumerate(images):
        canvas[i, :x.shape[1], :, :x.shape[2]] = x.permute(1, 0, 2).float()
    return canvas


@pytest.mark.parametrize("strided", [False, True], ids=["dense", "strided_data"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_gather_puts_each_image_in_its_corner_of_a_zero_canvas(backend: str, channels: int, strided: bool):
    sizes = [(5, 7), (1, 1), (9, 3), (5, 7), (2, 130)]  # 130 columns: two of the kernel's column blocks
    images, data, shapes, starts = _packed(sizes, channels)
    if strided:  # the same bytes, every other one of a buffer
        data = torch.zeros(len(data), 2, dtype=data.dtype, device=DEVICE)[:, 0].copy_(data)
    canvas = gather_canvas(data, shapes, starts, channels, 11, 133, backend=backend)
    assert canvas.dtype == torch.float32 and canvas.shape == (5, 11, channels, 133)
    torch.testing.assert_close(canvas.cpu(), _canvas_loop(images, 11, 133), rtol=0, atol=0)


def _scatter_loop(out: torch.Tensor, rows: torch.Tensor, resized: torch.Tensor) -> torch.Tensor:
    out = out.clone()
    for i, row in enumerate(rows.tolist()):
        out[row] = torch.round(resized[i].clamp(0, 255)).permute(1, 0, 2)
    return out


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_scatter_clamps_rounds_half_to_even_and_writes_only_its_rows(backend: str):
    g = torch.Generator().manual_seed(1)
    resized = torch.rand(3, 4, 3, 131, generator=g) * 300 - 20
    resized[0, 0, 0, :8] = torch.tensor([0.5, 1.5, 2.5, 254.5, 255.5, -0.5, 0.49999997, 127.50001])
    rows = torch.tensor([4, 0, 2])
    out = torch.full((5, 3, 4, 131), -1.0)
    expected = _scatter_loop(out, rows, resized)
    assert expected[4, 0, 0, :8].tolist() == [0, 2, 2, 254, 255, 0, 0, 128]
    out = out.to(DEVICE)
    scatter_rounded(out, rows.to(DEVICE), resized.to(DEVICE), backend=backend)
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=0)


@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=6), st.integers(0, 3),
       st.integers(0, 3), st.integers(1, 3))
@settings(max_examples=15, deadline=None)
def test_triton_matches_the_reference_on_fuzzed_sizes(sizes: list[tuple[int, int]], pad_y: int, pad_x: int,
                                                     channels: int):
    _, data, shapes, starts = _packed(sizes, channels, seed=len(sizes))
    top, wide = max(h for h, _ in sizes) + pad_y, max(w for _, w in sizes) + pad_x
    canvas = gather_canvas(data, shapes, starts, channels, top, wide, backend="triton")
    torch.testing.assert_close(canvas, gather_canvas(data, shapes, starts, channels, top, wide, backend="reference"),
                               rtol=0, atol=0)
    rows = torch.randperm(len(sizes) + 2, generator=torch.Generator().manual_seed(0))[:len(sizes)].to(DEVICE)
    resized = (canvas.transpose(1, 2)[..., :3] * 1.37 - 40).contiguous()  # (n, C, top, 3): H = C, C = top
    outs = [torch.zeros(len(sizes) + 2, top, channels, resized.shape[-1], device=DEVICE) for _ in range(2)]
    for out, backend in zip(outs, ("triton", "reference")):
        scatter_rounded(out, rows, resized, backend=backend)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_bad_arguments_are_named():
    _, data, shapes, starts = _packed([(2, 2)], 3)
    with pytest.raises(ValueError, match="uint8 data"):
        gather_canvas(data.float(), shapes, starts, 3, 2, 2)
    with pytest.raises(ValueError, match="rows"):
        scatter_rounded(torch.zeros(2, 3, 4, 5), torch.tensor([0, 1]), torch.zeros(1, 4, 3, 5))
